package slurm_test

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/reproml/albert/internal/exptest"
	"github.com/reproml/albert/slurm"
	"github.com/reproml/albert/slurm/slurmtest"
)

// Two tiny runs (seeds), long enough to preempt one in the middle.
var sweepTOML = exptest.Experiment{Name: "slurme2e", Seeds: []int{1, 2}, Data: exptest.EvalData, Train: exptest.Train{Steps: 600, BatchSize: 8, WarmupSteps: 5, LR: 0.005, LogEvery: 10, EvalEvery: 200, CheckpointEvery: 20}}

// A sweep through a real single-node Slurm: exp slurm submits both runs as a
// job array; one task gets Slurm's preemption warning (scancel --signal=USR2
// --batch) after its first checkpoint, checkpoints, records its run as
// preempted and requeues itself; the requeued task resumes. After exp merge
// every run is done once, with the loss curve and final numbers of an
// uninterrupted local exp run, and merging again changes no row.
func TestSlurmSweepPreemptResumeMerge(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a sweep twice, through a Slurm cluster")
	}
	root := exptest.Repo(t)
	c := slurmtest.Start(t)
	t.Setenv("SLURM_CONF", c.Conf) // for slurm.Query in this process
	start := time.Now()
	tmp := t.TempDir()
	bin := exptest.Exp(t)
	file := exptest.Write(t, tmp, "sweep.toml", sweepTOML.TOML())
	must := mustExp(t, c, bin, root)
	mainDB, sdir, runs := filepath.Join(tmp, "main.db"), filepath.Join(tmp, "slurm"), filepath.Join(tmp, "runs")
	flags := []string{"--db", mainDB, "--slurm-dir", sdir, "--runs-dir", runs, "--max-parallel", "2", "--cpus-per-run", "1"}

	// The uninterrupted reference, trained locally.
	must("run", file, "--device", "cpu", "--db", filepath.Join(tmp, "ref.db"), "--runs-dir", filepath.Join(tmp, "ref-runs"))
	t.Logf("reference sweep trained in %s", time.Since(start).Round(time.Second))

	script := must(append([]string{"slurm", file, "--dry-run"}, flags...)...)
	for _, want := range []string{"#SBATCH --array=0-1%2", "#SBATCH --signal=B:USR2@90", "#SBATCH --requeue", "#SBATCH --cpus-per-task=1", "slurm task "} {
		if !strings.Contains(script, want) {
			t.Fatalf("dry-run script lacks %q:\n%s", want, script)
		}
	}
	if _, err := os.Stat(mainDB); err == nil {
		t.Fatal("--dry-run wrote the database")
	}

	job, sw := submit(t, must, sdir, 2, append([]string{file}, flags...)...)
	victim := sw.Runs[0].Hash

	// Preempt task 0 as soon as its first checkpoint exists.
	exptest.WaitForFile(t, filepath.Join(runs, victim, "step-*.pt"), 20*time.Millisecond, "checkpoint of task 0", func() string {
		return readLog(sw, 0) + "\n" + c.Log("slurmctld")
	})
	if out, err := c.Command("scancel", "--signal=USR2", "--batch", job+"_0").CombinedOutput(); err != nil {
		t.Fatalf("scancel: %v\n%s", err, out)
	}
	t.Logf("task 0 preempted at %s", time.Since(start).Round(time.Second))

	// Wait for the array to drain.
	deadline := time.Now().Add(6 * time.Minute)
	for {
		tasks, err := slurm.Query(t.Context(), job)
		if err != nil {
			t.Fatal(err)
		}
		active := 0
		for _, tk := range tasks {
			if tk.Active() {
				active++
			}
		}
		if len(tasks) == 2 && active == 0 {
			for i, tk := range tasks {
				if tk.State != "COMPLETED" {
					t.Fatalf("task %d ended %s\n%s", i, tk.State, readLog(sw, i))
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s not finished within 6 minutes: %+v\n%s\n%s", job, tasks, readLog(sw, 0), readLog(sw, 1))
		}
		time.Sleep(time.Second)
	}
	t.Logf("array finished at %s", time.Since(start).Round(time.Second))
	if l := readLog(sw, 0); !strings.Contains(l, "requeued") || !strings.Contains(l, "(1 resumed)") {
		t.Fatalf("task 0 was not preempted, requeued and resumed:\n%s", l)
	}

	must("merge", "--db", mainDB, "--slurm-dir", sdir)
	once := dumpDB(t, mainDB)
	must("merge", "--db", mainDB, "--slurm-dir", sdir)
	if twice := dumpDB(t, mainDB); twice != once {
		t.Fatalf("a second merge changed the database:\n--- once\n%s\n--- twice\n%s", once, twice)
	}

	db := openDB(t, mainDB)
	ref := openDB(t, filepath.Join(tmp, "ref.db"))
	for _, r := range sw.Runs {
		var status string
		var step, attempts, pre int
		if err := db.QueryRow(`SELECT status, step, attempts, preemptions FROM runs WHERE config_hash = ?`, r.Hash).
			Scan(&status, &step, &attempts, &pre); err != nil {
			t.Fatal(err)
		}
		wantPre := 0
		if r.Hash == victim {
			wantPre = 1
		}
		if status != "done" || step != 600 || pre != wantPre || attempts != 1+wantPre {
			t.Errorf("run %s: %s at %d, %d attempts, %d preemptions; want done at 600, %d, %d",
				r.Hash[:12], status, step, attempts, pre, 1+wantPre, wantPre)
		}
		if dirs, _ := filepath.Glob(filepath.Join(runs, r.Hash, "attempt-*")); len(dirs) > 0 {
			t.Errorf("run %s was started over: %v", r.Hash[:12], dirs)
		}
		for _, q := range []string{
			`SELECT m.step, m.split, m.name, m.value FROM metrics m JOIN runs r ON r.id = m.run_id WHERE r.config_hash = ? AND m.split = 'train' AND m.name IN ('loss', 'mlm_loss', 'grad_norm') ORDER BY 3, 1`,
			`SELECT e.name, e.value FROM evals e JOIN runs r ON r.id = e.run_id WHERE r.config_hash = ? ORDER BY 1`,
		} {
			a, b := rowsOf(t, ref, q, r.Hash), rowsOf(t, db, q, r.Hash)
			if len(a) == 0 || strings.Join(a, "\n") != strings.Join(b, "\n") {
				t.Errorf("run %s differs from the uninterrupted run (%d vs %d rows) for\n%s", r.Hash[:12], len(a), len(b), q)
			}
		}
	}
	if n := rowsOf(t, db, `SELECT COUNT(*) FROM (SELECT run_id, step, split, name FROM metrics GROUP BY 1, 2, 3, 4 HAVING COUNT(*) > 1) WHERE ? != ''`, "x"); n[0] != "0" {
		t.Errorf("%s duplicate metric keys", n[0])
	}

	st := must("status", "--db", mainDB, "--slurm-dir", sdir)
	if strings.Count(st, "COMPLETED") != 2 {
		t.Errorf("exp status does not show both tasks COMPLETED:\n%s", st)
	}
	if again := must(append([]string{"slurm", file}, flags...)...); !strings.Contains(again, "nothing to submit") {
		t.Errorf("resubmitting a merged sweep:\n%s", again)
	}
	t.Logf("whole test: %s", time.Since(start).Round(time.Second))
}

func readLog(sw *slurm.Sweep, task int) string {
	b, _ := os.ReadFile(sw.LogPath(task))
	return string(b)
}

func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// mustExp runs `exp ARGS…` (bin) in root, the repository (the corpus cache
// is out/cache under it), with the cluster's environment and one torch
// thread, and returns what it printed; it fails the test on an error.
func mustExp(t *testing.T, c *slurmtest.Cluster, bin, root string) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = root
		cmd.Env = append(c.Env(), "ALBERT_THREADS=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("exp %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
}

// submit runs `exp slurm ARGS…` and returns the job's id and its sweep, the
// only one under sdir, which must hold runs runs.
func submit(t *testing.T, must func(...string) string, sdir string, runs int, args ...string) (string, *slurm.Sweep) {
	t.Helper()
	out := must(append([]string{"slurm"}, args...)...)
	m := regexp.MustCompile(`submitted job (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no job id in:\n%s", out)
	}
	sweeps, err := slurm.Sweeps(sdir)
	if err != nil || len(sweeps) != 1 || len(sweeps[0].Runs) != runs {
		t.Fatalf("sweeps: %v %v", sweeps, err)
	}
	return m[1], sweeps[0]
}

func rowsOf(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(vals...))
	}
	return out
}

// dumpDB is every row of the tables a merge writes, sorted, with run ids
// replaced by config hashes.
func dumpDB(t *testing.T, path string) string {
	db := openDB(t, path)
	var all []string
	for _, q := range []string{
		`SELECT * FROM runs`,
		`SELECT * FROM experiments`,
		`SELECT * FROM experiment_runs`,
		`SELECT r.config_hash, m.step, m.split, m.name, m.value FROM metrics m JOIN runs r ON r.id = m.run_id`,
		`SELECT r.config_hash, e.name, e.value FROM evals e JOIN runs r ON r.id = e.run_id`,
		`SELECT r.config_hash, x.layer, x.l2, x.cosine_deg FROM transitions x JOIN runs r ON r.id = x.run_id`,
		`SELECT * FROM provenance`,
	} {
		all = append(all, rowsOf(t, db, q)...)
	}
	sort.Strings(all)
	return strings.Join(all, "\n")
}

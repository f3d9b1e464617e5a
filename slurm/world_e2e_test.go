package slurm_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reproml/albert/internal/exptest"
	"github.com/reproml/albert/slurm"
	"github.com/reproml/albert/slurm/slurmtest"
)

// One tiny run, long enough to preempt in the middle.
var worldTOML = exptest.Experiment{Name: "slurmworld", Data: exptest.EvalData, Train: exptest.Train{Steps: 300, BatchSize: 8, WarmupSteps: 5, LR: 0.005, LogEvery: 10, EvalEvery: 100, CheckpointEvery: 20}}

// exp slurm --ranks-per-node 2 through a real single-node Slurm: the array
// task is a world of 2 Gloo ranks that srun starts and that find each other
// from Slurm's variables. Slurm's warning (USR2 to every rank) after the
// first checkpoint stops both at one step; rank 0 checkpoints, records the
// run preempted and requeues the task, whose world resumes. After exp
// merge the run is done once, with the loss curve and evals of a local
// exp run --nproc 2, row for row.
func TestSlurmSweepWorldPreemptResume(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a run twice over 2 ranks, once through a Slurm cluster")
	}
	root := exptest.Repo(t)
	c := slurmtest.Start(t)
	if c.CPUs < 2 {
		t.Skipf("the test cluster has %d CPUs; a world of 2 ranks needs 2", c.CPUs)
	}
	t.Setenv("SLURM_CONF", c.Conf)
	start := time.Now()
	tmp := t.TempDir()
	bin := exptest.Exp(t)
	file := exptest.Write(t, tmp, "world.toml", worldTOML.TOML())
	must := mustExp(t, c, bin, root)
	mainDB, sdir, runs := filepath.Join(tmp, "main.db"), filepath.Join(tmp, "slurm"), filepath.Join(tmp, "runs")
	flags := []string{"--db", mainDB, "--slurm-dir", sdir, "--runs-dir", runs, "--cpus-per-run", "1", "--ranks-per-node", "2"}

	must("run", file, "--device", "cpu", "--nproc", "2", "--db", filepath.Join(tmp, "ref.db"), "--runs-dir", filepath.Join(tmp, "ref-runs"))
	t.Logf("reference (exp run --nproc 2) trained in %s", time.Since(start).Round(time.Second))

	job, sw := submit(t, must, sdir, 1, append([]string{file}, flags...)...)
	hash := sw.Runs[0].Hash
	exptest.WaitForFile(t, filepath.Join(runs, hash, "step-*.pt"), 20*time.Millisecond, "checkpoint", func() string {
		return readLog(sw, 0) + "\n" + c.Log("slurmctld")
	})
	// Without --batch: the job steps, i.e. both ranks, get the warning.
	if out, err := c.Command("scancel", "--signal=USR2", job+"_0").CombinedOutput(); err != nil {
		t.Fatalf("scancel: %v\n%s", err, out)
	}
	t.Logf("preempted at %s", time.Since(start).Round(time.Second))
	if state := waitWorldTask(t, c, job, sw, 6*time.Minute); state != "COMPLETED" {
		t.Fatalf("task ended %s\n%s", state, readLog(sw, 0))
	}
	log := readLog(sw, 0)
	t.Logf("array finished at %s", time.Since(start).Round(time.Second))
	for _, want := range []string{"world: rank 0 of 2 (gloo, cpu)", "world: rank 1 of 2 (gloo, cpu), following rank 0", "requeued", "(1 resumed)"} {
		if !strings.Contains(log, want) {
			t.Fatalf("task log lacks %q:\n%s", want, log)
		}
	}
	must("merge", "--db", mainDB, "--slurm-dir", sdir)
	db, ref := openDB(t, mainDB), openDB(t, filepath.Join(tmp, "ref.db"))
	var status string
	var step, pre int
	if err := db.QueryRow(`SELECT status, step, preemptions FROM runs WHERE config_hash = ?`, hash).Scan(&status, &step, &pre); err != nil {
		t.Fatal(err)
	}
	if status != "done" || step != 300 || pre != 1 {
		t.Errorf("run: %s at %d, %d preemptions; want done at 300, 1", status, step, pre)
	}
	for _, q := range []string{
		`SELECT m.step, m.name, m.value FROM metrics m JOIN runs r ON r.id = m.run_id WHERE r.config_hash = ? AND m.split = 'train' AND m.name IN ('loss', 'mlm_loss', 'grad_norm') ORDER BY 2, 1`,
		`SELECT e.name, e.value FROM evals e JOIN runs r ON r.id = e.run_id WHERE r.config_hash = ? ORDER BY 1`,
	} {
		a, b := rowsOf(t, ref, q, hash), rowsOf(t, db, q, hash)
		if len(a) == 0 || strings.Join(a, "\n") != strings.Join(b, "\n") {
			t.Errorf("the Slurm world's run differs from exp run --nproc 2's (%d vs %d rows) for\n%s", len(a), len(b), q)
		}
	}
	if p := rowsOf(t, db, `SELECT p.extra_json FROM provenance p JOIN runs r ON r.id = p.run_id WHERE r.config_hash = ?`, hash); len(p) != 1 || !strings.Contains(p[0], `"world_size":"2"`) {
		t.Errorf("provenance extra %v: want world_size 2", p)
	}
	t.Logf("whole test: %s", time.Since(start).Round(time.Second))
}

// waitWorldTask waits up to limit for the one task of array job to end and
// returns its state. A task still running then gets SIGQUIT, which makes
// each rank's Go runtime print every goroutine's stack into the task log
// (where a hung world waits), and the test fails with that log.
func waitWorldTask(t *testing.T, c *slurmtest.Cluster, job string, sw *slurm.Sweep, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		tasks, err := slurm.Query(t.Context(), job)
		if err != nil {
			t.Fatal(err)
		}
		if len(tasks) == 1 && !tasks[0].Active() {
			return tasks[0].State
		}
		if time.Now().After(deadline) {
			c.Command("scancel", "--signal=QUIT", job+"_0").Run()
			time.Sleep(5 * time.Second)
			t.Fatalf("job %s still %+v after %v\n%s\n%s", job, tasks, limit, readLog(sw, 0), c.Log("slurmd"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

package slurm

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func testSweep(t *testing.T, n int) *Sweep {
	sw := &Sweep{Dir: "/shared/out/slurm/s-1", Root: "/shared/out/slurm", RunsDir: "/shared/out/runs", MaxRequeues: 3,
		Experiments: []Experiment{{Name: "sharing", File: "ablations/sharing.toml", ContentHash: "h"}}}
	for i := range n {
		cfg := `{"seed":` + string(rune('0'+i)) + `}`
		sum := sha256.Sum256([]byte(cfg))
		sw.Runs = append(sw.Runs, Run{Task: i, Hash: hex.EncodeToString(sum[:]), Label: "seed=" + string(rune('0'+i)), ConfigJSON: cfg, Experiments: []int{0}})
	}
	return sw
}

func TestScriptNamesRunsByHash(t *testing.T) {
	sw := testSweep(t, 3)
	s, err := Script(sw, ScriptOptions{JobName: "exp-sharing", Partition: "gpu", GPUsPerRun: 1, CPUsPerRun: 4, Mem: "16G",
		Time: "2:00:00", MaxParallel: 2, Signal: 120, SbatchArgs: []string{"--account=abc"}, Exp: "/opt/exp", WorkDir: "/shared/albert dir"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"#SBATCH --array=0-2%2\n", "#SBATCH --signal=B:USR2@120\n", "#SBATCH --requeue\n", "#SBATCH --open-mode=append\n",
		"#SBATCH --output=/shared/out/slurm/s-1/logs/%A_%a.out\n", "#SBATCH --gpus-per-task=1\n", "#SBATCH --cpus-per-task=4\n",
		"#SBATCH --mem=16G\n", "#SBATCH --time=2:00:00\n", "#SBATCH --partition=gpu\n", "#SBATCH --account=abc\n",
		"cd '/shared/albert dir'\n", "  " + sw.Runs[2].Hash + " # seed=2\n", `HASH=${HASHES[$SLURM_ARRAY_TASK_ID]}`,
		`exec /opt/exp slurm task /shared/out/slurm/s-1 "$HASH"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
	// Every #SBATCH line comes before the first command, as sbatch requires.
	lines := strings.Split(s, "\n")
	seenCmd := false
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "#SBATCH") && seenCmd {
			t.Fatalf("#SBATCH after a command: %q", l)
		}
		if l != "" && !strings.HasPrefix(l, "#") {
			seenCmd = true
		}
	}
}

func TestScriptRejectsBadOptions(t *testing.T) {
	sw := testSweep(t, 1)
	good := ScriptOptions{Exp: "/opt/exp", WorkDir: "/w", Signal: 90}
	for name, mod := range map[string]func(*ScriptOptions){
		"two gpus":     func(o *ScriptOptions) { o.GPUsPerRun = 2 },
		"time":         func(o *ScriptOptions) { o.Time = "two hours" },
		"mem":          func(o *ScriptOptions) { o.Mem = "lots" },
		"newline arg":  func(o *ScriptOptions) { o.SbatchArgs = []string{"--account=a\nrm -rf /"} },
		"not option":   func(o *ScriptOptions) { o.SbatchArgs = []string{"account=a"} },
		"no signal":    func(o *ScriptOptions) { o.Signal = 0 },
		"relative exp": func(o *ScriptOptions) { o.Exp = "bin/exp" },
	} {
		o := good
		mod(&o)
		if _, err := Script(sw, o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := Script(sw, good); err != nil {
		t.Fatal(err)
	}
	bad := testSweep(t, 2)
	bad.Runs[1].ConfigJSON = `{"seed":9}` // no longer hashes to its hash
	if _, err := Script(bad, good); err == nil || !strings.Contains(err.Error(), "does not hash") {
		t.Fatalf("a run whose config does not match its hash: %v", err)
	}
}

func TestParseSqueueAndSacct(t *testing.T) {
	sq, err := ParseSqueue([]byte("12_0|RUNNING|None\n12_1|PENDING|BeginTime\n13_0|RUNNING|None\n"), "12")
	if err != nil || len(sq) != 2 || sq[1].State != "PENDING" || sq[1].Reason != "BeginTime" || !sq[1].Active() {
		t.Fatalf("squeue: %+v %v", sq, err)
	}
	sa, err := ParseSacct([]byte("12_0|COMPLETED|0:0\n12_1|CANCELLED by 0|0:15\n12_1.batch|CANCELLED|0:15\n"), "12")
	if err != nil || len(sa) != 2 || sa[1].State != "CANCELLED" || sa[0].Active() || sa[0].Reason != "exit 0:0" {
		t.Fatalf("sacct: %+v %v", sa, err)
	}
	if _, err := ParseSqueue([]byte("garbage\n"), "12"); err == nil {
		t.Fatal("squeue garbage parsed")
	}
}

func TestSweepSaveLoad(t *testing.T) {
	sw := testSweep(t, 2)
	sw.Dir = t.TempDir()
	sw.JobID = "77"
	if err := sw.Save(); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSweep(sw.Dir)
	if err != nil || got.JobID != "77" || len(got.Runs) != 2 || got.MaxRequeues != 3 {
		t.Fatalf("%+v %v", got, err)
	}
	if r, ok := got.Run(sw.Runs[1].Hash); !ok || r.Task != 1 {
		t.Fatal("run by hash")
	}
	if got.LogPath(1) != sw.Dir+"/logs/77_1.out" {
		t.Fatal(got.LogPath(1))
	}
}

// A scontrol that Slurm's own requeue terminated counts as requeued; any
// other failure does not.
func TestKilledByRequeue(t *testing.T) {
	_, err := run(t.Context(), "sh", "-c", "kill -TERM $$")
	if err == nil || !killedByRequeue(err) {
		t.Fatalf("SIGTERM: %v", err)
	}
	if _, err := run(t.Context(), "sh", "-c", "exit 1"); err == nil || killedByRequeue(err) {
		t.Fatalf("exit 1: %v", err)
	}
}

// --nodes K --gpus-per-node G: each array task is a world of K×G ranks that
// srun starts, every rank warned (no B:), one GPU per rank.
func TestScriptOfAWorldPerRun(t *testing.T) {
	sw := testSweep(t, 2)
	s, err := Script(sw, ScriptOptions{Nodes: 2, RanksPerNode: 4, GPUsPerNode: 4, CPUsPerRun: 8, Signal: 90, Exp: "/opt/exp", WorkDir: "/w"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#SBATCH --nodes=2\n", "#SBATCH --ntasks-per-node=4\n", "#SBATCH --gpus-per-node=4\n",
		"#SBATCH --signal=USR2@90\n", `exec srun /opt/exp slurm task /shared/out/slurm/s-1 "$HASH"`} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
	for _, not := range []string{"--ntasks=1", "B:USR2", "--gpus-per-task"} {
		if strings.Contains(s, not) {
			t.Errorf("a world's script has %q:\n%s", not, s)
		}
	}
	for name, o := range map[string]ScriptOptions{
		"gpus not ranks": {Nodes: 2, RanksPerNode: 2, GPUsPerNode: 4},
		"both gpu flags": {Nodes: 1, RanksPerNode: 2, GPUsPerNode: 2, GPUsPerRun: 1},
	} {
		o.Signal, o.Exp, o.WorkDir = 90, "/opt/exp", "/w"
		if _, err := Script(sw, o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// One rank per run stays the plain script.
	s, _ = Script(sw, ScriptOptions{Nodes: 1, RanksPerNode: 1, Signal: 90, Exp: "/opt/exp", WorkDir: "/w"})
	if !strings.Contains(s, "#SBATCH --ntasks=1\n") || strings.Contains(s, "srun") {
		t.Errorf("a world of 1 changed the script:\n%s", s)
	}
}

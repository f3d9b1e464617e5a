package main

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reproml/albert/distributed"
	"github.com/reproml/albert/internal/exptest"
	"github.com/reproml/albert/results"
)

// One tiny run, long enough to be killed between checkpoints; every step's
// loss is logged.
var ddpExperiment = exptest.Experiment{Name: "ddp", Data: exptest.EvalData, Train: exptest.Train{Steps: 80, BatchSize: 8, WarmupSteps: 5, LR: 0.005, LogEvery: 1, EvalEvery: 40, CheckpointEvery: 10}}

// ddpLossTolerance bounds |loss(2 ranks) − loss(1 process)| over the first
// 20 steps: the two differ only in the order of float32 sums (each rank's
// part of the loss, the gradients' all-reduce); a wrong shard or
// denominator moves the loss by 1e-2 or more.
const ddpLossTolerance = 1e-4

// exp run --nproc 2 (2 Gloo ranks, 4 examples each) against exp run (1
// process, batch 8): the same first 20 losses within ddpLossTolerance, one
// run in the database with one row per step and metric and the world in
// its provenance, checkpoints written once by rank 0. Then kill -9 of rank
// 1 in the middle of a third sweep ends both ranks with an error naming
// the broken world, well before the collective timeout, and a rerun of exp
// run --nproc 2 resumes from the last checkpoint with the uninterrupted
// world's losses, bit for bit, and the run done once.
func TestNproc2MatchesOneProcessAndKill9Resumes(t *testing.T) {
	if testing.Short() {
		t.Skip("trains four tiny sweeps")
	}
	if err := distributed.Available(); err != nil {
		t.Fatalf("the c10d binding is not built (make setup): %v", err)
	}
	root := exptest.Repo(t)
	tmp := t.TempDir()
	bin := exptest.Exp(t)
	file := exptest.Write(t, tmp, "ddp.toml", ddpExperiment.TOML())
	exp := func(name string, extra ...string) *exec.Cmd {
		args := append([]string{"run", file, "--device", "cpu", "--db", filepath.Join(tmp, name+".db"),
			"--runs-dir", filepath.Join(tmp, name+"-runs")}, extra...)
		c := exec.Command(bin, args...)
		c.Dir = root // the corpus cache is out/cache under the repository
		c.Env = append(os.Environ(), "ALBERT_THREADS=1")
		return c
	}
	run := func(name string, extra ...string) string {
		t.Helper()
		out, err := exp(name, extra...).CombinedOutput()
		if err != nil {
			t.Fatalf("exp run %s %v: %v\n%s", name, extra, err, out)
		}
		return string(out)
	}
	curve := func(name, metric string) []results.Point {
		t.Helper()
		st, err := results.Open(filepath.Join(tmp, name+".db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		runs, err := st.Runs(results.RunFilter{Experiment: "ddp"})
		if err != nil || len(runs) != 1 {
			t.Fatalf("%s: runs %+v (%v), want exactly one", name, runs, err)
		}
		if runs[0].Status != results.StatusDone {
			t.Fatalf("%s: run %s", name, runs[0].Status)
		}
		c, err := st.Curve(runs[0].ID, "train", metric)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	const world = "--nproc"

	run("alone")
	start := time.Now()
	out := run("world", world, "2", "--dist-timeout", "60s")
	t.Logf("exp run --nproc 2: %v", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(out, "[r1] world: rank 1 of 2 (gloo, cpu), following rank 0") {
		t.Errorf("rank 1 did not follow rank 0:\n%s", out)
	}
	alone, ranks := curve("alone", "loss"), curve("world", "loss")
	if len(alone) != 80 || len(ranks) != 80 {
		t.Fatalf("%d loss rows alone, %d with 2 ranks; want one per step (80)", len(alone), len(ranks))
	}
	worst := 0.0
	for i := range 20 {
		worst = math.Max(worst, math.Abs(alone[i].Value-ranks[i].Value))
	}
	t.Logf("first 20 losses: max |2 ranks − 1 process| = %.3g (step 1: %.6f vs %.6f; step 20: %.6f vs %.6f)",
		worst, alone[0].Value, ranks[0].Value, alone[19].Value, ranks[19].Value)
	if worst > ddpLossTolerance {
		t.Errorf("2 ranks' first 20 losses differ from 1 process's by %.3g (tolerance %g)", worst, ddpLossTolerance)
	}
	st, _ := results.Open(filepath.Join(tmp, "world.db"))
	runs, _ := st.Runs(results.RunFilter{Experiment: "ddp"})
	if p, err := st.Provenance(runs[0].ID); err != nil || p.Extra["world_size"] != "2" {
		t.Errorf("provenance %+v (%v): want world_size 2", p.Extra, err)
	}
	st.Close()
	// Rank 0 alone checkpoints: the last two files kept, nothing half-written.
	files, _ := filepath.Glob(filepath.Join(tmp, "world-runs", "*", "step-*"))
	if len(files) != 2 || !strings.HasSuffix(files[1], "step-00000080.pt") {
		t.Errorf("checkpoint files %v, want steps 70 and 80", files)
	}

	// kill -9 of rank 1 right after a checkpoint, in a third sweep.
	cmd := exp("killed", world, "2", "--dist-timeout", "60s")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pidRe := regexp.MustCompile(`\[launch\] rank 1: pid (\d+)`)
	exptest.WaitForFile(t, filepath.Join(tmp, "killed-runs", "*", "step-00000020.pt"), 2*time.Millisecond, "checkpoint at step 20", func() string {
		cmd.Process.Kill()
		return log.String()
	})
	m := pidRe.FindStringSubmatch(log.String())
	if m == nil {
		cmd.Process.Kill()
		t.Fatalf("the launcher did not print rank 1's pid:\n%s", log.String())
	}
	pid, _ := strconv.Atoi(m[1])
	killed := time.Now()
	syscall.Kill(pid, syscall.SIGKILL)
	err := cmd.Wait()
	took := time.Since(killed)
	t.Logf("kill -9 of rank 1: both ended in %v", took.Round(time.Millisecond))
	if err == nil {
		t.Fatalf("exp run --nproc 2 succeeded though rank 1 was killed:\n%s", log.String())
	}
	if s := log.String(); !strings.Contains(s, "distributed world broken") || !strings.Contains(s, "rank 1: signal: killed") ||
		!strings.Contains(s, "rank 0: exit status") {
		t.Errorf("want rank 0's error naming the broken world and both ranks' ends:\n%s", s)
	}
	if took > 45*time.Second {
		t.Errorf("rank 0 took %v to end after rank 1 died", took)
	}
	out = run("killed", world, "2", "--dist-timeout", "60s")
	if !strings.Contains(out, "resumed") {
		t.Errorf("the rerun did not resume:\n%s", out)
	}
	resumed := curve("killed", "loss")
	if len(resumed) != len(ranks) {
		t.Fatalf("%d loss rows after kill and rerun, %d uninterrupted", len(resumed), len(ranks))
	}
	for i := range ranks {
		if resumed[i] != ranks[i] {
			t.Fatalf("after kill -9 and rerun, loss at step %d is %v, uninterrupted %v", resumed[i].Step, resumed[i].Value, ranks[i].Value)
		}
	}
}

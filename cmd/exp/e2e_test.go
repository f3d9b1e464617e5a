package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reproml/albert/internal/exptest"
	"github.com/reproml/albert/results"
)

// An experiment small enough to train twice in a test: two runs (seeds),
// checkpoints every 10 steps.
var e2eExperiment = exptest.Experiment{Name: "e2e", Seeds: []int{1, 2}, Data: exptest.EvalData, Train: exptest.Train{Steps: 60, BatchSize: 8, WarmupSteps: 5, LR: 0.005, LogEvery: 5, EvalEvery: 30, CheckpointEvery: 10}}

// kill -9 of `exp run` in the middle of a sweep, then a rerun: every run
// ends done exactly once, resumed from its checkpoint, with the same loss
// curve and final numbers as an uninterrupted sweep, and no duplicate rows.
func TestKill9ThenRerunMatchesUninterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two sweeps")
	}
	root := exptest.Repo(t)
	tmp := t.TempDir()
	bin := exptest.Exp(t)
	file := exptest.Write(t, tmp, "e2e.toml", e2eExperiment.TOML())
	exp := func(ctx context.Context, name string) *exec.Cmd {
		c := exec.CommandContext(ctx, bin, "run", file, "--device", "cpu",
			"--db", filepath.Join(tmp, name+".db"), "--runs-dir", filepath.Join(tmp, name+"-runs"))
		c.Dir = root // the corpus cache is out/cache under the repository
		c.Env = append(os.Environ(), "ALBERT_THREADS=1")
		return c
	}

	if out, err := exp(context.Background(), "whole").CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted sweep: %v\n%s", err, out)
	}

	// Start the sweep, wait for the first run's checkpoint at step 20 or
	// later, then kill -9 the process.
	exptest.KillAtCheckpoint(t, exp(context.Background(), "cut"), filepath.Join(tmp, "cut-runs", "*", "step-0000002*.pt"), "checkpoint at step 20")

	out, err := exp(context.Background(), "cut").CombinedOutput()
	if err != nil {
		t.Fatalf("rerun: %v\n%s", err, out)
	}
	// The killed run is taken over and continued from its checkpoint.
	if !strings.Contains(string(out), "(1 resumed)") {
		t.Fatalf("rerun did not resume the killed run:\n%s", out)
	}

	open := func(name string) *results.Store {
		st, err := results.Open(filepath.Join(tmp, name+".db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	a, b := open("whole"), open("cut")
	ra, _ := a.Runs(results.RunFilter{})
	rb, _ := b.Runs(results.RunFilter{})
	if len(ra) != 2 || len(rb) != 2 {
		t.Fatalf("%d and %d runs, want 2 each", len(ra), len(rb))
	}
	byHash := map[string]results.Run{}
	for _, r := range ra {
		byHash[r.ConfigHash] = r
	}
	for _, r := range rb {
		w, ok := byHash[r.ConfigHash]
		if !ok {
			t.Fatalf("run %s not in the uninterrupted sweep", r.ConfigHash[:12])
		}
		if r.Status != results.StatusDone || r.Step != 60 {
			t.Errorf("run %s: status %s at step %d, want done at 60", r.ConfigHash[:12], r.Status, r.Step)
		}
		for _, name := range []string{"loss", "mlm_loss"} {
			ca, _ := a.Curve(w.ID, "train", name)
			cb, _ := b.Curve(r.ID, "train", name)
			if len(ca) != 13 || len(cb) != len(ca) { // steps 1, 6, …, 56 and 60: no duplicates, none missing
				t.Fatalf("%s: %d rows uninterrupted, %d after kill -9 (want 13 each)", name, len(ca), len(cb))
			}
			for i := range ca {
				if ca[i] != cb[i] {
					t.Fatalf("run %s: %s differs at step %d: %v vs %v", r.ConfigHash[:12], name, ca[i].Step, ca[i].Value, cb[i].Value)
				}
			}
		}
		ea, _ := a.Evals(w.ID)
		eb, _ := b.Evals(r.ID)
		for k, v := range ea {
			if eb[k] != v {
				t.Errorf("run %s: final %s %v vs %v", r.ConfigHash[:12], k, v, eb[k])
			}
		}
	}
}

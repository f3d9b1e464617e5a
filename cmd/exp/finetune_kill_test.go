package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/reproml/albert/internal/exptest"
	"github.com/reproml/albert/results"
)

// A tiny pretraining run and one SST-2 fine-tuning run long enough to be
// killed between its checkpoints (every 50 steps).
var killFinetuneExperiment = exptest.Experiment{Name: "ft-kill", Layers: 1, Data: exptest.EvalData, Train: exptest.Train{Steps: 6, BatchSize: 4, WarmupSteps: 1, LR: 0.005, LogEvery: 2, EvalEvery: 6, CheckpointEvery: 6}, Tail: `
[downstream]
tasks = ["SST-2"]
seeds = [1]
random_init = false
profile = "cpu"
[downstream.finetune]
steps = 200
warmup_steps = 10
batch_size = 2
eval_every = 50
max_seq_len = 32
max_query_len = 8
max_qa_len = 8
encoder_dropout = 0.1
`}

// kill -9 of `exp run` while it fine-tunes, then a rerun: the fine-tuning
// run is resumed from its checkpoint and ends with the curves and best
// scores of an uninterrupted `exp run`, with no duplicated rows.
func TestKill9DuringFinetuningResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("pretrains and fine-tunes twice")
	}
	repo := exptest.Repo(t)
	tmp := t.TempDir()
	root := filepath.Join(tmp, "data")
	copyTree(t, filepath.Join(repo, "finetune", "tasks", "testdata", "root", "glue", "SST-2"), filepath.Join(root, "glue", "SST-2"))
	bin := exptest.Exp(t)
	file := exptest.Write(t, tmp, "ft-kill.toml", killFinetuneExperiment.TOML())
	exp := func(name string) *exec.Cmd {
		c := exec.Command(bin, "run", file, "--device", "cpu", "--data-dir", root,
			"--db", filepath.Join(tmp, name+".db"), "--runs-dir", filepath.Join(tmp, name+"-runs"))
		c.Dir = repo // the corpus cache is out/cache under the repository
		c.Env = append(os.Environ(), "ALBERT_THREADS=1")
		return c
	}
	if out, err := exp("whole").CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}

	// Kill as soon as the fine-tuning run's step-50 checkpoint appears (the
	// pretraining run stops at step 6).
	if log := exptest.KillAtCheckpoint(t, exp("cut"), filepath.Join(tmp, "cut-runs", "*", "step-00000050.pt"), "fine-tuning checkpoint at step 50"); strings.Contains(log, "step 200/200") {
		t.Skipf("the fine-tuning run finished before the kill landed:\n%s", log)
	}

	out, err := exp("cut").CombinedOutput()
	if err != nil {
		t.Fatalf("rerun: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "(1 resumed)") {
		t.Fatalf("rerun did not resume the killed fine-tuning run:\n%s", out)
	}

	open := func(name string) (*results.Store, results.Finetune) {
		st, err := results.Open(filepath.Join(tmp, name+".db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fts, err := st.Finetunes(results.FinetuneFilter{})
		if err != nil || len(fts) != 1 {
			t.Fatalf("%s: %d fine-tuning runs (%v), want 1", name, len(fts), err)
		}
		f := fts[0]
		if f.Status != results.StatusDone || f.Step != 200 {
			t.Fatalf("%s: status %s at step %d, want done at 200", name, f.Status, f.Step)
		}
		for _, c := range []struct {
			split, name string
			n           int
		}{{"train", "loss", 21}, {"dev", "accuracy", 4}, {"dev", "loss", 4}} { // train: steps 1, 11, …, 191 and 200
			pts, err := st.Curve(f.ID, c.split, c.name)
			if err != nil || len(pts) != c.n {
				t.Errorf("%s: %s/%s has %d rows (%v), want %d: none duplicated, none missing", name, c.split, c.name, len(pts), err, c.n)
			}
		}
		return st, f
	}
	sa, a := open("whole")
	sb, b := open("cut")
	for _, name := range []string{"loss", "grad_norm"} {
		ca, _ := sa.Curve(a.ID, "train", name)
		cb, _ := sb.Curve(b.ID, "train", name)
		if !reflect.DeepEqual(ca, cb) {
			t.Errorf("train %s differs after kill -9 and resume:\n%v\n%v", name, ca, cb)
		}
	}
	if a.ConfigHash != b.ConfigHash || a.BestStep != b.BestStep || !reflect.DeepEqual(a.Best, b.Best) {
		t.Errorf("best scores differ:\nuninterrupted %s step %d %v\nkilled+resumed %s step %d %v", a.ConfigHash[:12], a.BestStep, a.Best, b.ConfigHash[:12], b.BestStep, b.Best)
	}
}

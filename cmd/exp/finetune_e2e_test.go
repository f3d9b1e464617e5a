package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/reproml/albert/experiments"
	"github.com/reproml/albert/finetune/tasks"
	"github.com/reproml/albert/internal/exptest"
	"github.com/reproml/albert/results"
)

// A tiny pretraining run fine-tuned on every task of its data root: the
// pretraining model's positions cover the fine-tuning sequences.
var downstreamE2E = exptest.Experiment{Name: "ft-e2e", Layers: 1, Data: "eval_examples = 16\ndupe_factor = 0\n", Train: exptest.Train{Steps: 6, BatchSize: 4, WarmupSteps: 1, LR: 0.005, LogEvery: 2, EvalEvery: 6, CheckpointEvery: 6}, Tail: `
[downstream]
tasks = ["all"]
seeds = [1]
random_init = false
profile = "cpu"
[downstream.finetune]
steps = 4
warmup_steps = 1
batch_size = 2
eval_every = 2
max_seq_len = 48
doc_stride = 16
max_query_len = 12
max_qa_len = 16
`}

// copyTree copies the files under src into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// `exp run` over a data root in the official layouts (SST-2, SQuAD 1.1,
// SQuAD 2.0 and RACE, a few examples each, from finetune/tasks/testdata)
// pretrains, then fine-tunes and scores every task present: each has a done
// fine-tuning run whose finetune_best rows carry the task's metrics on each
// evaluation split at the best step; SQuAD runs write the official
// predictions.json (v2 also null_odds.json) beside the run, keyed by the
// dev questions' ids. A second run trains nothing.
func TestRunFinetunesEveryTaskOfADataRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("pretrains and fine-tunes a tiny model on four tasks")
	}
	repo := exptest.Repo(t)
	tmp := t.TempDir()
	root := filepath.Join(tmp, "data")
	src := filepath.Join(repo, "finetune", "tasks", "testdata", "root")
	copyTree(t, filepath.Join(src, "glue", "SST-2"), filepath.Join(root, "glue", "SST-2"))
	copyTree(t, filepath.Join(src, "squad"), filepath.Join(root, "squad"))
	copyTree(t, filepath.Join(src, "RACE"), filepath.Join(root, "RACE"))
	file := exptest.Write(t, tmp, "ft-e2e.toml", downstreamE2E.TOML())
	t.Chdir(repo) // the trainers read the corpus cache at out/cache
	t.Setenv("ALBERT_THREADS", "1")

	db, runsDir := filepath.Join(tmp, "exp.db"), filepath.Join(tmp, "runs")
	req := func() experiments.Request {
		return experiments.Request{Files: []string{file}, NewTrainer: newTrainer, DataDir: root,
			BuildStandIns: func(string) error { t.Error("stand-ins built for a root with official tasks"); return nil },
			Options:       experiments.Options{DB: db, RunsDir: runsDir, Devices: []string{"cpu"}}}
	}
	var out bytes.Buffer
	if err := experiments.RunFiles(context.Background(), &out, req()); err != nil {
		t.Fatalf("exp run: %v\n%s", err, out.String())
	}

	var present []string
	for _, f := range tasks.Discover(root) {
		if f.Present() {
			present = append(present, f.Task.Name)
		}
	}
	sort.Strings(present)
	if strings.Join(present, ",") != "RACE,SQuAD-1.1,SQuAD-2.0,SST-2" {
		t.Fatalf("tasks present under the root: %v", present)
	}

	st, err := results.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fts, err := st.Finetunes(results.FinetuneFilter{Experiment: "ft-e2e"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{ // split/metric keys of finetune_best, per task
		"SST-2":     {"dev/accuracy", "dev/loss"},
		"SQuAD-1.1": {"dev/f1", "dev/em", "dev/loss"},
		"SQuAD-2.0": {"dev/f1", "dev/em", "dev/has_ans_em", "dev/has_ans_f1", "dev/no_ans_acc", "dev/loss"},
		"RACE": {"dev/accuracy", "dev/accuracy_middle", "dev/accuracy_high", "dev/loss",
			"test/accuracy", "test/accuracy_middle", "test/accuracy_high", "test/loss"},
	}
	devIDs := map[string][]string{"SQuAD-1.1": {"d1"}, "SQuAD-2.0": {"a1", "a2"}}
	seen := map[string]bool{}
	for _, f := range fts {
		seen[f.Task] = true
		if f.Status != results.StatusDone || f.StandIn || f.Init != results.InitPretrained || f.PretrainRunID == 0 {
			t.Errorf("%s: status %s, stand-in %v, init %s, pretraining run %d", f.Task, f.Status, f.StandIn, f.Init, f.PretrainRunID)
		}
		keys, ok := want[f.Task]
		if !ok {
			t.Errorf("unexpected fine-tuning task %s", f.Task)
			continue
		}
		if len(f.Best) != len(keys) || f.BestStep == 0 {
			t.Errorf("%s: best scores %v at step %d, want the keys %v", f.Task, f.Best, f.BestStep, keys)
		}
		for _, k := range keys {
			if _, ok := f.Best[k]; !ok {
				t.Errorf("%s: no best %s (have %v)", f.Task, k, f.Best)
			}
		}
		ids, span := devIDs[f.Task]
		if !span {
			continue
		}
		pdir := filepath.Join(runsDir, f.ConfigHash, "predictions", fmt.Sprintf("dev-step-%08d", f.BestStep))
		var preds map[string]string
		b, err := os.ReadFile(filepath.Join(pdir, "predictions.json"))
		if err != nil || json.Unmarshal(b, &preds) != nil {
			t.Errorf("%s: predictions.json: %v\n%s", f.Task, err, b)
			continue
		}
		if got := sortedKeys(preds); strings.Join(got, ",") != strings.Join(ids, ",") {
			t.Errorf("%s: predictions.json ids %v, the dev questions are %v", f.Task, got, ids)
		}
		var odds map[string]float64
		b, err = os.ReadFile(filepath.Join(pdir, "null_odds.json"))
		if f.Task == "SQuAD-2.0" {
			if err != nil || json.Unmarshal(b, &odds) != nil || strings.Join(sortedKeys(odds), ",") != strings.Join(ids, ",") {
				t.Errorf("%s: null_odds.json: %v\n%s", f.Task, err, b)
			}
		} else if err == nil {
			t.Errorf("%s: a SQuAD 1.1 run wrote null_odds.json", f.Task)
		}
	}
	for task := range want {
		if !seen[task] {
			t.Errorf("%s is present under the root but was not fine-tuned (%s)", task, out.String())
		}
	}
	if len(fts) != len(want) {
		t.Errorf("%d fine-tuning runs, want one per task (%d)", len(fts), len(want))
	}

	// Everything is done: a second exp run trains nothing and adds no row.
	out.Reset()
	if err := experiments.RunFiles(context.Background(), &out, req()); err != nil {
		t.Fatalf("second exp run: %v\n%s", err, out.String())
	}
	again, _ := st.Finetunes(results.FinetuneFilter{})
	if len(again) != len(fts) || !strings.Contains(out.String(), "ft-e2e: done 0, skipped 5,") {
		t.Errorf("second run: %d fine-tuning runs (had %d)\n%s", len(again), len(fts), out.String())
	}
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

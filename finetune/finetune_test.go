package finetune

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/finetune/tasks"
	"github.com/reproml/albert/model"
	"github.com/reproml/albert/results"
)

func lockThread() func() {
	runtime.LockOSThread()
	return runtime.UnlockOSThread
}

// tinyEncoder is a 1-layer model small enough for seconds-long tests.
func tinyEncoder() model.Config {
	return model.Config{VocabSize: 64, EmbeddingSize: 16, HiddenSize: 32, NumLayers: 1, NumHeads: 2, MaxPositions: 32, Sharing: model.ShareAll}
}

func tinyConfig(steps int) Config {
	c, _ := Profile("cpu", tasks.SST2, string(tasks.Classification))
	c.LR, c.BatchSize, c.Steps, c.WarmupSteps, c.EvalEvery = 3e-3, 16, steps, 5, 10
	c.MaxSeqLen, c.MaxQueryLen, c.MaxQALen, c.ClassifierDropout = 8, 2, 2, 0.1
	c.EvalExamples = 0
	return c
}

// toyFeature is [CLS] x y [SEP] padding with label.
func toyFeature(i, x, y, label, choices int) tasks.Feature {
	f := tasks.Feature{ExampleIndex: i, Label: label, Target: float32(label)}
	for c := 0; c < choices; c++ {
		ids := []int64{2, int64(x), int64(y), 3, 0, 0, 0, 0}
		if choices > 1 {
			ids[1] = int64(10 + c)
			if c == label {
				ids[2] = 7 // the right choice carries token 7
			} else {
				ids[2] = int64(40 + (i+c)%10)
			}
		}
		f.IDs = append(f.IDs, ids)
		f.Segments = append(f.Segments, []int64{0, 0, 0, 0, 0, 0, 0, 0})
		f.Mask = append(f.Mask, []int64{1, 1, 1, 1, 0, 0, 0, 0})
	}
	return f
}

// toyData is a separable task: classification by whether the first token
// is below 20 (tokens 10..29, the second token noise), or multiple choice
// by which of 4 sequences holds token 7.
func toyData(kind tasks.Kind, n, dev int) *Data {
	task := tasks.Task{Name: "toy", Kind: kind, Labels: []string{"0", "1"}, Metric: tasks.MetricAccuracy,
		Metrics: []string{tasks.MetricAccuracy}, TrainSplit: tasks.Train, EvalSplits: []tasks.Split{tasks.Dev}, Choices: 1}
	choices := 1
	if kind == tasks.MultipleChoice {
		task.Labels, task.Choices, choices = []string{"A", "B", "C", "D"}, 4, 4
	}
	make := func(n, off int) ([]tasks.Feature, []tasks.Example) {
		var fs []tasks.Feature
		var ex []tasks.Example
		for i := 0; i < n; i++ {
			k := i + off
			x := 10 + (k*7)%20
			label := 0
			if x < 20 {
				label = 1
			}
			if choices > 1 {
				label = (k * 5) % 4
			}
			fs = append(fs, toyFeature(i, x, 40+(k*3)%20, label, choices))
			ex = append(ex, tasks.Example{ID: fmt.Sprint(k), Label: label})
		}
		return fs, ex
	}
	d := &Data{Task: task}
	d.Train, _ = make(n, 0)
	fs, ex := make(dev, 1000)
	d.Evals = []EvalSet{{Split: tasks.Dev, Examples: ex, Features: fs}}
	return d
}

// testRun plans a fine-tuning run row in a fresh store and claims it.
func testRun(t *testing.T, st *results.Store, hash string) int64 {
	t.Helper()
	exp, err := st.EnsureExperiment("ft", "ft.toml", "h")
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := st.AddFinetuneRun(exp, results.RunSpec{ConfigHash: hash, Name: hash, ConfigJSON: "{}", Profile: "cpu", TotalSteps: 1},
		results.FinetuneSpec{ModelHash: "m", Init: results.InitRandom, Task: "toy", Metric: "accuracy", EvalSplit: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := st.ClaimRun(id, "test:1", time.Minute, false); err != nil || !c.Granted {
		t.Fatal(c, err)
	}
	return id
}

func openStore(t *testing.T) *results.Store {
	t.Helper()
	st, err := results.Open(filepath.Join(t.TempDir(), "exp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func bestValue(res Result, name string) float64 {
	for _, s := range res.Best {
		if s.Split == "dev" && s.Name == name {
			return s.Value
		}
	}
	return math.NaN()
}

// A classification head and a multiple-choice head each learn a separable
// toy task from a random init: dev accuracy far above chance.
func TestHeadsLearnSeparableTasks(t *testing.T) {
	defer lockThread()()
	for _, kind := range []tasks.Kind{tasks.Classification, tasks.MultipleChoice} {
		t.Run(string(kind), func(t *testing.T) {
			st := openStore(t)
			job := Job{RunID: testRun(t, st, "a"), Name: "toy", Seed: 1, Encoder: tinyEncoder(), Config: tinyConfig(80),
				Data: toyData(kind, 96, 48), Dir: t.TempDir(), Device: "cpu", Store: st}
			res, err := Run(context.Background(), job)
			if err != nil {
				t.Fatal(err)
			}
			acc := bestValue(res, tasks.MetricAccuracy)
			chance := 0.5
			if kind == tasks.MultipleChoice {
				chance = 0.25
			}
			t.Logf("%s: best dev accuracy %.3f at step %d (chance %.2f)", kind, acc, res.BestStep, chance)
			if !(acc >= 0.9) {
				t.Errorf("%s: best dev accuracy %.3f, want >= 0.9", kind, acc)
			}
		})
	}
}

var errKilled = errors.New("killed")

// A run stopped between checkpoints (as kill -9 would leave it: rows after
// the last checkpoint written, the process gone) and run again resumes from
// its checkpoint and ends with the curves and best scores of an
// uninterrupted run, with no duplicated rows.
func TestResumeAfterKillGivesSameScores(t *testing.T) {
	defer lockThread()()
	st := openStore(t)
	data := toyData(tasks.Classification, 64, 32)
	c := tinyConfig(40)
	c.EncoderDropout = 0.1 // dropout must replay too
	job := func(id int64, dir string) Job {
		return Job{RunID: id, Name: "toy", Seed: 3, Encoder: tinyEncoder(), Config: c, Data: data, Dir: dir, Device: "cpu", Store: st}
	}
	wholeDir := t.TempDir()
	whole, err := Run(context.Background(), job(testRun(t, st, "whole"), wholeDir))
	if err != nil {
		t.Fatal(err)
	}
	id, dir := testRun(t, st, "killed"), t.TempDir()
	j := job(id, dir)
	j.afterStep = func(step int) error {
		if step == 25 { // checkpoint at 20, rows written up to 25
			return errKilled
		}
		return nil
	}
	if _, err := Run(context.Background(), j); !errors.Is(err, errKilled) {
		t.Fatalf("first attempt: %v", err)
	}
	again, err := Run(context.Background(), job(id, dir))
	if err != nil {
		t.Fatal(err)
	}
	if again.Resumed != 20 {
		t.Errorf("resumed from step %d, want 20", again.Resumed)
	}
	if !reflect.DeepEqual(whole.Best, again.Best) || whole.BestStep != again.BestStep {
		t.Errorf("best scores differ:\nuninterrupted %d %v\nresumed       %d %v", whole.BestStep, whole.Best, again.BestStep, again.Best)
	}
	// The best weights are the same bytes too.
	a, errA := ReadBest(wholeDir)
	b, errB := ReadBest(dir)
	if errA != nil || errB != nil || a.SHA256 != b.SHA256 || a.Step != whole.BestStep || b.Step != again.BestStep {
		t.Errorf("best weights differ after resume: %+v (%v) vs %+v (%v)", a, errA, b, errB)
	}
	for _, name := range []string{"loss", "grad_norm"} {
		a, _ := st.Curve(1, "train", name)
		b, _ := st.Curve(id, "train", name)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("train %s curve differs after resume:\n%v\n%v", name, a, b)
		}
	}
	for _, split := range []string{"dev"} {
		a, _ := st.Curve(1, split, "accuracy")
		b, _ := st.Curve(id, split, "accuracy")
		if !reflect.DeepEqual(a, b) || len(b) != 4 {
			t.Errorf("dev curve differs after resume (want 4 points):\n%v\n%v", a, b)
		}
	}
}

// Fine-tuning steps, evaluations and checkpoints free what they make: the
// live gotch tensors do not grow with the steps.
func TestFineTuningDoesNotLeak(t *testing.T) {
	defer lockThread()()
	st := openStore(t)
	c := tinyConfig(200)
	c.EvalEvery = 50
	c.EncoderDropout = 0.1
	runWithoutLeak(t, Job{RunID: testRun(t, st, "leak"), Name: "toy", Seed: 1, Encoder: tinyEncoder(), Config: c,
		Data: toyData(tasks.MultipleChoice, 64, 32), Dir: t.TempDir(), Device: "cpu", Store: st})
	_ = backend.Threads
}

// The weights kept as the best checkpoint are those of the best evaluation:
// loaded into a fresh model they score exactly the stored best accuracy and
// dev loss (the loss tells evaluations apart even where accuracies tie); a
// damaged file is refused.
func TestBestWeightsScoreTheBestEvaluation(t *testing.T) {
	defer lockThread()()
	st := openStore(t)
	c := tinyConfig(60)
	c.LR = 2e-2 // a rate that overshoots, so the best evaluation is rarely the last
	data := toyData(tasks.Classification, 96, 48)
	dir := t.TempDir()
	job := Job{RunID: testRun(t, st, "best"), Name: "toy", Seed: 2, Encoder: tinyEncoder(), Config: c,
		Data: data, Dir: dir, Device: "cpu", Store: st}
	res, err := Run(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(tinyEncoder(), data.Task, c, 99, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rec, err := m.LoadBest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Step != res.BestStep || rec.Value == nil || *rec.Value != bestValue(res, tasks.MetricAccuracy) {
		t.Errorf("best record %+v, run's best step %d accuracy %v", rec, res.BestStep, bestValue(res, tasks.MetricAccuracy))
	}
	e := data.Evals[0]
	p := m.predict(e.Features, evalBatch(c))
	ms, err := scoreSplit(data.Task, e, p, c, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if ms[tasks.MetricAccuracy] != bestValue(res, tasks.MetricAccuracy) || math.Abs(p.Loss-bestValue(res, "loss")) > 1e-6 {
		t.Errorf("loaded best weights score accuracy %v loss %.7f; the best evaluation (step %d of %d) %v, %.7f",
			ms[tasks.MetricAccuracy], p.Loss, res.BestStep, c.Steps, bestValue(res, tasks.MetricAccuracy), bestValue(res, "loss"))
	}
	t.Logf("best evaluation at step %d of %d", res.BestStep, c.Steps)
	if err := os.WriteFile(filepath.Join(dir, BestWeights), []byte("damaged"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.LoadBest(dir); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("a damaged best.pt loaded: %v", err)
	}
}

// runWithoutLeak runs job (200 steps, an evaluation every 50) and fails if
// the live gotch tensors after step 199 differ from those after step 50 (an
// evaluation and a checkpoint in): steps, evaluations and checkpoints must
// free what they make.
func runWithoutLeak(t *testing.T, job Job) {
	t.Helper()
	var at50 int
	job.afterStep = func(step int) error {
		switch step {
		case 50:
			at50 = len(ts.ExistingTensors)
		case 199:
			if got := len(ts.ExistingTensors); got != at50 {
				return fmt.Errorf("live gotch tensors: %d after step 50 (an eval and a checkpoint), %d after step 199", at50, got)
			}
		}
		return nil
	}
	if _, err := Run(context.Background(), job); err != nil {
		t.Fatal(err)
	}
}

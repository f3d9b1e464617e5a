package train

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/data"
	"github.com/reproml/albert/model"
)

// A training step must free everything it makes: after warm-up, neither
// the live gotch handles nor the resident memory may grow with the steps.
// (gotch's in-place ops used to orphan a handle that pinned the optimizer's
// update tensor: this test then measured +92 MiB over the 200 steps; now ~1.)
// `exp bench --memory` is the 2000-step version on the tiny model.
func TestStepsDoNotLeak(t *testing.T) {
	defer lockThread()()
	if err := backend.Seed(1); err != nil {
		t.Fatal(err)
	}
	sp, next := dropoutStepper(t, model.ShareNone)
	checkStepsDoNotLeak(t, sp, next, 100, 300, "steps")
}

// checkStepsDoNotLeak runs sp for steps steps and fails if the live gotch
// handles or the resident memory grew between step warm and the last (what
// names the steps in messages).
func checkStepsDoNotLeak(t *testing.T, sp *Stepper, next func() (data.Batch, error), warm, steps int, what string) {
	t.Helper()
	var handles int
	var rss int64
	for step := 1; step <= steps; step++ {
		if _, _, err := sp.Step(next, 1e-3, step%10 == 0); err != nil {
			t.Fatal(err)
		}
		if step == warm {
			handles, rss = len(ts.ExistingTensors), residentBytes()
		}
	}
	if got := len(ts.ExistingTensors); got != handles {
		t.Errorf("live gotch tensors: %d after step %d, %d after step %d", handles, warm, got, steps)
	}
	grown := float64(residentBytes()-rss) / (1 << 20)
	t.Logf("RSS grew %.2f MiB over %s %d..%d", grown, what, warm, steps)
	if grown > 8 {
		t.Errorf("RSS grew %.1f MiB over %d %s after warm-up: a per-step leak", grown, steps-warm, what)
	}
}

// residentBytes is VmRSS from /proc/self/status (0 where unavailable).
func residentBytes() int64 {
	fh, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v << 10
		}
	}
	return 0
}

// Evaluation, layer transitions and checkpoints must free what they make
// too: gotch's tensors carry no GC ballast here (torchbuild removes it), so a
// handle left to a finalizer may wait a long time for the collector.
func TestEvalAndCheckpointsDoNotLeak(t *testing.T) {
	defer lockThread()()
	sp := smallStepper(t, model.Config{VocabSize: 1000, EmbeddingSize: 16, HiddenSize: 32, NumLayers: 2, NumHeads: 2,
		MaxPositions: 64, Sharing: model.ShareNone, SentenceHead: true}, DefaultConfig())
	m := sp.Model
	b := syntheticBatch(3, 4, 32, 5, 1000)
	sets := data.EvalSets{MLM: []data.Batch{b, b}, NSP: []data.Batch{b}, SOP: []data.Batch{b}}
	if _, _, err := sp.Step(func() (data.Batch, error) { return b, nil }, 1e-3, true); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	round := func(step int) int {
		Evaluate(m, sets, 0)
		Transitions(m, sets.MLM, 0)
		if err := SaveCheckpoint(dir, Checkpoint{Step: step}, m, sp.Opt); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadCheckpoint(dir, m, sp.Opt); err != nil {
			t.Fatal(err)
		}
		return len(ts.ExistingTensors)
	}
	first := round(1)
	for i := 2; i <= 4; i++ {
		if got := round(i); got != first {
			t.Fatalf("live gotch tensors: %d after the first eval+checkpoint round, %d after round %d", first, got, i)
		}
	}
}

// dropoutStepper is smallStepper for a 2-layer model with dropout and a
// sentence head, and a source cycling over two synthetic batches.
func dropoutStepper(t *testing.T, sharing model.Sharing) (*Stepper, func() (data.Batch, error)) {
	t.Helper()
	sp := smallStepper(t, model.Config{VocabSize: 1000, EmbeddingSize: 16, HiddenSize: 32, NumLayers: 2, NumHeads: 2,
		MaxPositions: 64, Sharing: sharing, HiddenDropout: 0.1, AttentionDropout: 0.1, SentenceHead: true}, DefaultConfig())
	batches := []data.Batch{syntheticBatch(1, 8, 32, 5, 1000), syntheticBatch(2, 8, 32, 5, 1000)}
	k := 0
	return sp, func() (data.Batch, error) { k++; return batches[k%2], nil }
}

// smallStepper builds a model of mc on the CPU and a stepper for it under c;
// both are freed when the test ends.
func smallStepper(t *testing.T, mc model.Config, c Config) *Stepper {
	t.Helper()
	m, err := model.New(mc, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.VarStore.Destroy)
	sp, err := NewStepper(m, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sp.Close)
	return sp
}

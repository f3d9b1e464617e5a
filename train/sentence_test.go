package train

import (
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/data"
	"github.com/reproml/albert/model"
)

// TestSentenceHeadOverfits trains a tiny model on 64 fixed held-out pairs of
// each sentence objective and checks that the sentence head fits them: the
// loss on those pairs, scored against the batch's own labels outside the
// training path, falls near 0 and every pair is right. Alongside, it checks
// the wiring that memorisation alone would not catch:
//   - the sentence loss reaches the encoder (a detached head would still fit
//     64 pairs from the pooler's random features, but leave the encoder's
//     gradient at 0);
//   - every pooler and head parameter moves (one left out of the optimizer
//     stays at its initial value while the encoder adapts around it).
//
// Reading the wrong position is TestPoolerReadsCLS's job. Breaking each of
// these (a detach before the head, the head's parameters dropped from the
// optimizer, shuffled labels in toDevice) makes this test fail.
func TestSentenceHeadOverfits(t *testing.T) {
	for _, obj := range []data.Objective{data.ObjectiveNSP, data.ObjectiveSOP} {
		t.Run(string(obj), func(t *testing.T) {
			defer lockThread()()
			dc := data.DefaultConfig()
			dc.VocabSize, dc.SeqLen, dc.MaxPredictions, dc.EvalExamples, dc.DupeFactor = 8000, 64, 10, 64, 0
			ds, err := data.Prepare(dc, obj, cacheRoot(t))
			if err != nil {
				t.Fatal(err)
			}
			sets, err := ds.EvalSets(32)
			if err != nil {
				t.Fatal(err)
			}
			pairs := sets.NSP
			if obj == data.ObjectiveSOP {
				pairs = sets.SOP
			}
			backend.Seed(7)
			c := DefaultConfig()
			c.Optimizer, c.LR, c.BiasCorrection, c.WeightDecay = "adamw", 0.002, true, 0
			sp := smallStepper(t, model.Config{VocabSize: 8000, EmbeddingSize: 32, HiddenSize: 64, NumLayers: 2, NumHeads: 2,
				MaxPositions: 64, Sharing: model.ShareAll, SentenceHead: true}.Resolve(), c)
			m := sp.Model

			watched := map[string][]float64{}
			for _, p := range m.Params {
				if strings.HasPrefix(p.Name, "pooler/") || strings.HasPrefix(p.Name, "sentence/") {
					watched[p.Name] = p.Tensor.Float64Values()
				}
			}
			if len(watched) != 4 {
				t.Fatalf("pooler and sentence head parameters: %v", slices.Sorted(maps.Keys(watched)))
			}
			if g := sentenceGradToEncoder(t, m, pairs[0]); g == 0 {
				t.Fatal("the sentence loss has no gradient in the encoder: the head is detached")
			}

			i := 0
			next := func() (data.Batch, error) { b := pairs[i%len(pairs)]; i++; return b, nil }
			const steps = 300
			for step := 0; step < steps; step++ {
				if _, _, err := sp.Step(next, c.LR, false); err != nil {
					t.Fatal(err)
				}
			}
			var ps []pairScore
			for _, b := range pairs {
				ps = append(ps, sentenceScores(m, b)...)
			}
			got := sentenceMetrics("s", ps)
			t.Logf("%s: after %d steps on %d pairs: loss %.4f, accuracy %.3f", obj, steps, len(ps), got["s_loss"], got["s_acc"])
			if got["s_loss"] > 0.05 || got["s_acc"] < 1 {
				t.Errorf("the sentence head did not fit %d fixed pairs: loss %.4f, accuracy %.3f", len(ps), got["s_loss"], got["s_acc"])
			}
			for _, p := range m.Params {
				if before, ok := watched[p.Name]; ok && slices.Equal(before, p.Tensor.Float64Values()) {
					t.Errorf("%s did not change in %d steps: is it in the optimizer?", p.Name, steps)
				}
			}
		})
	}
}

// sentenceGradToEncoder is the norm of the sentence loss's gradient in the
// word embeddings.
func sentenceGradToEncoder(t *testing.T, m *model.Model, b data.Batch) float64 {
	var s backend.Scope
	defer s.Free()
	var word *ts.Tensor
	for _, p := range m.Params {
		if p.Name == "embeddings/word" {
			word = p.Tensor
		}
	}
	if word == nil {
		t.Fatal("no embeddings/word parameter")
	}
	tt := toDevice(&s, b, m.Device)
	out := m.Forward(&s, tt.in, false, false)
	g, err := gradients(sentenceLoss(&s, out.SentenceLogits, tt), []*ts.Tensor{word})
	if err != nil {
		t.Fatal(err)
	}
	if g[0] == nil {
		return 0
	}
	s.T(g[0])
	return backend.Float64s(s.T(g[0].MustNorm(false)))[0]
}

// TestPoolerReadsCLS checks that the pooled output is tanh(W·h₀ + b) of the
// first ([CLS]) position alone: changing any other position leaves it as
// it is, changing position 0 changes it.
func TestPoolerReadsCLS(t *testing.T) {
	defer lockThread()()
	backend.Seed(3)
	m, err := model.New(model.Config{VocabSize: 100, EmbeddingSize: 16, HiddenSize: 16, NumLayers: 1, NumHeads: 1,
		MaxPositions: 8, SentenceHead: true}.Resolve(), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer m.VarStore.Destroy()
	var s backend.Scope
	defer s.Free()
	h := s.T(ts.MustRandn([]int64{2, 8, 16}, gotch.Float, gotch.CPU))
	base := backend.Float64s(m.Pooler.Forward(&s, h))
	for _, pos := range []int64{0, 1, 7} {
		h2 := s.T(h.MustAddScalar(ts.FloatScalar(0), false))
		row := s.T(h2.MustSelect(1, pos, false))
		row.MustAddScalar_(ts.FloatScalar(1))
		got := backend.Float64s(m.Pooler.Forward(&s, h2))
		var diff float64
		for i := range got {
			diff = max(diff, math.Abs(got[i]-base[i]))
		}
		if (pos == 0) != (diff > 1e-4) {
			t.Errorf("changing position %d changed the pooled output by %.3g", pos, diff)
		}
	}
}

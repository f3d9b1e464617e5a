package train

import (
	"maps"
	"math"
	"math/rand/v2"
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

// TestSentenceHeadComparesSegments checks that the sentence head can learn a
// task only a comparison of the two segments solves, on fresh pairs it has
// not seen: each segment draws its tokens from one of 8 disjoint "topics",
// and the label says whether B's topic differs from A's — NSP's topic cue
// with nothing else. Either segment alone says nothing about the label, so
// memorising pairs (TestSentenceHeadOverfits) cannot pass it; an attention
// mask or segment embedding that kept [CLS] from seeing both segments would
// leave it at chance.
func TestSentenceHeadComparesSegments(t *testing.T) {
	defer lockThread()()
	const (
		topics, perTopic, lenA, lenB, seq = 8, 10, 14, 15, 32
		cls, sep, firstID                 = 2, 3, 10
	)
	rng := rand.New(rand.NewPCG(1, 2))
	batch := func(size int) data.Batch {
		b := data.Batch{Size: size, SeqLen: seq, MaxPred: 1,
			MaskedPositions: make([]int64, size), MaskedIDs: make([]int64, size), MaskedWeights: make([]float32, size)}
		draw := func(topic, n int) []int64 {
			ids := make([]int64, n)
			for i := range ids {
				ids[i] = int64(firstID + topic*perTopic + rng.IntN(perTopic))
			}
			return ids
		}
		for range size {
			ta, tb, label := rng.IntN(topics), 0, int64(rng.IntN(2))
			if tb = ta; label == 1 {
				tb = (ta + 1 + rng.IntN(topics-1)) % topics
			}
			ids := append(append(append(append([]int64{cls}, draw(ta, lenA)...), sep), draw(tb, lenB)...), sep)
			for i := range ids {
				b.SegmentIDs = append(b.SegmentIDs, int64(min(1, max(0, i-lenA-1))))
				b.InputMask = append(b.InputMask, 1)
			}
			b.InputIDs = append(b.InputIDs, ids...)
			b.SentenceLabels = append(b.SentenceLabels, label)
		}
		return b
	}
	backend.Seed(11)
	c := DefaultConfig()
	c.Optimizer, c.LR, c.BiasCorrection, c.WeightDecay = "adamw", 0.0005, true, 0
	sp := smallStepper(t, model.Config{VocabSize: 100, EmbeddingSize: 32, HiddenSize: 64, NumLayers: 2, NumHeads: 2,
		MaxPositions: seq, Sharing: model.ShareAll, SentenceHead: true}.Resolve(), c)
	next := func() (data.Batch, error) { return batch(32), nil }
	// AdamW at lr 0.0005 with 100 warm-up steps: 93-94% at step 800 and
	// 98-100% at step 1200 with 1 and with 2 threads. At lr 0.001 the run
	// depended on the thread count (87% with 1, 64% with 2 after 800 steps),
	// and a constant 0.002 without warm-up rose to 61% and fell back to chance.
	const steps = 1200
	for step := 0; step < steps; step++ {
		if _, _, err := sp.Step(next, c.LR*min(1, float64(step+1)/100), false); err != nil {
			t.Fatal(err)
		}
		if step%200 == 199 {
			got := sentenceMetrics("s", sentenceScores(sp.Model, batch(256)))
			t.Logf("step %d: loss %.4f acc %.3f", step+1, got["s_loss"], got["s_acc"])
		}
	}
	got := sentenceMetrics("s", sentenceScores(sp.Model, batch(512)))
	t.Logf("after %d steps: fresh pairs: loss %.4f, accuracy %.3f", steps, got["s_loss"], got["s_acc"])
	if got["s_acc"] < 0.9 {
		t.Errorf("the sentence head did not learn to compare segments: accuracy %.3f on fresh pairs (chance 0.5)", got["s_acc"])
	}
}

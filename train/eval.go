package train

import (
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/data"
	"github.com/reproml/albert/model"
	"github.com/reproml/albert/results"
)

// Evaluate scores m on the fixed held-out sets, as paper Table 5 does for
// every model whatever it was trained on: MLM accuracy and loss on the MLM
// set, NSP accuracy on the NSP set, SOP accuracy on the SOP set. A model
// without a sentence head (objective "none") has no NSP/SOP accuracy.
// limit > 0 caps the batches used from each set.
func Evaluate(m *model.Model, sets data.EvalSets, limit int) map[string]float64 {
	out := map[string]float64{}
	var correct, loss, weight float64
	for i, b := range sets.MLM {
		if limit > 0 && i >= limit {
			break
		}
		c, l, w := mlmScore(m, b)
		correct, loss, weight = correct+c, loss+l, weight+w
	}
	if weight > 0 {
		out["mlm_acc"] = correct / weight
		out["mlm_loss"] = loss / weight
	}
	if m.Sentence != nil {
		for name, set := range map[string][]data.Batch{"nsp_acc": sets.NSP, "sop_acc": sets.SOP} {
			var right, n float64
			for i, b := range set {
				if limit > 0 && i >= limit {
					break
				}
				r, k := sentenceScore(m, b)
				right, n = right+r, n+k
			}
			if n > 0 {
				out[name] = right / n
			}
		}
	}
	return out
}

// mlmScore returns Σw·[argmax = label], Σw·nll and Σw over one batch.
func mlmScore(m *model.Model, b data.Batch) (correct, loss, weight float64) {
	var s backend.Scope
	defer s.Free()
	backend.NoGrad(func() {
		t := toDevice(&s, b, m.Device)
		out := m.Forward(&s, t.in, false, false)
		pred := s.T(out.MLMLogits.MustArgmax([]int64{1}, false, false))
		hit := s.T(s.T(pred.MustEqTensor(t.mlmIDs, false)).MustTotype(gotch.Float, false))
		nll := s.T(s.T(s.T(out.MLMLogits.MustLogSoftmax(-1, gotch.Float, false)).MustGather(1, s.T(t.mlmIDs.MustUnsqueeze(1, false)), false, false)).MustSqueezeDim(1, false))
		sums := s.T(ts.MustStack([]*ts.Tensor{
			s.T(s.T(hit.MustMul(t.mlmW, false)).MustSum(gotch.Float, false)),
			s.T(s.T(nll.MustMul(t.mlmW, false)).MustSum(gotch.Float, false)),
			s.T(t.mlmW.MustSum(gotch.Float, false)),
		}, 0))
		v := backend.Float64s(sums)
		correct, loss, weight = v[0], -v[1], v[2]
	})
	return
}

// sentenceScore returns the number of correct sentence labels and the batch size.
func sentenceScore(m *model.Model, b data.Batch) (right, n float64) {
	var s backend.Scope
	defer s.Free()
	backend.NoGrad(func() {
		t := toDevice(&s, b, m.Device)
		t.in.MaskedPositions = nil
		out := m.Forward(&s, t.in, false, false)
		pred := s.T(out.SentenceLogits.MustArgmax([]int64{1}, false, false))
		hits := s.T(s.T(s.T(pred.MustEqTensor(t.labels, false)).MustTotype(gotch.Float, false)).MustSum(gotch.Float, false))
		right = backend.Float64s(hits)[0]
		n = float64(b.Size)
	})
	return
}

// Transitions measures, for each layer, how far its output moved from its
// input (paper Figure 1 in v6, Figure 2 in v1): the L2 distance and the angle
// in degrees between each token's input and output embedding, averaged over
// the real tokens of the held-out batches. Layers are numbered from 1.
func Transitions(m *model.Model, batches []data.Batch, limit int) []results.Transition {
	L := m.Config.NumLayers
	l2 := make([]float64, L)
	deg := make([]float64, L)
	var tokens float64
	for i, b := range batches {
		if limit > 0 && i >= limit {
			break
		}
		var s backend.Scope
		backend.NoGrad(func() {
			t := toDevice(&s, b, m.Device)
			t.in.MaskedPositions = nil
			out := m.Forward(&s, t.in, false, true)
			mask := s.T(t.in.Mask.MustTotype(gotch.Float, false))
			var rows []*ts.Tensor
			for l := 0; l < L; l++ {
				in, o := out.States[l], out.States[l+1]
				dist := s.T(s.T(o.MustSub(in, false)).MustNormScalaroptDim(ts.FloatScalar(2), []int64{-1}, false, false))
				cos := s.T(ts.MustCosineSimilarity(in, o, -1, 1e-8))
				ang := s.T(s.T(cos.MustClamp(ts.FloatScalar(-1), ts.FloatScalar(1), false)).MustArccos(false))
				rows = append(rows,
					s.T(s.T(dist.MustMul(mask, false)).MustSum(gotch.Float, false)),
					s.T(s.T(ang.MustMul(mask, false)).MustSum(gotch.Float, false)))
			}
			rows = append(rows, s.T(mask.MustSum(gotch.Float, false)))
			v := backend.Float64s(s.T(ts.MustStack(rows, 0)))
			for l := 0; l < L; l++ {
				l2[l] += v[2*l]
				deg[l] += v[2*l+1]
			}
			tokens += v[2*L]
		})
		s.Free()
	}
	var tr []results.Transition
	for l := 0; l < L; l++ {
		if tokens == 0 {
			break
		}
		tr = append(tr, results.Transition{Layer: l + 1, L2: l2[l] / tokens, CosineDeg: deg[l] / tokens * 180 / math.Pi})
	}
	return tr
}

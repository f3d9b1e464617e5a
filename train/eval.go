package train

import (
	"math"
	"sort"

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
// without a sentence head (objective "none") has no NSP/SOP scores.
// limit > 0 caps the batches used from each set.
//
// Beside the accuracies it reports what a reader needs to judge them:
//
//	mlm_n, nsp_n, sop_n    the scored masked tokens and pairs (binomial error)
//	mlm_plateau            accuracy of always predicting the set's most frequent
//	                       masked token: the unigram plateau a model sits on
//	                       before it uses context
//	nsp_loss, sop_loss     held-out cross-entropy of the sentence head
//	nsp_auc, sop_auc       ROC AUC of P(label 1): above 0.5 when the head ranks
//	                       pairs better than chance even if argmax is constant
//	nsp_majority, …        the fraction of pairs given the most frequent
//	                       predicted class (1 = a constant prediction)
//	nsp_acc_pos            NSP accuracy on true-next pairs, and on random
//	nsp_acc_neg_same       segments from a document of the same source or of
//	nsp_acc_neg_other      another source (when the corpus names sources)
func Evaluate(m *model.Model, sets data.EvalSets, limit int) map[string]float64 {
	out := map[string]float64{}
	var correct, loss, weight float64
	counts := map[int64]float64{}
	for i, b := range sets.MLM {
		if limit > 0 && i >= limit {
			break
		}
		c, l, w := mlmScore(m, b)
		correct, loss, weight = correct+c, loss+l, weight+w
		for j, id := range b.MaskedIDs {
			counts[id] += float64(b.MaskedWeights[j])
		}
	}
	if weight > 0 {
		out["mlm_acc"] = correct / weight
		out["mlm_loss"] = loss / weight
		out["mlm_n"] = weight
		top := 0.0
		for _, c := range counts {
			top = max(top, c)
		}
		out["mlm_plateau"] = top / weight
	}
	if m.Sentence != nil {
		for _, set := range []struct {
			name    string
			batches []data.Batch
		}{{"nsp", sets.NSP}, {"sop", sets.SOP}} {
			var ps []pairScore
			for i, b := range set.batches {
				if limit > 0 && i >= limit {
					break
				}
				ps = append(ps, sentenceScores(m, b)...)
			}
			for k, v := range sentenceMetrics(set.name, ps) {
				out[k] = v
			}
		}
	}
	return out
}

// pairScore is the sentence head's verdict on one held-out pair.
type pairScore struct {
	p1    float64 // P(label 1)
	label int64
	kind  int8 // data.Neg*
}

// sentenceMetrics summarises one held-out set's pair scores under the
// prefix name (nsp, sop): see Evaluate.
func sentenceMetrics(name string, ps []pairScore) map[string]float64 {
	out := map[string]float64{}
	if len(ps) == 0 {
		return out
	}
	var right, nll, pred1 float64
	type tally struct{ right, n float64 }
	byKind := map[int8]*tally{}
	for _, p := range ps {
		pred := int64(0)
		if p.p1 > 0.5 {
			pred = 1
		}
		pred1 += float64(pred)
		hit := 0.0
		if pred == p.label {
			hit = 1
		}
		right += hit
		q := p.p1
		if p.label == 0 {
			q = 1 - p.p1
		}
		nll -= math.Log(max(q, 1e-12))
		if byKind[p.kind] == nil {
			byKind[p.kind] = &tally{}
		}
		byKind[p.kind].right += hit
		byKind[p.kind].n++
	}
	n := float64(len(ps))
	out[name+"_acc"] = right / n
	out[name+"_n"] = n
	out[name+"_loss"] = nll / n
	out[name+"_majority"] = max(pred1, n-pred1) / n
	if auc, ok := rocAUC(ps); ok {
		out[name+"_auc"] = auc
	}
	if name == "nsp" && (byKind[data.NegSameSource] != nil || byKind[data.NegOtherSource] != nil) {
		for kind, key := range map[int8]string{data.NegNone: "nsp_acc_pos", data.NegSameSource: "nsp_acc_neg_same", data.NegOtherSource: "nsp_acc_neg_other"} {
			if t := byKind[kind]; t != nil {
				out[key] = t.right / t.n
			}
		}
	}
	return out
}

// rocAUC is the probability that a random label-1 pair scores above a
// random label-0 pair, ties counting half: the Mann–Whitney statistic from
// average ranks. It needs both labels.
func rocAUC(ps []pairScore) (float64, bool) {
	s := append([]pairScore(nil), ps...)
	sort.Slice(s, func(i, j int) bool { return s[i].p1 < s[j].p1 })
	var pos, neg, rankSum float64
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j].p1 == s[i].p1 {
			j++
		}
		avg := float64(i+j+1) / 2 // the average of ranks i+1 … j
		for k := i; k < j; k++ {
			if s[k].label == 1 {
				pos++
				rankSum += avg
			} else {
				neg++
			}
		}
		i = j
	}
	if pos == 0 || neg == 0 {
		return 0, false
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg), true
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

// sentenceScores returns the head's P(label 1) for each pair of one batch.
func sentenceScores(m *model.Model, b data.Batch) []pairScore {
	var s backend.Scope
	defer s.Free()
	var p1 []float64
	backend.NoGrad(func() {
		t := toDevice(&s, b, m.Device)
		t.in.MaskedPositions = nil
		out := m.Forward(&s, t.in, false, false)
		probs := s.T(out.SentenceLogits.MustSoftmax(-1, gotch.Float, false))
		p1 = backend.Float64s(s.T(probs.MustSelect(1, 1, false)))
	})
	ps := make([]pairScore, b.Size)
	for i := range ps {
		ps[i] = pairScore{p1: p1[i], label: b.SentenceLabels[i]}
		if b.NegativeKinds != nil {
			ps[i].kind = b.NegativeKinds[i]
		}
	}
	return ps
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

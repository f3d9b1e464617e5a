package finetune

import (
	"fmt"
	"math/rand/v2"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/finetune/score"
	"github.com/reproml/albert/finetune/tasks"
	"github.com/reproml/albert/model"
)

// SpanHead names the head of a span task. It is derived from the task
// (SpanHeadOf), not stored as a fine-tuning setting: SQuAD 1.1 and span
// stand-ins use run_squad_v1.py's head, SQuAD 2.0 run_squad_v2.py's.
type SpanHead string

// Span heads.
const (
	// SpanHeadV1 is run_squad_v1.py's head: linear 2×H over the sequence
	// output, start and end logits, the mean of their cross-entropies.
	SpanHeadV1 SpanHead = "v1"
	// SpanHeadV2 is run_squad_v2.py's (squad_utils.create_v2_model, from
	// XLNet): start logits masked by p_mask, end logits conditioned on the
	// start, an answerability logit; see squadV2Head.
	SpanHeadV2 SpanHead = "v2"
)

// SpanHeadOf is the head the official code trains task with: SpanHeadV2 for
// SQuAD 2.0 (unanswerable questions), SpanHeadV1 for every other span
// task, "" for tasks that are not span tasks.
func SpanHeadOf(t tasks.Task) SpanHead {
	switch {
	case t.Kind != tasks.Span:
		return ""
	case t.SQuADVersion == 2:
		return SpanHeadV2
	}
	return SpanHeadV1
}

// run_squad_v2.py's beam at inference: start_n_top starts, end_n_top ends
// for each.
const (
	StartNTop = 5
	EndNTop   = 5
)

// answerLossWeight scales the answerability loss (v2_model_fn_builder: "by
// default multiply the loss by 0.5 so that the scale is comparable to
// start_loss and end_loss").
const answerLossWeight = 0.5

// maskedLogit is what p_mask puts at a position that cannot start or end
// an answer (logits·(1−p_mask) − 1e30·p_mask).
const maskedLogit = 1e30

// squadV2Head is squad_utils.create_v2_model's head on the sequence output
// h (H wide), all of it trained from a truncated normal (σ =
// initializer_range) with zero biases and a unit LayerNorm:
//
//   - start_logits: dense H→1 at each position, masked by p_mask (the
//     question, [SEP] and padding; [CLS] and the context stay), log-softmax;
//   - end_logits: at each position i, dense_1(LayerNorm(tanh(dense_0([h_i,
//     h_start])))) with dense_0 2H→H and dense_1 H→1, masked the same way,
//     log-softmax; h_start is the gold start's vector in training and each of
//     the StartNTop best starts at inference, of which the EndNTop best ends
//     are kept;
//   - answer_class: dense_1(dropout(tanh(dense_0([Σ_i p_start(i)·h_i,
//     h_[CLS]])))) with dense_0 2H→H and dense_1 H→1 without bias, p_start
//     the softmax of the masked start logits: one logit per window, the
//     larger the less answerable, trained with sigmoid cross-entropy against
//     is_impossible.
type squadV2Head struct {
	StartW, StartB *ts.Tensor // [1,H], [1]
	End0W, End0B   *ts.Tensor // [H,2H], [H]
	EndLNW, EndLNB *ts.Tensor // [H], [H]
	End1W, End1B   *ts.Tensor // [1,H], [1]
	Ans0W, Ans0B   *ts.Tensor // [H,2H], [H]
	Ans1W          *ts.Tensor // [1,H], no bias
	eps            float64    // the LayerNorm's (contrib layer_norm: 1e-12)
	params         []model.Param
}

func newSquadV2Head(enc model.Config, seed int64, dev gotch.Device) *squadV2Head {
	H := int64(enc.HiddenSize)
	sigma := enc.InitializerRange
	if sigma == 0 {
		sigma = 0.02
	}
	// One generator for the five kernels, drawn in a fixed order: the head
	// is a function of the seed, and no two kernels share draws.
	r := rand.New(rand.NewPCG(uint64(seed), 0x7632686561640a))
	zeros := func(n int64) *ts.Tensor { return ts.MustZeros([]int64{n}, gotch.Float, dev) }
	h := &squadV2Head{eps: 1e-12}
	add := func(dst **ts.Tensor, name string, t *ts.Tensor, decay bool) {
		*dst = t.MustSetRequiresGrad(true, true)
		h.params = append(h.params, model.Param{Name: "head/" + name, Tensor: *dst, Decay: decay})
	}
	add(&h.StartW, "start_logits/weight", truncNormalFrom(r, 1, H, sigma, dev), true)
	add(&h.StartB, "start_logits/bias", zeros(1), false)
	add(&h.End0W, "end_logits/dense_0/weight", truncNormalFrom(r, H, 2*H, sigma, dev), true)
	add(&h.End0B, "end_logits/dense_0/bias", zeros(H), false)
	add(&h.EndLNW, "end_logits/layer_norm/weight", ts.MustOnes([]int64{H}, gotch.Float, dev), false)
	add(&h.EndLNB, "end_logits/layer_norm/bias", zeros(H), false)
	add(&h.End1W, "end_logits/dense_1/weight", truncNormalFrom(r, 1, H, sigma, dev), true)
	add(&h.End1B, "end_logits/dense_1/bias", zeros(1), false)
	add(&h.Ans0W, "answer_class/dense_0/weight", truncNormalFrom(r, H, 2*H, sigma, dev), true)
	add(&h.Ans0B, "answer_class/dense_0/bias", zeros(H), false)
	add(&h.Ans1W, "answer_class/dense_1/weight", truncNormalFrom(r, 1, H, sigma, dev), true)
	return h
}

func (h *squadV2Head) close() {
	for _, p := range h.params {
		p.Tensor.MustDrop()
	}
}

// V2Outputs are the v2 head's outputs of one batch of B windows of S
// positions; every tensor belongs to the forward pass's scope.
type V2Outputs struct {
	// StartLogProbs is the log-softmax of the masked start logits, [B,S].
	StartLogProbs *ts.Tensor
	// EndLogProbs is the log-softmax of the masked end logits conditioned on
	// the gold start (Inputs.Start), [B,S]; nil without gold starts.
	EndLogProbs *ts.Tensor
	// Cls is the answerability logit of each window, [B]: sigmoid(Cls) is
	// the probability that the window holds no answer.
	Cls *ts.Tensor
	// The beam, at inference only (nil in training): the K = StartNTop best
	// starts' log-probabilities and positions, [B,K], and for start k the
	// E = EndNTop best ends at k·E … k·E+E−1 of EndTop*, [B,K·E].
	StartTopLogProbs, StartTopIndex *ts.Tensor
	EndTopLogProbs, EndTopIndex     *ts.Tensor
}

// mask applies p_mask (1 where no answer can start or end) to logits of any
// shape p broadcasts to: logits·(1−p) − 1e30·p.
func mask(s *backend.Scope, logits, p *ts.Tensor) *ts.Tensor {
	keep := s.T(s.T(p.MustMulScalar(ts.FloatScalar(-1), false)).MustAddScalar(ts.FloatScalar(1), false))
	return s.T(s.T(logits.MustMul(keep, false)).MustSub(s.T(p.MustMulScalar(ts.FloatScalar(maskedLogit), false)), false))
}

// endLogits is dense_1(LayerNorm(tanh(dense_0([hidden, start])))) over the
// last dimension: [..., H] and [..., H] give [...].
func (h *squadV2Head) endLogits(s *backend.Scope, hidden, start *ts.Tensor) *ts.Tensor {
	H := h.EndLNW.MustSize()[0]
	x := s.T(ts.MustCat([]*ts.Tensor{hidden, start}, -1))
	x = s.T(s.T(ts.MustLinear(x, h.End0W, h.End0B)).MustTanh(false))
	x = s.T(ts.MustLayerNorm(x, []int64{H}, h.EndLNW, h.EndLNB, h.eps, false))
	return s.T(s.T(ts.MustLinear(x, h.End1W, h.End1B)).MustSqueezeDim(-1, false))
}

// forward runs the head on the sequence output hidden [B,S,H] with p_mask
// pmask [B,S] (float, 1 = masked). goldStart [B] (int64) conditions
// EndLogProbs; nil leaves it out. With beam the StartNTop × EndNTop beam is
// computed too. dropout is the answerability layer's (training only).
func (h *squadV2Head) forward(s *backend.Scope, hidden, pmask, goldStart *ts.Tensor, beam bool, dropout float64, train bool) *V2Outputs {
	size := hidden.MustSize()
	B, S, H := size[0], size[1], size[2]
	out := &V2Outputs{}
	start := s.T(s.T(ts.MustLinear(hidden, h.StartW, h.StartB)).MustSqueezeDim(-1, false)) // [B,S]
	startMasked := mask(s, start, pmask)
	out.StartLogProbs = s.T(startMasked.MustLogSoftmax(-1, gotch.Float, false))

	if goldStart != nil {
		idx := s.T(s.T(goldStart.MustView([]int64{B, 1, 1}, false)).MustExpand([]int64{B, 1, H}, false, false))
		feat := s.T(s.T(hidden.MustGather(1, idx, false, false)).MustExpand([]int64{B, S, H}, false, false)) // [B,S,H]
		end := h.endLogits(s, hidden, feat)
		out.EndLogProbs = s.T(mask(s, end, pmask).MustLogSoftmax(-1, gotch.Float, false))
	}

	if beam {
		K, E := min(int64(StartNTop), S), min(int64(EndNTop), S)
		lp, ix := out.StartLogProbs.MustTopk(K, -1, true, true, false)
		out.StartTopLogProbs, out.StartTopIndex = s.T(lp), s.T(ix)
		idx := s.T(s.T(ix.MustView([]int64{B, K, 1}, false)).MustExpand([]int64{B, K, H}, false, false))
		feat := s.T(hidden.MustGather(1, idx, false, false))                                                  // [B,K,H]
		featX := s.T(s.T(feat.MustUnsqueeze(2, false)).MustExpand([]int64{B, K, S, H}, false, false))         // [B,K,S,H]
		hidX := s.T(s.T(hidden.MustUnsqueeze(1, false)).MustExpand([]int64{B, K, S, H}, false, false))        // [B,K,S,H]
		end := h.endLogits(s, hidX, featX)                                                                    // [B,K,S]
		endLP := s.T(mask(s, end, s.T(pmask.MustUnsqueeze(1, false))).MustLogSoftmax(-1, gotch.Float, false)) // [B,K,S]
		elp, eix := endLP.MustTopk(E, -1, true, true, false)
		out.EndTopLogProbs = s.T(s.T(elp).MustView([]int64{B, K * E}, false))
		out.EndTopIndex = s.T(s.T(eix).MustView([]int64{B, K * E}, false))
	}

	cls := s.T(hidden.MustSelect(1, 0, false))                                             // [B,H]
	p := s.T(s.T(startMasked.MustSoftmax(-1, gotch.Float, false)).MustUnsqueeze(1, false)) // [B,1,S]
	startFeat := s.T(s.T(p.MustBmm(hidden, false)).MustSqueezeDim(1, false))               // [B,H]
	x := s.T(ts.MustCat([]*ts.Tensor{startFeat, cls}, -1))                                 // [B,2H]
	x = s.T(s.T(ts.MustLinear(x, h.Ans0W, h.Ans0B)).MustTanh(false))
	if train && dropout > 0 {
		x = s.T(ts.MustDropout(x, dropout, true))
	}
	out.Cls = s.T(s.T(ts.MustLinear(x, h.Ans1W, none)).MustSqueezeDim(-1, false))
	return out
}

// loss is v2_model_fn_builder's: the mean of the start and end
// cross-entropies (gold start and end; [CLS] for a window without the
// answer) plus 0.5 × the mean sigmoid cross-entropy of Cls against
// is_impossible.
func (o *V2Outputs) loss(s *backend.Scope, in Inputs) *ts.Tensor {
	a := s.T(o.StartLogProbs.MustNllLoss(in.Start, none, 1, -100, false))
	b := s.T(o.EndLogProbs.MustNllLoss(in.End, none, 1, -100, false))
	span := s.T(s.T(a.MustAdd(b, false)).MustMulScalar(ts.FloatScalar(0.5), false))
	ans := s.T(o.Cls.MustBinaryCrossEntropyWithLogits(in.Impossible, none, none, 1, false))
	return s.T(span.MustAdd(s.T(ans.MustMulScalar(ts.FloatScalar(answerLossWeight), false)), false))
}

// Beam is one window's v2 predictions on the host: what run_squad_v2.py's
// RawResultV2 holds.
type Beam struct {
	StartLogProbs []float64 // start_top_log_probs: K
	StartIndex    []int     // start_top_index: K sequence positions
	EndLogProbs   []float64 // end_top_log_probs: K·E, start k's ends at k·E … k·E+E−1
	EndIndex      []int     // end_top_index: K·E sequence positions
	Cls           float64   // cls_logits
}

// beams copies a batch's beam to the host, one Beam per window.
func beams(o *V2Outputs, n int) []Beam {
	slp, six := backend.Float64s(o.StartTopLogProbs), backend.Float64s(o.StartTopIndex)
	elp, eix := backend.Float64s(o.EndTopLogProbs), backend.Float64s(o.EndTopIndex)
	cls := backend.Float64s(o.Cls)
	K, KE := len(slp)/n, len(elp)/n
	out := make([]Beam, n)
	for i := range out {
		b := Beam{StartLogProbs: slp[i*K : (i+1)*K], EndLogProbs: elp[i*KE : (i+1)*KE], Cls: cls[i],
			StartIndex: make([]int, K), EndIndex: make([]int, KE)}
		for k := range b.StartIndex {
			b.StartIndex[k] = int(six[i*K+k])
		}
		for k := range b.EndIndex {
			b.EndIndex[k] = int(eix[i*KE+k])
		}
		out[i] = b
	}
	return out
}

// Candidates are the beam's K·E (start, end) pairs scored by their log-
// probabilities, as accumulate_predictions_v2 enumerates them; score.Predict
// drops the invalid ones (outside the context, not a max-context start, end
// before start, longer than max_answer_length) and ranks the rest by
// start + end log-probability.
func (b Beam) Candidates() ([]score.Candidate, error) {
	K := len(b.StartIndex)
	if K == 0 || len(b.StartLogProbs) != K || len(b.EndIndex) != len(b.EndLogProbs) || len(b.EndIndex)%K != 0 {
		return nil, fmt.Errorf("beam of %d starts (%d scores), %d ends (%d scores)", K, len(b.StartLogProbs), len(b.EndIndex), len(b.EndLogProbs))
	}
	E := len(b.EndIndex) / K
	out := make([]score.Candidate, 0, K*E)
	for i := 0; i < K; i++ {
		for j := 0; j < E; j++ {
			k := i*E + j
			out = append(out, score.Candidate{Start: b.StartIndex[i], End: b.EndIndex[k], StartScore: b.StartLogProbs[i], EndScore: b.EndLogProbs[k]})
		}
	}
	return out, nil
}

// pMask is squad_utils' p_mask of a span feature: 1 at the question, the
// [SEP]s and padding, 0 at [CLS] and the context.
func pMask(f tasks.Feature, seqLen int) []float32 {
	p := make([]float32, seqLen)
	for i := range p {
		if i != 0 && (i < f.ContextStart || i >= f.ContextStart+f.ContextLen) {
			p[i] = 1
		}
	}
	return p
}

// truncNormalFrom is truncNormal drawing from r: several kernels from one
// generator in turn.
func truncNormalFrom(r *rand.Rand, rows, cols int64, sigma float64, dev gotch.Device) *ts.Tensor {
	v := make([]float32, rows*cols)
	for i := range v {
		x := r.NormFloat64()
		for x < -2 || x > 2 {
			x = r.NormFloat64()
		}
		v[i] = float32(x * sigma)
	}
	t := ts.MustOfSlice(v).MustView([]int64{rows, cols}, true)
	if dev.IsCuda() {
		t = t.MustTo(dev, true)
	}
	return t
}

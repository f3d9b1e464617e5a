package finetune

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/finetune/tasks"
	"github.com/reproml/albert/model"
)

// Head is a task's output layer on the encoder, as the official code builds
// it:
//
//   - classification (run_classifier.py): pooled output → dropout → linear
//     labels×H (σ 0.02), softmax cross-entropy;
//   - regression (STS-B): the same with one output and mean squared error;
//   - multiple choice (run_race.py): each of the choices' pooled outputs →
//     dropout → linear 1×H, the [B, choices] logits under softmax
//     cross-entropy;
//   - span (run_squad_v1.py): linear 2×H over the sequence output, start and
//     end logits, the mean of their two cross-entropies;
//   - span with unanswerable questions (SQuAD 2.0, run_squad_v2.py): the
//     XLNet-style head of squad_utils.create_v2_model (squadv2.go): start
//     logits under p_mask, end logits conditioned on the start, and an
//     answerability logit.
type Head struct {
	Kind tasks.Kind
	// Span is the span head (SpanHeadOf the task); "" for other kinds.
	Span    SpanHead
	W, B    *ts.Tensor // the linear layer; nil under SpanHeadV2
	Out     int64      // outputs of the linear layer
	Dropout float64
	Pooling string       // Config.Pooling: what the head reads
	V2      *squadV2Head // SpanHeadV2's layers
	params  []model.Param
}

func newHead(task tasks.Task, enc model.Config, dropout float64, seed int64, dev gotch.Device) (*Head, error) {
	h := &Head{Kind: task.Kind, Span: SpanHeadOf(task), Dropout: dropout}
	if h.Span == SpanHeadV2 {
		h.V2 = newSquadV2Head(enc, seed, dev)
		h.params = h.V2.params
		return h, nil
	}
	switch task.Kind {
	case tasks.Classification:
		if len(task.Labels) < 2 {
			return nil, fmt.Errorf("finetune: task %s: classification with %d labels", task.Name, len(task.Labels))
		}
		h.Out = int64(len(task.Labels))
	case tasks.Regression, tasks.MultipleChoice:
		h.Out = 1
	case tasks.Span:
		h.Out = 2
	default:
		return nil, fmt.Errorf("finetune: task %s: unknown kind %q", task.Name, task.Kind)
	}
	H := int64(enc.HiddenSize)
	sigma := enc.InitializerRange
	if sigma == 0 {
		sigma = 0.02
	}
	return h, h.build(truncNormal(h.Out, H, sigma, seed, dev), ts.MustZeros([]int64{h.Out}, gotch.Float, dev))
}

// build makes w and b leaf tensors that require gradients, owned by h.
func (h *Head) build(w, b *ts.Tensor) error {
	h.W = w.MustSetRequiresGrad(true, true)
	h.B = b.MustSetRequiresGrad(true, true)
	h.params = []model.Param{{Name: "head/weight", Tensor: h.W, Decay: true}, {Name: "head/bias", Tensor: h.B, Decay: false}}
	return nil
}

func (h *Head) close() {
	if h.V2 != nil {
		h.V2.close()
		return
	}
	h.W.MustDrop()
	h.B.MustDrop()
}

// Inputs is one batch on the device: IDs, Segments and Mask are [N, S] with
// N = examples × choices.
type Inputs struct {
	model.Inputs
	Examples int
	Choices  int
	Labels   *ts.Tensor // [B] int64: class, choice (classification, multiple choice)
	Targets  *ts.Tensor // [B] float: regression targets
	Start    *ts.Tensor // [B] int64: span start (span)
	End      *ts.Tensor // [B] int64: span end (span)
	// Span only: PMask [B,S] float is squad_utils' p_mask (1 at the
	// question, [SEP]s and padding), Impossible [B] float is 1 for a window
	// without the answer (is_impossible).
	PMask, Impossible *ts.Tensor
}

// Outputs of a forward pass: Logits is [B, labels] (classification),
// [B] (regression) or [B, choices] (multiple choice); Start and End are
// [B, S] (span, SpanHeadV1); V2 holds SpanHeadV2's outputs.
type Outputs struct {
	Logits, Start, End *ts.Tensor
	V2                 *V2Outputs
}

// Forward runs the encoder and the head; tensors belong to s. Under
// SpanHeadV2 the end logits are conditioned on the gold start (in.Start) and,
// when not training, the beam is computed too.
func (m *Model) Forward(s *backend.Scope, in Inputs, train bool) Outputs {
	out := m.Enc.Forward(s, in.Inputs, train, false)
	h := m.Head
	if h.V2 != nil {
		return Outputs{V2: h.V2.forward(s, out.Hidden, in.PMask, in.Start, !train, h.Dropout, train)}
	}
	if h.Kind == tasks.Span {
		lg := s.T(ts.MustLinear(out.Hidden, h.W, h.B)) // [B,S,2]
		return Outputs{
			Start: s.T(lg.MustSelect(2, 0, false)),
			End:   s.T(lg.MustSelect(2, 1, false)),
		}
	}
	pooled := m.pooled(s, in, out.Hidden)
	if train && h.Dropout > 0 {
		pooled = s.T(ts.MustDropout(pooled, h.Dropout, true))
	}
	lg := s.T(ts.MustLinear(pooled, h.W, h.B)) // [N, Out]
	switch h.Kind {
	case tasks.Regression:
		lg = s.T(lg.MustView([]int64{int64(in.Examples)}, false))
	case tasks.MultipleChoice:
		lg = s.T(lg.MustView([]int64{int64(in.Examples), int64(in.Choices)}, false))
	}
	return Outputs{Logits: lg}
}

// pooled is what a classification, regression or multiple-choice head
// reads: the pooler on [CLS] (official), or under Pooling "mean" the states
// averaged over each sequence's real tokens (in.Mask).
func (m *Model) pooled(s *backend.Scope, in Inputs, hidden *ts.Tensor) *ts.Tensor {
	if m.Head.Pooling != PoolMean {
		return m.Enc.Pooler.Forward(s, hidden)
	}
	mask := s.T(s.T(in.Mask.MustTotype(hidden.DType(), false)).MustUnsqueeze(2, false)) // [N,S,1]
	sum := s.T(s.T(hidden.MustMul(mask, false)).MustSumDimIntlist([]int64{1}, false, hidden.DType(), false))
	n := s.T(mask.MustSumDimIntlist([]int64{1}, false, hidden.DType(), false)) // [N,1]
	return s.T(sum.MustDiv(n, false))
}

// Loss is the task's training loss of a forward pass: a scalar in s.
func (m *Model) Loss(s *backend.Scope, in Inputs, out Outputs) *ts.Tensor {
	switch m.Head.Kind {
	case tasks.Regression:
		return s.T(out.Logits.MustMseLoss(in.Targets, 1, false))
	case tasks.Span:
		if out.V2 != nil {
			return out.V2.loss(s, in)
		}
		a := s.T(out.Start.MustCrossEntropyLoss(in.Start, none, 1, -100, 0, false))
		b := s.T(out.End.MustCrossEntropyLoss(in.End, none, 1, -100, 0, false))
		return s.T(s.T(a.MustAdd(b, false)).MustMulScalar(ts.FloatScalar(0.5), false))
	}
	return s.T(out.Logits.MustCrossEntropyLoss(in.Labels, none, 1, -100, 0, false))
}

// none is an undefined tensor: gotch's way of passing "no weight".
var none = ts.NewTensor()

// ToDevice turns features into one batch on dev; tensors belong to s.
func ToDevice(s *backend.Scope, fs []tasks.Feature, kind tasks.Kind, dev gotch.Device) Inputs {
	B := len(fs)
	C := len(fs[0].IDs)
	S := len(fs[0].IDs[0])
	ids := make([]int64, 0, B*C*S)
	seg := make([]int64, 0, B*C*S)
	mask := make([]int64, 0, B*C*S)
	labels := make([]int64, B)
	targets := make([]float32, B)
	start := make([]int64, B)
	end := make([]int64, B)
	var pmask, impossible []float32
	if kind == tasks.Span {
		pmask, impossible = make([]float32, 0, B*S), make([]float32, B)
	}
	for i, f := range fs {
		for c := 0; c < C; c++ {
			ids = append(ids, f.IDs[c]...)
			seg = append(seg, f.Segments[c]...)
			mask = append(mask, f.Mask[c]...)
		}
		labels[i], targets[i] = int64(max(f.Label, 0)), f.Target
		start[i], end[i] = int64(f.Start), int64(f.End)
		if kind == tasks.Span {
			pmask = append(pmask, pMask(f, S)...)
			if f.Impossible {
				impossible[i] = 1
			}
		}
	}
	put := func(t *ts.Tensor) *ts.Tensor {
		t = s.T(t)
		if dev.IsCuda() {
			t = s.T(t.MustTo(dev, false))
		}
		return t
	}
	N := int64(B * C)
	in := Inputs{Examples: B, Choices: C}
	in.IDs = put(ts.MustOfSlice(ids).MustView([]int64{N, int64(S)}, true))
	in.Segments = put(ts.MustOfSlice(seg).MustView([]int64{N, int64(S)}, true))
	in.Mask = put(ts.MustOfSlice(mask).MustView([]int64{N, int64(S)}, true))
	switch kind {
	case tasks.Regression:
		in.Targets = put(ts.MustOfSlice(targets))
	case tasks.Span:
		in.Start, in.End = put(ts.MustOfSlice(start)), put(ts.MustOfSlice(end))
		in.PMask = put(ts.MustOfSlice(pmask).MustView([]int64{N, int64(S)}, true))
		in.Impossible = put(ts.MustOfSlice(impossible))
	default:
		in.Labels = put(ts.MustOfSlice(labels))
	}
	return in
}

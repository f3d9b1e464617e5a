package train

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/data"
	"github.com/reproml/albert/model"
)

// tensors is one data.Batch on the device.
type tensors struct {
	in       model.Inputs
	mlmIDs   *ts.Tensor // [B·P] int64
	mlmW     *ts.Tensor // [B·P] float
	labels   *ts.Tensor // [B] int64
	size     int
	tokens   int     // real tokens, for throughput
	predicts int     // real masked predictions
	weights  float32 // Σ MaskedWeights: the MLM loss's denominator, less 1e-5
}

// toDevice copies a batch to dev; the tensors belong to s.
func toDevice(s *backend.Scope, b data.Batch, dev gotch.Device) tensors {
	B, S, P := int64(b.Size), int64(b.SeqLen), int64(b.MaxPred)
	i64 := func(v []int64, shape ...int64) *ts.Tensor {
		t := s.T(ts.MustOfSlice(v).MustView(shape, true))
		if dev.IsCuda() {
			t = s.T(t.MustTo(dev, false))
		}
		return t
	}
	w := s.T(ts.MustOfSlice(b.MaskedWeights))
	if dev.IsCuda() {
		w = s.T(w.MustTo(dev, false))
	}
	t := tensors{
		in: model.Inputs{
			IDs:             i64(b.InputIDs, B, S),
			Segments:        i64(b.SegmentIDs, B, S),
			Mask:            i64(b.InputMask, B, S),
			MaskedPositions: i64(b.MaskedPositions, B, P),
		},
		mlmIDs: i64(b.MaskedIDs, B*P),
		mlmW:   w,
		labels: i64(b.SentenceLabels, B),
		size:   b.Size,
	}
	for _, m := range b.InputMask {
		t.tokens += int(m)
	}
	for _, m := range b.MaskedWeights {
		if m > 0 {
			t.predicts++
		}
		t.weights += m
	}
	return t
}

// mlmLoss is the official masked-LM loss: the mean negative log-likelihood
// over real predictions, Σ w·nll / (Σ w + 1e-5).
func mlmLoss(s *backend.Scope, logits *ts.Tensor, t tensors) *ts.Tensor {
	return mlmLossOver(s, logits, t, nil)
}

// mlmLossOver is mlmLoss with the denominator den (Σ w + 1e-5 of the whole
// global batch, for a rank's shard of it); nil: this batch's own.
func mlmLossOver(s *backend.Scope, logits *ts.Tensor, t tensors, den *ts.Tensor) *ts.Tensor {
	nll := s.T(s.T(logits.MustLogSoftmax(-1, gotch.Float, false)).MustGather(1, s.T(t.mlmIDs.MustUnsqueeze(1, false)), false, false))
	num := s.T(s.T(s.T(nll.MustSqueezeDim(1, false)).MustMul(t.mlmW, false)).MustSum(gotch.Float, false))
	if den == nil {
		den = s.T(s.T(t.mlmW.MustSum(gotch.Float, false)).MustAddScalar(ts.FloatScalar(1e-5), false))
	}
	return s.T(s.T(num.MustDiv(den, false)).MustNeg(false))
}

// sentenceLoss is the mean cross-entropy of the NSP/SOP head.
func sentenceLoss(s *backend.Scope, logits *ts.Tensor, t tensors) *ts.Tensor {
	return s.T(logits.MustCrossEntropyLoss(t.labels, none, 1, -100, 0, false))
}

// none is an undefined tensor: gotch's way of passing "no weight".
var none = ts.NewTensor()

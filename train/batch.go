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

// toDevice copies a batch to dev; the tensors belong to s. On CUDA the
// batch travels packed (toDevicePacked): two pinned host buffers and two
// asynchronous copies instead of seven blocking ones.
func toDevice(s *backend.Scope, b data.Batch, dev gotch.Device) tensors {
	if dev.IsCuda() {
		if t, err := toDevicePacked(s, b, dev, true); err == nil {
			return t
		}
		// Pinning or the copy failed (no pinned memory to be had): the
		// per-array copies below still work.
	}
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
	t.count(b)
	return t
}

// toDevicePacked copies a batch to dev as one int64 buffer (the six integer
// arrays end to end) and one float buffer (the MLM weights), each pinned
// when pin is set and copied without blocking the host: the copies queue on
// the device's stream ahead of the step's kernels, which read the arrays as
// views of the two device buffers. libtorch's pinned-memory allocator keeps
// a pinned buffer from reuse until its copy has completed, so freeing it
// with s is safe. The tensors belong to s.
func toDevicePacked(s *backend.Scope, b data.Batch, dev gotch.Device, pin bool) (tensors, error) {
	B, S, P := int64(b.Size), int64(b.SeqLen), int64(b.MaxPred)
	parts := []struct {
		v     []int64
		shape []int64
	}{
		{b.InputIDs, []int64{B, S}}, {b.SegmentIDs, []int64{B, S}}, {b.InputMask, []int64{B, S}},
		{b.MaskedPositions, []int64{B, P}}, {b.MaskedIDs, []int64{B * P}}, {b.SentenceLabels, []int64{B}},
	}
	var all []int64
	for _, p := range parts {
		all = append(all, p.v...)
	}
	send := func(host *ts.Tensor, dtype gotch.DType) (*ts.Tensor, error) {
		host = s.T(host)
		if pin {
			pinned, err := host.PinMemory(dev, false)
			if err != nil {
				return nil, err
			}
			host = s.T(pinned)
		}
		d, err := host.ToDevice(dev, dtype, pin, false, false)
		if err != nil {
			return nil, err
		}
		return s.T(d), nil
	}
	ints, err := send(ts.MustOfSlice(all), gotch.Int64)
	if err != nil {
		return tensors{}, err
	}
	w, err := send(ts.MustOfSlice(b.MaskedWeights), gotch.Float)
	if err != nil {
		return tensors{}, err
	}
	views := make([]*ts.Tensor, len(parts))
	var off int64
	for i, p := range parts {
		n := int64(len(p.v))
		views[i] = s.T(s.T(ints.MustNarrow(0, off, n, false)).MustView(p.shape, false))
		off += n
	}
	t := tensors{
		in: model.Inputs{
			IDs:             views[0],
			Segments:        views[1],
			Mask:            views[2],
			MaskedPositions: views[3],
		},
		mlmIDs: views[4],
		mlmW:   w,
		labels: views[5],
		size:   b.Size,
	}
	t.count(b)
	return t, nil
}

// count sets the batch's token and prediction counts.
func (t *tensors) count(b data.Batch) {
	for _, m := range b.InputMask {
		t.tokens += int(m)
	}
	for _, m := range b.MaskedWeights {
		if m > 0 {
			t.predicts++
		}
		t.weights += m
	}
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

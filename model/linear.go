package model

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/kernels"
)

// linear is a dense layer, x·Wᵀ + b over the last dimension of x. On the
// CPU it is kernels.Linear: with cross-layer sharing, a layer's weight
// gradient is summed over its L uses inside the GEMM instead of as L
// separate gradients added one by one (Model.Forward starts each pass with
// kernels.NewPass). Elsewhere it is libtorch's linear.
func linear(s *backend.Scope, x, w, b *ts.Tensor) *ts.Tensor {
	if kernels.Applies(x, w, b) {
		return s.T(mustKernel(kernels.Linear(x, w, b)))
	}
	return s.T(ts.MustLinear(x, w, b))
}

// layerNorm is LayerNorm over the last dimension (the size of w), in fp32:
// under bf16 autocast (train.precision) its input may be a dense layer's
// bf16 output, and mixed precision keeps normalisation in fp32; the explicit
// cast makes it so whatever autocast's per-device op lists say. No cast in
// an fp32 run.
func layerNorm(s *backend.Scope, x, w, b *ts.Tensor, eps float64) *ts.Tensor {
	return s.T(ts.MustLayerNorm(toFloat(s, x), w.MustSize(), w, b, eps, false))
}

// toFloat is x in fp32: x itself when it already is.
func toFloat(s *backend.Scope, x *ts.Tensor) *ts.Tensor {
	if x.DType() == gotch.Float {
		return x
	}
	return s.T(x.MustTotype(gotch.Float, false))
}

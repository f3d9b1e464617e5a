package model

import (
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

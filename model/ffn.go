package model

import (
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/kernels"
)

// FFN is the feed-forward sublayer with its residual and post-LayerNorm:
// x ← LN(x + Dropout(W₂·GELU(W₁·x))), H → I → H.
type FFN struct {
	InW, InB, OutW, OutB *ts.Tensor
	LNWeight, LNBias     *ts.Tensor
	cfg                  Config
}

func newFFN(b *builder, name string, c Config) *FFN {
	H, I := int64(c.HiddenSize), int64(c.IntermediateSize)
	f := &FFN{cfg: c}
	f.InW, f.InB = b.dense(name+"/intermediate", I, H)
	f.OutW, f.OutB = b.dense(name+"/output", H, I)
	f.LNWeight, f.LNBias = b.layerNorm(name+"/layer_norm", H)
	return f
}

// Forward applies the sublayer to x [B,S,H].
func (f *FFN) Forward(s *backend.Scope, x *ts.Tensor, train bool) *ts.Tensor {
	h := linear(s, x, f.InW, f.InB)
	h = gelu(s, h)
	h = linear(s, h, f.OutW, f.OutB)
	h = dropoutAdd(s, h, x, f.cfg.HiddenDropout, train)
	return layerNorm(s, h, f.LNWeight, f.LNBias, f.cfg.LayerNormEps)
}

// gelu is GELU with the official code's tanh approximation. On the CPU it
// is kernels.GeluTanh: libtorch 1.13 evaluates tanh with Sleef's accurate
// tanhf, ~8% of a tiny training step on its own.
func gelu(s *backend.Scope, x *ts.Tensor) *ts.Tensor {
	if kernels.Applies(x) {
		return s.T(mustKernel(kernels.GeluTanh(x)))
	}
	return s.T(x.MustGelu("tanh", false))
}

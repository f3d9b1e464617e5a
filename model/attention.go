package model

import (
	"math"

	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/kernels"
)

// Attention is one multi-head self-attention sublayer with its residual and
// post-LayerNorm: x ← LN(x + Dropout(O·MHA(x))). Query, key, value and
// output are H×H dense layers with bias, as in the official modeling.py.
type Attention struct {
	QW, QB, KW, KB, VW, VB, OW, OB *ts.Tensor
	LNWeight, LNBias               *ts.Tensor
	cfg                            Config
	invSqrtD                       float64    // 1/√(head size), the score scale
	scale                          *ts.Scalar // invSqrtD, for the composed ops
}

func newAttention(b *builder, name string, c Config) *Attention {
	H := int64(c.HiddenSize)
	a := &Attention{cfg: c, invSqrtD: 1 / math.Sqrt(float64(c.HiddenSize/c.NumHeads))}
	a.scale = ts.FloatScalar(a.invSqrtD)
	a.QW, a.QB = b.dense(name+"/query", H, H)
	a.KW, a.KB = b.dense(name+"/key", H, H)
	a.VW, a.VB = b.dense(name+"/value", H, H)
	a.OW, a.OB = b.dense(name+"/output", H, H)
	a.LNWeight, a.LNBias = b.layerNorm(name+"/layer_norm", H)
	return a
}

// Forward applies the sublayer to x [B,S,H]; maskAdd [B,1,1,S] holds 0 for
// real keys and -10000 for padding, as the official code.
func (a *Attention) Forward(s *backend.Scope, x, maskAdd *ts.Tensor, train bool) *ts.Tensor {
	size := x.MustSize()
	B, S, H := size[0], size[1], size[2]
	nh := int64(a.cfg.NumHeads)
	d := H / nh
	heads := func(w, bias *ts.Tensor) *ts.Tensor { // [B,S,H] → [B,nh,S,d]
		y := linear(s, x, w, bias)
		return s.T(s.T(y.MustView([]int64{B, S, nh, d}, false)).MustTranspose(1, 2, false))
	}
	q := heads(a.QW, a.QB)
	k := heads(a.KW, a.KB)
	v := heads(a.VW, a.VB)
	scores := matmul(s, q, s.T(k.MustTranspose(-1, -2, false))) // [B,nh,S,S], unscaled
	probs := a.probs(s, scores, maskAdd, train)
	ctx := matmul(s, probs, v) // [B,nh,S,d]
	ctx = s.T(s.T(ctx.MustTranspose(1, 2, false)).MustReshape([]int64{B, S, H}, false))
	out := linear(s, ctx, a.OW, a.OB)
	out = dropoutAdd(s, out, x, a.cfg.HiddenDropout, train)
	return layerNorm(s, out, a.LNWeight, a.LNBias, a.cfg.LayerNormEps)
}

// probs is Dropout(softmax(scores/√d + maskAdd)). On the CPU it is one
// kernel (kernels.SoftmaxDropout), which draws the same dropout mask as the
// composed ops for the same seed.
func (a *Attention) probs(s *backend.Scope, scores, maskAdd *ts.Tensor, train bool) *ts.Tensor {
	p := a.cfg.AttentionDropout
	if !train {
		p = 0
	}
	if kernels.Applies(scores, maskAdd) {
		var key uint64
		if p > 0 {
			key = torchSeed(s) // as dropout() draws it
		}
		return s.T(mustKernel(kernels.SoftmaxDropout(scores, maskAdd, a.invSqrtD, p, key)))
	}
	scores = s.T(scores.MustMulScalar(a.scale, false))
	scores = s.T(scores.MustAdd(maskAdd, false)) // fp32: bf16 scores (autocast) + the fp32 mask
	probs := s.T(scores.MustSoftmax(-1, scores.DType(), false))
	return dropout(s, probs, p, train)
}

// matmul is a @ b per (batch, head) block of [B,nh,·,·] tensors. On the CPU
// it is kernels.Matmul, which spreads the blocks over the threads; libtorch's
// bmm runs them one after another (~60 of 220 GFLOP/s on these shapes).
func matmul(s *backend.Scope, a, b *ts.Tensor) *ts.Tensor {
	if kernels.Applies(a, b) {
		return s.T(mustKernel(kernels.Matmul(a, b)))
	}
	return s.T(a.MustMatmul(b, false))
}

// mustKernel unwraps a kernel's result. A kernel error is a programming
// error (shapes the model itself made), so it panics like gotch's Must ops.
func mustKernel(t *ts.Tensor, err error) *ts.Tensor {
	if err != nil {
		panic(err)
	}
	return t
}

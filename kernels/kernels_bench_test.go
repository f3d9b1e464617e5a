package kernels

import (
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
)

// The fused kernels against the libtorch ops they replace, forward and
// backward, at the tiny benchmark configuration's shapes (FFN 2048×1024,
// attention 16×4 blocks of 128×64). Compare ns/op of the pairs.
func benchPair(b *testing.B, fused bool, shapes [][]int64, f func(fused bool, xs []*ts.Tensor) *ts.Tensor) {
	defer backend.LockThread()()
	if fused && !Enabled() {
		b.Skip(Status())
	}
	var s backend.Scope
	defer s.Free()
	var xs []*ts.Tensor
	for _, sh := range shapes {
		xs = append(xs, s.T(s.T(ts.MustRandn(sh, gotch.Float, gotch.CPU)).MustSetRequiresGrad(true, false)))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var it backend.Scope
		y := it.T(f(fused, xs))
		loss := it.T(y.MustSum(gotch.Float, false))
		loss.MustBackward()
		it.Free()
	}
}

func geluOp(fused bool, xs []*ts.Tensor) *ts.Tensor {
	if fused {
		return must(GeluTanh(xs[0]))
	}
	return xs[0].MustGelu("tanh", false)
}

func attn(fused bool, xs []*ts.Tensor) *ts.Tensor {
	kT := xs[1].MustTranspose(-1, -2, false)
	defer kT.MustDrop()
	if fused {
		return must(Matmul(xs[0], kT))
	}
	return xs[0].MustMatmul(kT, false)
}

var ffnShape = [][]int64{{16, 128, 1024}}
var attnShape = [][]int64{{16, 4, 128, 64}, {16, 4, 128, 64}}

func BenchmarkGeluFused(b *testing.B)      { benchPair(b, true, ffnShape, geluOp) }
func BenchmarkGeluLibtorch(b *testing.B)   { benchPair(b, false, ffnShape, geluOp) }
func BenchmarkMatmulFused(b *testing.B)    { benchPair(b, true, attnShape, attn) }
func BenchmarkMatmulLibtorch(b *testing.B) { benchPair(b, false, attnShape, attn) }

// attnBlocks is attention's two batched matmuls as the model runs them, on
// q, k, v [B,S,nh,d] seen as [B,nh,S,d]: probs = q·kᵀ, then probs·v.
func attnBlocks(fused bool, xs []*ts.Tensor) *ts.Tensor {
	var s backend.Scope
	defer s.Free()
	heads := func(x *ts.Tensor) *ts.Tensor { return s.T(x.MustTranspose(1, 2, false)) }
	q, k, v := heads(xs[0]), heads(xs[1]), heads(xs[2])
	kT := s.T(k.MustTranspose(-1, -2, false))
	mm := func(a, b *ts.Tensor) *ts.Tensor {
		if fused {
			return must(Matmul(a, b))
		}
		return a.MustMatmul(b, false)
	}
	return mm(s.T(mm(q, kT)), v)
}

// The base-shaped configuration's attention (8×12 blocks, S 128, d 64),
// forward and backward; GFLOP/s counts the 6 block products.
func benchAttnBase(b *testing.B, fused bool) {
	const B, S, nh, d = 8, 128, 12, 64
	sh := []int64{B, S, nh, d}
	benchPair(b, fused, [][]int64{sh, sh, sh}, attnBlocks)
	b.ReportMetric(6*2*S*S*d*B*nh*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func BenchmarkAttentionBaseFused(b *testing.B)    { benchAttnBase(b, true) }
func BenchmarkAttentionBaseLibtorch(b *testing.B) { benchAttnBase(b, false) }

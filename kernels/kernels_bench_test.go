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

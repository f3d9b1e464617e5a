package kernels

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
)

// This build must have the kernels: a broken native build would otherwise
// only show as a slower benchmark.
func TestKernelsLoaded(t *testing.T) {
	if os.Getenv("ALBERT_KERNELS") != "" {
		t.Skip("ALBERT_KERNELS is set")
	}
	if !Enabled() {
		t.Fatalf("kernels not loaded: %s", Status())
	}
	x := ts.MustZeros([]int64{2}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	d := ts.MustZeros([]int64{2}, gotch.Double, gotch.CPU)
	defer d.MustDrop()
	if !Applies(x) || Applies(x, d) {
		t.Fatalf("Applies(float32) = %v, Applies(float32, float64) = %v; want true, false", Applies(x), Applies(x, d))
	}
}

func need(t *testing.T) func() {
	t.Helper()
	if !Enabled() {
		t.Skip(Status())
	}
	return backend.LockThread()
}

// leaf is a float32 leaf tensor that requires grad, values N(0, scale²).
func leaf(s *backend.Scope, scale float64, shape ...int64) *ts.Tensor {
	x := s.T(ts.MustRandn(shape, gotch.Float, gotch.CPU))
	x = s.T(x.MustMulScalar(ts.FloatScalar(scale), false))
	return s.T(x.MustDetach(false).MustSetRequiresGrad(true, false))
}

// backward returns the gradients of Σ y·up with respect to xs.
func backward(s *backend.Scope, y, up *ts.Tensor, xs ...*ts.Tensor) [][]float64 {
	for _, x := range xs {
		x.ZeroGrad()
	}
	loss := s.T(s.T(y.MustMul(up, false)).MustSum(gotch.Float, false))
	loss.MustBackward()
	var out [][]float64
	for _, x := range xs {
		out = append(out, backend.Float64s(s.T(x.MustGrad(false))))
	}
	return out
}

// near fails unless |a-b| ≤ tol·(1+|b|) everywhere.
func near(t *testing.T, what string, a, b []float64, tol float64) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d values, want %d", what, len(a), len(b))
	}
	for i := range a {
		if d := math.Abs(a[i] - b[i]); d > tol*(1+math.Abs(b[i])) || math.IsNaN(a[i]) {
			t.Fatalf("%s[%d] = %.9g, libtorch %.9g (diff %.3g)", what, i, a[i], b[i], d)
		}
	}
}

func TestGeluTanhMatchesLibtorch(t *testing.T) {
	defer need(t)()
	var s backend.Scope
	defer s.Free()
	backend.Seed(1)
	// ±12σ reaches tanh's saturated tails; 70001 is not a multiple of any vector width
	x := leaf(&s, 4, 70001)
	up := s.T(ts.MustRandn([]int64{70001}, gotch.Float, gotch.CPU))
	got := s.T(must(GeluTanh(x)))
	want := s.T(x.MustGelu("tanh", false))
	if g, w := got.MustSize(), want.MustSize(); g[0] != w[0] || len(g) != 1 {
		t.Fatalf("shape %v, want %v", g, w)
	}
	near(t, "forward", backend.Float64s(got), backend.Float64s(want), 2e-6)
	// The derivative has 1 ± tanh terms that cancel in the tails; a few ulp
	// of tanh there (ours or Sleef's) is ~1e-6 absolute.
	near(t, "backward", backward(&s, got, up, x)[0], backward(&s, want, up, x)[0], 1e-5)
}

func TestMatmulMatchesLibtorch(t *testing.T) {
	defer need(t)()
	var s backend.Scope
	defer s.Free()
	backend.Seed(2)
	// Attention's layout: q, k, v are [B,S,nh,d] views transposed to [B,nh,S,d].
	const B, S, nh, d = 3, 7, 2, 5
	heads := func(x *ts.Tensor) *ts.Tensor { return s.T(x.MustTranspose(1, 2, false)) }
	q := leaf(&s, 1, B, S, nh, d)
	k := leaf(&s, 1, B, S, nh, d)
	kT := s.T(heads(k).MustTranspose(-1, -2, false)) // [B,nh,d,S], no copy
	up := s.T(ts.MustRandn([]int64{B, nh, S, S}, gotch.Float, gotch.CPU))
	got := s.T(must(Matmul(heads(q), kT)))
	want := s.T(heads(q).MustMatmul(kT, false))
	near(t, "4-D forward", backend.Float64s(got), backend.Float64s(want), 1e-5)
	gg, gw := backward(&s, got, up, q, k), backward(&s, want, up, q, k)
	near(t, "4-D grad a", gg[0], gw[0], 1e-5)
	near(t, "4-D grad b", gg[1], gw[1], 1e-5)

	// Attention-sized blocks: full 6×64 tiles of the AVX-512 kernel, a
	// transposed b (packed), a transposed a (read by columns), and sizes
	// that leave row and column remainders.
	for _, c := range []struct {
		name   string
		a, b   []int64
		ta, tb bool // pass the transpose of a leaf of the reversed shape
	}{
		{name: "128×64 · (128×64)ᵀ", a: []int64{2, 3, 128, 64}, b: []int64{2, 3, 128, 64}, tb: true},
		{name: "128×128 · 128×64", a: []int64{1, 2, 128, 128}, b: []int64{1, 2, 128, 64}},
		{name: "(128×128)ᵀ · 128×64", a: []int64{1, 2, 128, 128}, b: []int64{1, 2, 128, 64}, ta: true},
		{name: "13×70 · 70×100", a: []int64{3, 13, 70}, b: []int64{3, 70, 100}},
	} {
		a, b := leaf(&s, 1, c.a...), leaf(&s, 1, c.b...)
		ua, ub := a, b
		if c.ta {
			ua = s.T(a.MustTranspose(-1, -2, false))
		}
		if c.tb {
			ub = s.T(b.MustTranspose(-1, -2, false))
		}
		got := s.T(must(Matmul(ua, ub)))
		want := s.T(ua.MustMatmul(ub, false))
		near(t, c.name+" forward", backend.Float64s(got), backend.Float64s(want), 1e-4)
		up := s.T(ts.MustRandn(want.MustSize(), gotch.Float, gotch.CPU))
		gg, gw := backward(&s, got, up, a, b), backward(&s, want, up, a, b)
		near(t, c.name+" grad a", gg[0], gw[0], 1e-4)
		near(t, c.name+" grad b", gg[1], gw[1], 1e-4)
	}

	a := leaf(&s, 1, 4, 6, 3)
	b := leaf(&s, 1, 4, 3, 5)
	up3 := s.T(ts.MustRandn([]int64{4, 6, 5}, gotch.Float, gotch.CPU))
	got = s.T(must(Matmul(a, b)))
	want = s.T(a.MustMatmul(b, false))
	near(t, "3-D forward", backend.Float64s(got), backend.Float64s(want), 1e-5)
	gg, gw = backward(&s, got, up3, a, b), backward(&s, want, up3, a, b)
	near(t, "3-D grad a", gg[0], gw[0], 1e-5)
	near(t, "3-D grad b", gg[1], gw[1], 1e-5)
}

// Bad operands come back as errors naming the kernel, not as crashes.
func TestMatmulRejectsMismatchedShapes(t *testing.T) {
	defer need(t)()
	var s backend.Scope
	defer s.Free()
	for _, c := range []struct{ a, b []int64 }{
		{[]int64{2, 3, 4}, []int64{2, 5, 6}},    // inner sizes
		{[]int64{2, 3, 4}, []int64{3, 4, 6}},    // batch sizes
		{[]int64{3, 4}, []int64{4, 6}},          // 2-D
		{[]int64{2, 2, 3, 4}, []int64{2, 4, 6}}, // ranks differ
	} {
		a := s.T(ts.MustZeros(c.a, gotch.Float, gotch.CPU))
		b := s.T(ts.MustZeros(c.b, gotch.Float, gotch.CPU))
		if _, err := Matmul(a, b); err == nil || !strings.Contains(err.Error(), "albert_bmm") {
			t.Errorf("%v @ %v: err = %v, want an albert_bmm error", c.a, c.b, err)
		}
	}
}

func must(t *ts.Tensor, err error) *ts.Tensor {
	if err != nil {
		panic(err)
	}
	return t
}

// SoftmaxDropout is softmax(scale·scores + mask) followed by Dropout with
// the same key: the same kept elements, values and gradients to float
// rounding, padding (-10000) included; with p = 0 it is the plain softmax.
func TestSoftmaxDropoutMatchesComposed(t *testing.T) {
	defer need(t)()
	var s backend.Scope
	defer s.Free()
	backend.Seed(4)
	const B, nh, S, scale, key = 3, 2, 37, 0.125, uint64(77)
	scores := leaf(&s, 8, B, nh, S, S)
	m := make([]float32, B*S)
	for i := range m {
		if i%S >= S-5 && i/S != 0 { // padding at the end of every sequence but the first
			m[i] = -10000
		}
	}
	mask := s.T(s.T(ts.MustOfSlice(m)).MustView([]int64{B, 1, 1, S}, false))
	up := s.T(ts.MustRandn([]int64{B, nh, S, S}, gotch.Float, gotch.CPU))
	for _, p := range []float64{0, 0.1} {
		got := s.T(must(SoftmaxDropout(scores, mask, scale, p, key)))
		x := s.T(s.T(scores.MustMulScalar(ts.FloatScalar(scale), false)).MustAdd(mask, false))
		want := s.T(x.MustSoftmax(-1, gotch.Float, false))
		if p > 0 {
			want = s.T(must(Dropout(want, p, key)))
		}
		g, w := backend.Float64s(got), backend.Float64s(want)
		for i := range g {
			if (g[i] == 0) != (w[i] == 0) {
				t.Fatalf("p=%g: element %d is %g, composed %g (different dropout mask?)", p, i, g[i], w[i])
			}
		}
		near(t, "forward", g, w, 1e-6)
		near(t, "backward", backward(&s, got, up, scores)[0], backward(&s, want, up, scores)[0], 1e-5)
	}
	bad := s.T(ts.MustZeros([]int64{B + 1, 1, 1, S}, gotch.Float, gotch.CPU))
	if _, err := SoftmaxDropout(scores, bad, scale, 0, key); err == nil || !strings.Contains(err.Error(), "albert_softmax_dropout") {
		t.Fatalf("mask of the wrong size: err = %v", err)
	}
}

// Attention's products keep the head-interleaved layout: probs·v comes out
// in v's [B,S,nh,d] order, so merging the heads back needs no copy.
func TestMatmulKeepsHeadLayout(t *testing.T) {
	defer need(t)()
	var s backend.Scope
	defer s.Free()
	const B, S, nh, d = 2, 16, 3, 8
	heads := func(x *ts.Tensor) *ts.Tensor { return s.T(x.MustTranspose(1, 2, false)) }
	q, k, v := heads(leaf(&s, 1, B, S, nh, d)), heads(leaf(&s, 1, B, S, nh, d)), heads(leaf(&s, 1, B, S, nh, d))
	scores := s.T(must(Matmul(q, s.T(k.MustTranspose(-1, -2, false)))))
	if ok, _ := scores.IsContiguous(); !ok {
		t.Fatalf("scores strides %v, want contiguous", scores.MustStride())
	}
	ctx := s.T(must(Matmul(scores, v)))
	if got, want := ctx.MustStride(), v.MustStride(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("context strides %v, want v's %v", got, want)
	}
	if ok, _ := s.T(ctx.MustTranspose(1, 2, false)).IsContiguous(); !ok {
		t.Fatal("context with the heads merged back is not contiguous")
	}
}

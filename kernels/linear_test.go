package kernels

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
)

// linearRef is libtorch's linear, the composed op Linear replaces.
func linearRef(s *backend.Scope, x, w, b *ts.Tensor) *ts.Tensor { return s.T(ts.MustLinear(x, w, b)) }

func TestLinearMatchesLibtorch(t *testing.T) {
	defer need(t)()
	var s backend.Scope
	defer s.Free()
	backend.Seed(4)
	// 150 rows: the bias gradient's column sums run in bands of 64.
	for _, sh := range [][3]int64{{3, 5, 7}, {3, 50, 70}} {
		B, S, in, out := sh[0], sh[1], sh[2], sh[2]+3
		x := leaf(&s, 1, B, S, in)
		w := leaf(&s, 0.3, out, in)
		b := leaf(&s, 1, out)
		up := s.T(ts.MustRandn([]int64{B, S, out}, gotch.Float, gotch.CPU))
		NewPass()
		got := s.T(must(Linear(x, w, b)))
		want := linearRef(&s, x, w, b)
		if g, w := got.MustSize(), want.MustSize(); fmt.Sprint(g) != fmt.Sprint(w) {
			t.Fatalf("shape %v, libtorch %v", g, w)
		}
		near(t, "forward", backend.Float64s(got), backend.Float64s(want), 1e-5)
		gg, gw := backward(&s, got, up, x, w, b), backward(&s, want, up, x, w, b)
		for i, name := range []string{"grad x", "grad w", "grad b"} {
			near(t, fmt.Sprint(sh, " ", name), gg[i], gw[i], 1e-5)
		}
	}
}

// A layer used three times in one pass (cross-layer sharing) gets the sum
// of its three gradients, as from libtorch's linear.
func TestLinearSumsSharedLayerGradients(t *testing.T) {
	defer need(t)()
	var s backend.Scope
	defer s.Free()
	backend.Seed(5)
	x := leaf(&s, 1, 2, 6, 8)
	w := leaf(&s, 0.3, 8, 8)
	b := leaf(&s, 0.1, 8)
	up := s.T(ts.MustRandn([]int64{2, 6, 8}, gotch.Float, gotch.CPU))
	stack := func(f func(x *ts.Tensor) *ts.Tensor) *ts.Tensor {
		y := x
		for range 3 {
			y = s.T(f(y).MustTanh(false))
		}
		return y
	}
	NewPass()
	got := stack(func(y *ts.Tensor) *ts.Tensor { return s.T(must(Linear(y, w, b))) })
	want := stack(func(y *ts.Tensor) *ts.Tensor { return linearRef(&s, y, w, b) })
	near(t, "forward", backend.Float64s(got), backend.Float64s(want), 1e-5)
	gg, gw := backward(&s, got, up, x, w, b), backward(&s, want, up, x, w, b)
	for i, name := range []string{"grad x", "grad w", "grad b"} {
		near(t, name, gg[i], gw[i], 1e-5)
	}
}

// An input read by three dense layers (attention's query, key and value)
// and by a residual gets the sum of all four gradients.
func TestLinearSumsSharedInputGradients(t *testing.T) {
	defer need(t)()
	var s backend.Scope
	defer s.Free()
	backend.Seed(9)
	x := leaf(&s, 1, 2, 6, 8)
	ws := []*ts.Tensor{leaf(&s, 0.3, 5, 8), leaf(&s, 0.3, 5, 8), leaf(&s, 0.3, 8, 8)}
	bs := []*ts.Tensor{leaf(&s, 0.1, 5), leaf(&s, 0.1, 5), leaf(&s, 0.1, 8)}
	up := s.T(ts.MustRandn([]int64{2, 6, 8}, gotch.Float, gotch.CPU))
	f := func(lin func(x, w, b *ts.Tensor) *ts.Tensor) *ts.Tensor {
		q, k, v := lin(x, ws[0], bs[0]), lin(x, ws[1], bs[1]), lin(x, ws[2], bs[2])
		qk := s.T(s.T(q.MustMul(k, false)).MustSumDimIntlist([]int64{-1}, true, gotch.Float, false)) // [2,6,1]
		return s.T(s.T(v.MustMul(qk, false)).MustAdd(x, false))                                      // + residual
	}
	NewPass()
	got := f(func(x, w, b *ts.Tensor) *ts.Tensor { return s.T(must(Linear(x, w, b))) })
	want := f(func(x, w, b *ts.Tensor) *ts.Tensor { return linearRef(&s, x, w, b) })
	near(t, "forward", backend.Float64s(got), backend.Float64s(want), 1e-5)
	xs := append([]*ts.Tensor{x}, ws...)
	gg, gw := backward(&s, got, up, xs...), backward(&s, want, up, xs...)
	for i := range xs {
		near(t, fmt.Sprint("grad ", i), gg[i], gw[i], 1e-5)
	}
}

// Two forward passes alive at once, backpropagated one after the other:
// NewPass keeps their sums apart, so each backward gets its own gradient
// (without it, the first backward would leave w's to the second).
func TestLinearPassesKeepSumsApart(t *testing.T) {
	defer need(t)()
	var s backend.Scope
	defer s.Free()
	backend.Seed(6)
	x1, x2 := leaf(&s, 1, 4, 5), leaf(&s, 1, 4, 5)
	w := leaf(&s, 0.3, 5, 5)
	b := leaf(&s, 0.1, 5)
	up := s.T(ts.MustRandn([]int64{4, 5}, gotch.Float, gotch.CPU))
	twice := func(f func(x *ts.Tensor) *ts.Tensor, x *ts.Tensor) *ts.Tensor { return f(s.T(f(x).MustTanh(false))) }
	fused := func(x *ts.Tensor) *ts.Tensor { return s.T(must(Linear(x, w, b))) }
	ref := func(x *ts.Tensor) *ts.Tensor { return linearRef(&s, x, w, b) }
	NewPass()
	y1 := twice(fused, x1)
	NewPass()
	y2 := twice(fused, x2)
	g1 := backward(&s, y1, up, w, b)
	g2 := backward(&s, y2, up, w, b)
	r1 := backward(&s, twice(ref, x1), up, w, b)
	r2 := backward(&s, twice(ref, x2), up, w, b)
	near(t, "pass 1 grad w", g1[0], r1[0], 1e-5)
	near(t, "pass 1 grad b", g1[1], r1[1], 1e-5)
	near(t, "pass 2 grad w", g2[0], r2[0], 1e-5)
	near(t, "pass 2 grad b", g2[1], r2[1], 1e-5)

	// Without grad mode no sum is opened: a later graph still gets all of
	// its gradient.
	backend.NoGrad(func() { fused(x1) })
	g3 := backward(&s, twice(fused, x1), up, w, b)
	near(t, "after a no-grad use, grad w", g3[0], r1[0], 1e-5)
}

func TestLinearRejectsMismatchedShapes(t *testing.T) {
	defer need(t)()
	var s backend.Scope
	defer s.Free()
	x := s.T(ts.MustZeros([]int64{3, 7}, gotch.Float, gotch.CPU))
	w := s.T(ts.MustZeros([]int64{4, 6}, gotch.Float, gotch.CPU))
	b := s.T(ts.MustZeros([]int64{4}, gotch.Float, gotch.CPU))
	_, err := Linear(x, w, b)
	if err == nil || !strings.Contains(err.Error(), "albert_linear") {
		t.Fatalf("x [3,7] with weight [4,6]: err %v, want one naming albert_linear", err)
	}
}

package model

import (
	"math"
	"testing"
	"unsafe"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/kernels"
)

// The Go-drawn mask is inverted dropout: a fraction p of zeros, the rest
// 1/(1-p), independent of position, and a function of the torch seed.
func TestDropoutMask(t *testing.T) {
	defer lockThread()()
	const p, n = 0.1, 1 << 20
	x := ts.MustOnes([]int64{n}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	draw := func(seed int64) []float64 {
		var s backend.Scope
		defer s.Free()
		backend.Seed(seed)
		return dropout(&s, x, p, true).Float64Values()
	}
	a, b, c := draw(3), draw(3), draw(4)
	var zeros, sum float64
	same := true
	for i, v := range a {
		if v != b[i] {
			t.Fatalf("same seed, masks differ at %d", i)
		}
		same = same && v == c[i]
		switch {
		case v == 0:
			zeros++
		case math.Abs(v-1/(1-p)) > 1e-6:
			t.Fatalf("kept element %d = %g, want %g", i, v, 1/(1-p))
		}
		sum += v
	}
	if same {
		t.Fatal("different seeds drew the same mask")
	}
	// binomial sd of the zero fraction is √(p(1-p)/n) ≈ 0.0003
	if f := zeros / n; math.Abs(f-p) > 0.002 {
		t.Fatalf("zero fraction %g, want %g", f, p)
	}
	if m := sum / n; math.Abs(m-1) > 0.003 {
		t.Fatalf("mean %g, want 1 (inverted dropout)", m)
	}
	// even and odd positions (the two halves of each 64-bit draw) alike
	var ze, zo float64
	for i, v := range a {
		if v == 0 {
			if i%2 == 0 {
				ze++
			} else {
				zo++
			}
		}
	}
	if math.Abs(ze-zo)/(n/2) > 0.003 {
		t.Fatalf("zero fractions even %g odd %g", ze/(n/2), zo/(n/2))
	}
	var s backend.Scope
	defer s.Free()
	if y := dropout(&s, x, p, false); y != x {
		t.Fatal("eval-mode dropout is not the identity")
	}
}

// Split across goroutines or not, the mask is the same.
func TestKeepMaskIndependentOfSplit(t *testing.T) {
	n := 1<<19 + 7
	a := make([]float32, n)
	b := make([]float32, n)
	fillKeepMask(a, 0.1, 42)
	fillPairs(b, 0, 0.1, 42)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("element %d: %g split, %g whole", i, a[i], b[i])
		}
	}
}

func BenchmarkKeepMask(b *testing.B) {
	m := make([]float32, 1<<20)
	b.SetBytes(4 << 20)
	for i := 0; i < b.N; i++ {
		fillKeepMask(m, 0.1, uint64(i))
	}
}

// kernels.Dropout draws fillKeepMask's mask: the fused and the Go-mask
// paths give bit-identical outputs and gradients for the same key.
func TestFusedDropoutMatchesGoMask(t *testing.T) {
	defer lockThread()()
	if !kernels.Enabled() {
		t.Skip(kernels.Status())
	}
	var s backend.Scope
	defer s.Free()
	const p, n, key = 0.1, 100_003, uint64(0xfeedbeef12345)
	backend.Seed(9)
	x := s.T(s.T(ts.MustRandn([]int64{n}, gotch.Float, gotch.CPU)).MustSetRequiresGrad(true, false))
	up := s.T(ts.MustRandn([]int64{n}, gotch.Float, gotch.CPU))
	mask := s.T(ts.MustEmpty([]int64{n}, gotch.Float, gotch.CPU))
	fillKeepMask(unsafe.Slice((*float32)(mask.MustDataPtr()), n), p, key)
	grad := func(y *ts.Tensor) []float64 {
		x.ZeroGrad()
		s.T(s.T(y.MustMul(up, false)).MustSum(gotch.Float, false)).MustBackward()
		return backend.Float64s(s.T(x.MustGrad(false)))
	}
	fused, err := kernels.Dropout(x, p, key)
	if err != nil {
		t.Fatal(err)
	}
	s.T(fused)
	composed := s.T(x.MustMul(mask, false))
	fy, cy := backend.Float64s(fused), backend.Float64s(composed)
	fg, cg := grad(fused), grad(composed)
	for i := range fy {
		if fy[i] != cy[i] || fg[i] != cg[i] {
			t.Fatalf("element %d: fused y %g grad %g, Go mask y %g grad %g", i, fy[i], fg[i], cy[i], cg[i])
		}
	}
	if _, err := kernels.Dropout(x, 1, key); err == nil {
		t.Fatal("p = 1 accepted")
	}
}

// The residual form draws the same mask: DropoutAdd(x, r) = x·mask + r,
// with gradients mask·g for x and g for r.
func TestFusedDropoutAddMatchesGoMask(t *testing.T) {
	defer lockThread()()
	if !kernels.Enabled() {
		t.Skip(kernels.Status())
	}
	var s backend.Scope
	defer s.Free()
	const p, n, key = 0.1, 50_001, uint64(0x5eed)
	backend.Seed(10)
	leaf := func() *ts.Tensor {
		return s.T(s.T(ts.MustRandn([]int64{n}, gotch.Float, gotch.CPU)).MustSetRequiresGrad(true, false))
	}
	x, r := leaf(), leaf()
	up := s.T(ts.MustRandn([]int64{n}, gotch.Float, gotch.CPU))
	mask := s.T(ts.MustEmpty([]int64{n}, gotch.Float, gotch.CPU))
	fillKeepMask(unsafe.Slice((*float32)(mask.MustDataPtr()), n), p, key)
	grads := func(y *ts.Tensor) ([]float64, []float64) {
		x.ZeroGrad()
		r.ZeroGrad()
		s.T(s.T(y.MustMul(up, false)).MustSum(gotch.Float, false)).MustBackward()
		return backend.Float64s(s.T(x.MustGrad(false))), backend.Float64s(s.T(r.MustGrad(false)))
	}
	fused, err := kernels.DropoutAdd(x, r, p, key)
	if err != nil {
		t.Fatal(err)
	}
	s.T(fused)
	composed := s.T(s.T(x.MustMul(mask, false)).MustAdd(r, false))
	fy, cy := backend.Float64s(fused), backend.Float64s(composed)
	fx, fr := grads(fused)
	cx, cr := grads(composed)
	for i := range fy {
		// y may differ in the last bit: the kernel may fuse x·m + r into one FMA
		if math.Abs(fy[i]-cy[i]) > 1e-6*(1+math.Abs(cy[i])) || fx[i] != cx[i] || fr[i] != cr[i] {
			t.Fatalf("element %d: fused y %g grads %g %g, Go mask y %g grads %g %g", i, fy[i], fx[i], fr[i], cy[i], cx[i], cr[i])
		}
	}
}

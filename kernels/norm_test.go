package kernels

import (
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
)

// GlobalNorm is the norm of all the tensors' elements together (a strided
// one included, and one long enough to span several chunks), and the
// clipping factor is max/norm above max, 1 below, absent without a max.
func TestGlobalNormMatchesComposed(t *testing.T) {
	defer need(t)()
	var s backend.Scope
	defer s.Free()
	backend.Seed(8)
	xs := []*ts.Tensor{
		s.T(ts.MustRandn([]int64{300, 7}, gotch.Float, gotch.CPU)),
		s.T(s.T(ts.MustRandn([]int64{40, 30}, gotch.Float, gotch.CPU)).MustTranspose(0, 1, false)), // strided
		s.T(ts.MustRandn([]int64{100003}, gotch.Float, gotch.CPU)),
		s.T(ts.MustRandn([]int64{1}, gotch.Float, gotch.CPU)),
	}
	var sq float64
	for _, x := range xs {
		for _, v := range backend.Float64s(x) {
			sq += v * v
		}
	}
	want := math.Sqrt(sq)
	for _, c := range []struct{ max, factor float64 }{{2 * want, 1}, {want / 4, 0.25}, {0, -1}} {
		norm, factor, err := GlobalNorm(xs, c.max)
		if err != nil {
			t.Fatal(err)
		}
		s.T(norm)
		if got := backend.Float64s(norm)[0]; math.Abs(got-want) > 1e-6*want {
			t.Fatalf("norm %.9g, want %.9g", got, want)
		}
		if c.factor < 0 {
			if factor != nil {
				t.Fatalf("max %g: a clipping factor without clipping", c.max)
			}
			continue
		}
		if got := backend.Float64s(s.T(factor))[0]; math.Abs(got-c.factor) > 1e-6 {
			t.Fatalf("max %g: factor %.9g, want %.9g", c.max, got, c.factor)
		}
	}
	if _, _, err := GlobalNorm([]*ts.Tensor{s.T(ts.MustOnes([]int64{3}, gotch.Double, gotch.CPU))}, 1); err == nil {
		t.Fatal("a float64 tensor: no error")
	}
}

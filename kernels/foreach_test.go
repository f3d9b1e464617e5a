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

// This build's library must have the multi-tensor update: a stale one would
// otherwise only show as a slower optimizer on CUDA.
func TestForeachLoaded(t *testing.T) {
	if os.Getenv("ALBERT_KERNELS") != "" {
		t.Skip("ALBERT_KERNELS is set")
	}
	if !ForeachEnabled() {
		t.Fatal(ForeachStatus())
	}
	defer Disable()()
	if ForeachEnabled() {
		t.Fatal("ForeachEnabled under Disable")
	}
	if err := LAMBForeach(nil, nil, nil, nil, nil, LAMBArgs{}); err == nil {
		t.Fatal("LAMBForeach ran under Disable")
	}
}

func needForeach(t *testing.T) func() {
	t.Helper()
	if !ForeachEnabled() {
		t.Skip(ForeachStatus())
	}
	return backend.LockThread()
}

// foreachCase is a parameter list for the update: one larger than the
// fused kernel's 2^15 chunk, a matrix, a vector, and one all zero (‖w‖ = 0:
// trust ratio 1), with their moments.
type foreachCase struct {
	w, m, v []*ts.Tensor
}

var foreachShapes = [][]int64{{300, 257}, {64, 48}, {513}, {7, 5}}

// newForeachCase makes the parameters from seed, the last one zero.
func newForeachCase(s *backend.Scope, seed int64) foreachCase {
	backend.Seed(seed)
	var c foreachCase
	for i, sh := range foreachShapes {
		w := s.T(ts.MustRandn(sh, gotch.Float, gotch.CPU))
		if i == len(foreachShapes)-1 {
			w = s.T(ts.MustZeros(sh, gotch.Float, gotch.CPU))
		}
		c.w = append(c.w, w)
		c.m = append(c.m, s.T(ts.MustZeros(sh, gotch.Float, gotch.CPU)))
		c.v = append(c.v, s.T(ts.MustZeros(sh, gotch.Float, gotch.CPU)))
	}
	return c
}

// sameToRounding fails unless a and b agree to tol of b's largest magnitude.
func sameToRounding(t *testing.T, what string, a, b *ts.Tensor, tol float64) {
	t.Helper()
	x, y := backend.Float64s(a), backend.Float64s(b)
	scale := 0.0
	for _, v := range y {
		scale = math.Max(scale, math.Abs(v))
	}
	for i := range x {
		if d := math.Abs(x[i] - y[i]); d > tol*scale || math.IsNaN(x[i]) != math.IsNaN(y[i]) {
			t.Fatalf("%s[%d]: foreach %.9g, fused %.9g (diff %.3g, scale %.3g)", what, i, x[i], y[i], d, scale)
		}
	}
}

// LAMBForeach over a list is LAMB parameter by parameter, to float
// rounding: LAMB and AdamW, with and without decay and bias correction,
// with and without a clipping factor, over three steps.
func TestLAMBForeachMatchesLAMB(t *testing.T) {
	defer needForeach(t)()
	for _, trust := range []bool{true, false} {
		for _, wd := range []float64{0.01, 0} {
			for _, corr := range []bool{false, true} {
				for _, clip := range []bool{false, true} {
					name := fmt.Sprintf("trust=%v/wd=%g/biascorr=%v/gscale=%v", trust, wd, corr, clip)
					t.Run(name, func(t *testing.T) {
						var s backend.Scope
						defer s.Free()
						a, b := newForeachCase(&s, 3), newForeachCase(&s, 3)
						var gscale *ts.Tensor
						if clip {
							gscale = s.T(ts.MustOfSlice([]float32{0.3}))
						}
						for step := 1; step <= 3; step++ {
							var gs []*ts.Tensor
							for _, sh := range foreachShapes {
								gs = append(gs, s.T(ts.MustRandn(sh, gotch.Float, gotch.CPU)))
							}
							args := LAMBArgs{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-6, WeightDecay: wd, TrustRatio: trust}
							if corr {
								args.MCorr, args.VCorr = 1/(1-math.Pow(0.9, float64(step))), 1/(1-math.Pow(0.999, float64(step)))
							}
							if err := LAMBForeach(a.w, gs, a.m, a.v, gscale, args); err != nil {
								t.Fatal(err)
							}
							for i := range b.w {
								if err := LAMB(b.w[i], gs[i], b.m[i], b.v[i], gscale, args); err != nil {
									t.Fatal(err)
								}
							}
						}
						for i := range a.w {
							sameToRounding(t, fmt.Sprint("w", i), a.w[i], b.w[i], 1e-5)
							sameToRounding(t, fmt.Sprint("m", i), a.m[i], b.m[i], 1e-5)
							sameToRounding(t, fmt.Sprint("v", i), a.v[i], b.v[i], 1e-5)
						}
						// The zero parameter moved (trust ratio 1, not 0/‖u‖ = 0).
						if z := backend.Float64s(a.w[len(a.w)-1]); z[0] == 0 {
							t.Fatal("the zero parameter did not move")
						}
					})
				}
			}
		}
	}
}

// Wrong input is an error, not a crash, and leaves the parameters alone.
func TestLAMBForeachRejects(t *testing.T) {
	defer needForeach(t)()
	var s backend.Scope
	defer s.Free()
	c := newForeachCase(&s, 1)
	gs := func() []*ts.Tensor {
		var out []*ts.Tensor
		for _, sh := range foreachShapes {
			out = append(out, s.T(ts.MustOnes(sh, gotch.Float, gotch.CPU)))
		}
		return out
	}
	args := LAMBArgs{LR: 0.1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-6}
	before := backend.Float64s(c.w[0])
	wrongShape := gs()
	wrongShape[1] = s.T(ts.MustOnes([]int64{48, 64}, gotch.Float, gotch.CPU))
	double := gs()
	double[2] = s.T(ts.MustOnes(foreachShapes[2], gotch.Double, gotch.CPU))
	withNil := gs()
	withNil[0] = nil
	for _, tc := range []struct {
		what   string
		g      []*ts.Tensor
		m      []*ts.Tensor
		gscale *ts.Tensor
		want   string
	}{
		{"fewer gradients", gs()[:2], c.m, nil, "4 parameters but 2 gradients"},
		{"fewer moments", gs(), c.m[:3], nil, "3 m"},
		{"a nil gradient", withNil, c.m, nil, "gradient 0 is nil"},
		{"a gradient of another shape", wrongShape, c.m, nil, "gradient 1 has shape"},
		{"a float64 gradient", double, c.m, nil, "gradient 2 is Double"},
		{"a two-element gscale", gs(), c.m, s.T(ts.MustOnes([]int64{2}, gotch.Float, gotch.CPU)), "one element"},
	} {
		err := LAMBForeach(c.w, tc.g, tc.m, c.v, tc.gscale, args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.what, err, tc.want)
		}
	}
	if after := backend.Float64s(c.w[0]); after[0] != before[0] {
		t.Errorf("a rejected update changed w: %v, was %v", after[0], before[0])
	}
	if err := LAMBForeach(nil, nil, nil, nil, nil, args); err != nil {
		t.Errorf("an empty list: %v", err)
	}
}

package main

import (
	"math/rand/v2"
	"testing"
)

// The probe separates what a linear model can separate, and no more: on
// labels set by the sign of one feature among correlated ones it is near
// perfect; on labels independent of the features it is near chance.
func TestProbeFitsLinearSignalOnly(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	gen := func(n int, informative bool) ([][]float64, []int) {
		x, y := make([][]float64, n), make([]int, n)
		for i := range x {
			common := r.NormFloat64() * 10 // a shared component: strongly correlated features
			x[i] = make([]float64, 16)
			for j := range x[i] {
				x[i][j] = common + r.NormFloat64()
			}
			if informative {
				x[i][3] += 3 * float64(2*(i%2)-1)
			}
			y[i] = i % 2
			if !informative {
				y[i] = r.IntN(2)
			}
		}
		return x, y
	}
	xtr, ytr := gen(400, true)
	xdv, ydv := gen(400, true)
	if acc := probe(xtr, ytr, xdv, ydv, 2); acc < 0.97 {
		t.Errorf("separable labels: dev accuracy %.3f, want ≥ 0.97", acc)
	}
	xtr, ytr = gen(400, false)
	xdv, ydv = gen(400, false)
	if acc := probe(xtr, ytr, xdv, ydv, 2); acc < 0.4 || acc > 0.6 {
		t.Errorf("random labels: dev accuracy %.3f, want chance (0.4–0.6)", acc)
	}
}

func TestSpread(t *testing.T) {
	std, sat := spread([][]float64{{1, 0}, {-1, 0}})
	if std != 0.5 || sat != 0.5 { // dimension 0: std 1, both saturated; dimension 1: std 0
		t.Errorf("spread = %v, %v; want 0.5, 0.5", std, sat)
	}
}

package model

import (
	"math"
	"runtime"
	"sync"
	"unsafe"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/kernels"
)

// dropout zeroes each element of x with probability p and scales the rest
// by 1/(1-p) (inverted dropout, as torch's dropout and the official code).
//
// On the CPU the keep mask is drawn here, in Go, straight into the mask
// tensor's memory: libtorch 1.13's CPU bernoulli_ draws one double per
// element serially from its generator under a lock (~12 ms per million
// elements here; dropout was a quarter of the tiny model's forward time),
// while a counter-based generator fills the same mask in about 1 ms. The
// generator is keyed by a 64-bit draw from libtorch's generator, so masks
// stay a function of backend.Seed: same seed, same masks (the loop seeds
// every step, so resumed runs still match). With the fused kernels loaded,
// kernels.Dropout draws the same mask in C++ and applies it in the same
// pass, keeping it for backward as bytes rather than floats. On CUDA,
// libtorch's fused kernel is used.
func dropout(s *backend.Scope, x *ts.Tensor, p float64, train bool) *ts.Tensor {
	if !train || p == 0 {
		return x
	}
	if x.MustDevice().IsCuda() {
		return s.T(ts.MustDropout(x, p, true))
	}
	if kernels.Applies(x) { // the same mask, drawn and applied in one pass
		return s.T(mustKernel(kernels.Dropout(x, p, torchSeed(s))))
	}
	mask := s.T(ts.MustEmpty(x.MustSize(), gotch.Float, gotch.CPU))
	n := mask.Numel()
	if n > 0 {
		fillKeepMask(unsafe.Slice((*float32)(mask.MustDataPtr()), n), p, torchSeed(s))
	}
	return s.T(x.MustMul(mask, false))
}

// dropoutAdd is dropout(x) + res, a sublayer's output joining the residual
// stream: one kernels.DropoutAdd pass on the CPU, with dropout's mask.
func dropoutAdd(s *backend.Scope, x, res *ts.Tensor, p float64, train bool) *ts.Tensor {
	if train && p > 0 && kernels.Applies(x, res) {
		return s.T(mustKernel(kernels.DropoutAdd(x, res, p, torchSeed(s))))
	}
	return s.T(dropout(s, x, p, train).MustAdd(res, false))
}

// torchSeed draws 63 random bits from libtorch's CPU generator.
func torchSeed(s *backend.Scope) uint64 {
	r := s.T(ts.MustRandint(math.MaxInt64, []int64{1}, gotch.Int64, gotch.CPU))
	return uint64(r.Int64Values()[0])
}

// fillKeepMask sets each m[i] to 1/(1-p) with probability 1-p, else 0.
// Pair j = (m[2j], m[2j+1]) takes the low and high 32 bits of output j of
// the SplitMix64 stream started at key, so the mask does not depend on how
// the work is split: large masks are filled by one goroutine per CPU.
func fillKeepMask(m []float32, p float64, key uint64) {
	const grain = 1 << 18 // elements per goroutine at least
	workers := min(runtime.GOMAXPROCS(0), (len(m)+grain-1)/grain)
	if workers <= 1 {
		fillPairs(m, 0, p, key)
		return
	}
	per := (len(m)/workers + 1) &^ 1 // even, so chunks start at a pair
	var wg sync.WaitGroup
	for lo := 0; lo < len(m); lo += per {
		hi := min(lo+per, len(m))
		wg.Add(1)
		go func() {
			defer wg.Done()
			fillPairs(m[lo:hi], lo/2, p, key)
		}()
	}
	wg.Wait()
}

// fillPairs fills m, whose first pair is pair number first of the stream.
func fillPairs(m []float32, first int, p float64, key uint64) {
	thresh := uint64(math.Round(p * (1 << 32))) // drop when u < thresh
	keep := math.Float32bits(float32(1 / (1 - p)))
	const golden = 0x9e3779b97f4a7c15
	state := key + uint64(first)*golden
	i := 0
	for ; i+1 < len(m); i += 2 {
		r := splitmix(state)
		state += golden
		m[i] = math.Float32frombits(keep * b2u(r&0xffffffff >= thresh))
		m[i+1] = math.Float32frombits(keep * b2u(r>>32 >= thresh))
	}
	if i < len(m) {
		m[i] = math.Float32frombits(keep * b2u(splitmix(state)&0xffffffff >= thresh))
	}
}

// b2u is 1 for true, 0 for false (compiled without a branch).
func b2u(b bool) uint32 {
	var u uint32
	if b {
		u = 1
	}
	return u
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

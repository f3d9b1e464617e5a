package model

import (
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// truncatedNormal draws a tensor from N(0, σ²) truncated to ±2σ, as the
// official code's tf.truncated_normal_initializer: sample u uniformly
// between Φ(-2) and Φ(2) and map it through the inverse normal CDF.
func truncatedNormal(shape []int64, sigma float64, dev gotch.Device) *ts.Tensor {
	lo := 0.5 * (1 + math.Erf(-2/math.Sqrt2)) // Φ(-2)
	hi := 0.5 * (1 + math.Erf(2/math.Sqrt2))  // Φ(2)
	u := ts.MustRand(shape, gotch.Float, dev)
	// erfinv(2u' - 1)·√2·σ with u' = lo + u·(hi - lo)
	x := u.MustMulScalar(ts.FloatScalar(2*(hi-lo)), true)
	x = x.MustAddScalar(ts.FloatScalar(2*lo-1), true)
	x = x.MustErfinv(true)
	return x.MustMulScalar(ts.FloatScalar(math.Sqrt2*sigma), true)
}

package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/train"
)

// Precision is o's precision as recorded in a result: "fp32" when unset.
func (o Options) precision() string {
	if o.Precision == "" {
		return train.PrecisionFP32
	}
	return o.Precision
}

// CheckPrecision says whether exp bench can time precision prec on dev: one
// of train.Precisions (fp32, tf32, bf16), and one the trainer runs there
// (train.Config.CheckPrecision: tf32 is a CUDA matmul mode, refused on the
// CPU). "" is fp32.
func CheckPrecision(prec string, dev gotch.Device) error {
	if prec != "" && !slices.Contains(train.Precisions, prec) {
		return fmt.Errorf("bench: --precision %q: want one of %s", prec, strings.Join(train.Precisions, ", "))
	}
	c := train.DefaultConfig()
	c.Precision = prec
	if err := c.CheckPrecision(dev.IsCuda()); err != nil {
		return fmt.Errorf("bench: --precision %s on %s: %w", c.PrecisionName(), backend.DeviceName(dev), err)
	}
	return nil
}

// CeilingGFLOPS is the matmul ceiling matching precision prec on dev: n×n
// products in fp32 for fp32 (backend.MatmulGFLOPS, what exp doctor
// reports), in bf16 for bf16 (bf16 operands and result, as autocast runs
// the dense layers), and for tf32 fp32 products under whatever TF32 setting
// the process holds: the stepper of a tf32 run holds TF32 on (CUDA only).
func CeilingGFLOPS(dev gotch.Device, n int64, prec string) (float64, error) {
	if prec == train.PrecisionBF16 {
		return matmulGFLOPS(dev, n, gotch.BFloat16)
	}
	return backend.MatmulGFLOPS(dev, n)
}

// matmulGFLOPS times n×n products of dtype on dev for half a second (at
// least 3), as backend.MatmulGFLOPS does in fp32.
func matmulGFLOPS(dev gotch.Device, n int64, dtype gotch.DType) (float64, error) {
	var s backend.Scope
	defer s.Free()
	operand := func() (*ts.Tensor, error) {
		x, err := ts.Randn([]int64{n, n}, gotch.Float, dev)
		if err != nil {
			return nil, err
		}
		s.T(x)
		y, err := x.Totype(dtype, false)
		if err != nil {
			return nil, fmt.Errorf("bench: a %v matmul operand on %s: %w", dtype, backend.DeviceName(dev), err)
		}
		return s.T(y), nil
	}
	a, err := operand()
	if err != nil {
		return 0, err
	}
	b, err := operand()
	if err != nil {
		return 0, err
	}
	run := func() error {
		c, err := a.Matmul(b, false)
		if err != nil {
			return fmt.Errorf("bench: a %v matmul on %s: %w", dtype, backend.DeviceName(dev), err)
		}
		return c.Drop()
	}
	// sync waits for queued GPU work: reading a value back orders after it.
	sync := func() error {
		sum, err := a.Sum(gotch.Float, false)
		if err != nil {
			return err
		}
		defer sum.MustDrop()
		_ = backend.Float64s(sum)
		return nil
	}
	if err := run(); err != nil { // warm-up
		return 0, err
	}
	if err := sync(); err != nil {
		return 0, err
	}
	reps, start := 0, time.Now()
	for time.Since(start) < 500*time.Millisecond || reps < 3 {
		if err := run(); err != nil {
			return 0, err
		}
		reps++
		if dev.IsCuda() && reps%50 == 0 {
			if err := sync(); err != nil {
				return 0, err
			}
		}
	}
	if err := sync(); err != nil {
		return 0, err
	}
	return 2 * float64(n*n*n) * float64(reps) / time.Since(start).Seconds() / 1e9, nil
}

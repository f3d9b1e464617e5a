package bench

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sugarme/gotch"

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
		ceil, err := backend.MatmulGFLOPSOf(dev, n, gotch.BFloat16)
		if err != nil {
			return 0, fmt.Errorf("bench: %w", err)
		}
		return ceil, nil
	}
	return backend.MatmulGFLOPS(dev, n)
}

package train

import (
	"strings"
	"testing"
)

// train.precision: the three values validate, anything else names the key;
// fp32 normalizes to "" (omitted from the hashed JSON) and is recorded as
// "fp32"; only fp32 is accepted where the trainer cannot honour the others
// (the CPU: tf32 is a CUDA mode, bf16 meets the fp32-only fused kernels;
// CUDA: neither is wired into the step yet).
func TestPrecisionSetting(t *testing.T) {
	c := DefaultConfig()
	for _, p := range []string{"", "fp32", "tf32", "bf16"} {
		c.Precision = p
		if err := c.Validate(); err != nil {
			t.Errorf("precision %q: %v", p, err)
		}
	}
	c.Precision = "fp16"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "precision must be one of") {
		t.Errorf("fp16: %v", err)
	}
	c.Precision = "fp32"
	if n := c.Normalize(); n.Precision != "" || n.PrecisionName() != "fp32" {
		t.Errorf("fp32 normalizes to %q, recorded as %q", n.Precision, n.PrecisionName())
	}
	for _, tc := range []struct {
		prec string
		cuda bool
		want string // "" = accepted
	}{
		{"", false, ""}, {"fp32", false, ""}, {"fp32", true, ""},
		{"tf32", false, "CUDA matmul mode"}, {"bf16", false, "fused CPU kernels"},
		{"tf32", true, "not wired"}, {"bf16", true, "not wired"},
	} {
		c.Precision = tc.prec
		err := c.CheckPrecision(tc.cuda)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q on cuda=%v: %v, want %q", tc.prec, tc.cuda, err, tc.want)
		}
	}
}

package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/reproml/albert/bench"
	"github.com/reproml/albert/internal/exptest"
)

// exp bench --precision: unknown values and tf32 on the CPU are refused
// with the reason before any child starts, and a bf16 run's row (ours, in a
// child process) says bf16 and is rated against the bf16 ceiling.
func TestBenchPrecision(t *testing.T) {
	exp := exptest.Exp(t)
	for _, tc := range []struct{ prec, want string }{
		{"fp16", `--precision "fp16": want one of fp32, tf32, bf16`},
		{"tf32", "is a CUDA matmul mode"},
	} {
		out, err := exec.Command(exp, "bench", "--device", "cpu", "--configs", "tiny-all", "--steps", "1",
			"--precision", tc.prec).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "panic") {
			t.Errorf("--precision %s: %v\n%s\nwant an error saying %q", tc.prec, err, out, tc.want)
		}
	}
	out, err := exec.Command(exp, "bench", "--device", "cpu", "--configs", "tiny-all", "--steps", "1", "--warmup", "0",
		"--precision", "bf16", "--json").Output()
	if err != nil {
		t.Fatalf("bf16: %v\n%s", err, out)
	}
	var rows []bench.Row
	if err := json.Unmarshal(out, &rows); err != nil || len(rows) != 1 || rows[0].Ours == nil {
		t.Fatalf("bf16 rows: %v\n%s", err, out)
	}
	r := rows[0]
	if r.Precision != "bf16" || r.Ours.Precision != "bf16" || r.Ours.CeilingFP32GFLOPS <= 0 ||
		!strings.Contains(r.Targets[0].What, "bf16 matmul ceiling") {
		t.Errorf("bf16 row: precision %q, ours %q, fp32 ceiling beside %g, target %q",
			r.Precision, r.Ours.Precision, r.Ours.CeilingFP32GFLOPS, r.Targets[0].What)
	}
	t.Logf("tiny-all bf16, one step: %.0f ms, %.1f GFLOP/s; bf16 ceiling %.1f, fp32 ceiling %.1f",
		r.Ours.MsMedian, r.Ours.GFLOPS, r.Ours.CeilingGFLOPS, r.Ours.CeilingFP32GFLOPS)
}

package bench

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/reproml/albert/model"
)

// argAfter is the value following flag in argv ("" when absent).
func argAfter(argv []string, flag string) string {
	if i := slices.Index(argv, flag); i >= 0 && i+1 < len(argv) {
		return argv[i+1]
	}
	return ""
}

// --precision reaches both children: our worker and reference.py, fp32
// when unset; the reference's LAMB form and torch.compile with it.
func TestPrecisionReachesTheChildren(t *testing.T) {
	s, _ := Lookup("tiny-all")
	for _, prec := range []string{"", "fp32", "tf32", "bf16"} {
		want := prec
		if want == "" {
			want = "fp32"
		}
		o := Options{Steps: 2, Device: "cpu", Precision: prec}
		ours, err := OursArgv(s, o)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := ReferenceArgv("python3", "bench/reference.py", s, o, 2)
		if err != nil {
			t.Fatal(err)
		}
		if got := argAfter(ours, "--precision"); got != want {
			t.Errorf("precision %q: our child gets --precision %q: %q", prec, got, ours)
		}
		if got := argAfter(theirs, "--precision"); got != want {
			t.Errorf("precision %q: reference.py gets --precision %q: %q", prec, got, theirs)
		}
		if got := argAfter(theirs, "--optimizer-impl"); got != "foreach" || slices.Contains(theirs, "--compile") {
			t.Errorf("default reference form: --optimizer-impl %q, argv %q", got, theirs)
		}
	}
	theirs, err := ReferenceArgv("python3", "bench/reference.py", s, Options{RefOptimizer: "loop", RefCompile: true}, 2)
	if err != nil || argAfter(theirs, "--optimizer-impl") != "loop" || !slices.Contains(theirs, "--compile") {
		t.Errorf("loop + compile: %q, %v", theirs, err)
	}
	if _, err := ReferenceArgv("python3", "bench/reference.py", s, Options{RefOptimizer: "fused"}, 2); err == nil ||
		!strings.Contains(err.Error(), "want one of foreach, loop") {
		t.Errorf("unknown reference optimizer: %v", err)
	}
}

// Unknown precisions are refused by name, tf32 on the CPU with the
// trainer's reason; fp32 and bf16 run on the CPU.
func TestPrecisionIsChecked(t *testing.T) {
	for _, tc := range []struct {
		prec string
		cuda bool
		want string // "" = accepted
	}{
		{"", false, ""}, {"fp32", false, ""}, {"bf16", false, ""}, {"tf32", true, ""}, {"bf16", true, ""},
		{"fp16", false, `--precision "fp16": want one of fp32, tf32, bf16`},
		{"BF16", true, "want one of"},
		{"tf32", false, "CUDA matmul mode"},
	} {
		dev := gotch.CPU
		if tc.cuda {
			dev = gotch.CudaBuilder(0) // CheckPrecision only asks IsCuda
		}
		err := CheckPrecision(tc.prec, dev)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q on cuda=%v: %v, want %q", tc.prec, tc.cuda, err, tc.want)
		}
	}
	// bench.Run refuses it too (a worker run by hand), an error, not a panic.
	s := miniSpec()
	if _, err := Run(s, Options{Steps: 1, Device: "cpu", Precision: "tf32"}); err == nil || !strings.Contains(err.Error(), "CUDA matmul mode") {
		t.Errorf("Run at tf32 on the CPU: %v", err)
	}
	if _, err := Run(s, Options{Steps: 1, Device: "cpu", Precision: "half"}); err == nil || !strings.Contains(err.Error(), "want one of") {
		t.Errorf("Run at half: %v", err)
	}
}

// A row checks that each side measured its precision (a reference.py from
// before --precision reports none), and the table and the targets say it.
func TestTableShowsThePrecision(t *testing.T) {
	s, _ := Lookup("tiny-all")
	r := Row{Spec: s, Precision: "bf16", FLOPs: s.FLOPs()}
	if err := r.Check(Result{Impl: "pytorch"}); err == nil || !strings.Contains(err.Error(), "measured no precision, want bf16") {
		t.Errorf("a result without a precision: %v", err)
	}
	if err := r.Check(Result{Impl: "gotch", Precision: "fp32"}); err == nil {
		t.Error("an fp32 result in a bf16 row passed")
	}
	ours := Result{Impl: "gotch", Precision: "bf16", MsMedian: 500, TokensPerSec: 4096, CeilingGFLOPS: 400, CeilingFP32GFLOPS: 100}
	theirs := Result{Impl: "pytorch", Precision: "bf16", Variant: "foreach", MsMedian: 1000, TokensPerSec: 2048, CeilingGFLOPS: 400}
	for _, res := range []Result{ours, theirs} {
		if err := r.Check(res); err != nil {
			t.Fatal(err)
		}
		r.Add(res)
	}
	r.Judge()
	var b bytes.Buffer
	if err := WriteTable(&b, []Row{r}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Log("\n" + out)
	lines := strings.Split(out, "\n")
	if !strings.Contains(lines[0], "precision") {
		t.Errorf("header %q has no precision column", lines[0])
	}
	var body [][]string // the table's rows, by field
	for _, l := range lines[1:3] {
		body = append(body, strings.Fields(l))
	}
	if want := []string{"tiny-all", "gotch", "bf16"}; !slices.Equal(body[0][:3], want) {
		t.Errorf("our row starts %q, want %q", body[0][:3], want)
	}
	if want := []string{"tiny-all", "pytorch", "(foreach)", "bf16"}; !slices.Equal(body[1][:4], want) {
		t.Errorf("their row starts %q, want %q", body[1][:4], want)
	}
	gf := s.FLOPs() / 0.5 / 1e9
	for _, want := range []string{
		"fraction of bf16 matmul ceiling",
		// the fp32 ceiling beside the bf16 one
		fmt.Sprintf("of the bf16 matmul ceiling (400), %.0f%% of the fp32 one (100)", gf),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
}

// miniSpec is a small model and batch (bench.Run takes any Spec): a step
// in milliseconds on the CPU.
func miniSpec() Spec {
	return Spec{Name: "mini", Batch: 4, Seq: 32, Preds: 5, Model: model.Config{
		VocabSize: 1000, EmbeddingSize: 16, HiddenSize: 32, NumLayers: 2, NumHeads: 2, IntermediateSize: 64,
		MaxPositions: 64, Sharing: model.ShareAll, HiddenDropout: 0.1, AttentionDropout: 0.1, SentenceHead: true,
	}.Resolve()}
}

// bench.Run at bf16 really runs the step under autocast: from the same
// seeds the loss differs from the fp32 run's by bf16 rounding (as
// train's TestBF16ForwardIsBF16 holds the logits: more than fp32 noise,
// far less than a different model), while two fp32 runs agree; and the
// bf16 result is rated against a bf16 ceiling with the fp32 one beside it.
func TestRunAtBF16RunsUnderAutocast(t *testing.T) {
	s := miniSpec()
	loss := map[string]float64{}
	for _, prec := range []string{"fp32", "bf16"} {
		r, err := Run(s, Options{Steps: 2, Device: "cpu", Precision: prec})
		if err != nil {
			t.Fatal(err)
		}
		if r.Precision != prec || r.CeilingGFLOPS <= 0 {
			t.Fatalf("%s: result at %q, ceiling %g", prec, r.Precision, r.CeilingGFLOPS)
		}
		if (prec == "bf16") != (r.CeilingFP32GFLOPS > 0) {
			t.Errorf("%s: fp32 ceiling beside it %g", prec, r.CeilingFP32GFLOPS)
		}
		t.Logf("%s: loss %.7f, %.1f ms/step, ceiling %.1f GFLOP/s (fp32 beside it %.1f)", prec, r.Loss, r.MsMedian, r.CeilingGFLOPS, r.CeilingFP32GFLOPS)
		loss[prec] = r.Loss
	}
	again, err := Run(s, Options{Steps: 2, Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	// The loss of a fresh tiny model is about log V whatever the logits'
	// rounding, so the bf16 difference is small (about 1e-5 relative here):
	// it is held against the fp32 runs' own agreement (bit-identical here).
	noise := math.Abs(again.Loss-loss["fp32"]) / math.Abs(loss["fp32"])
	rel := math.Abs(loss["bf16"]-loss["fp32"]) / math.Abs(loss["fp32"])
	t.Logf("|loss − fp32 loss| / fp32 loss: another fp32 run %.3g, bf16 %.3g", noise, rel)
	if noise > 1e-7 {
		t.Fatalf("two fp32 runs differ by %.3g relative: the comparison below means nothing", noise)
	}
	if rel < 1e-6 || rel > 0.05 {
		t.Errorf("bf16 loss differs from fp32 by %.3g relative: want bf16 rounding, between 1e-6 and 0.05", rel)
	}
}

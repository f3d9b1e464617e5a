package bench

import (
	"math"
	"strings"
	"testing"
)

// The step's arithmetic by hand for tiny (V 8000, E 64, H 256, L 4, I 1024;
// batch 16, seq 128, T = 2048 tokens, 20 masked slots a sequence = 320):
// projection 2·2048·64·256 = 67,108,864; Q,K,V,O 4·4·2·2048·256² =
// 4,294,967,296; attention products 4·2·2·2048·128·256 = 1,073,741,824;
// FFN 4·2·2·2048·256·1024 = 8,589,934,592; MLM transform 2·320·256·64 =
// 10,485,760; decoder at the masked slots 2·320·64·8000 = 327,680,000;
// pooler 2·16·256² = 2,097,152; sentence head 2·16·256·2 = 16,384.
// Forward 14,366,031,872; a step, 3×, 43,098,095,616 (the formula used
// before, with the decoder over all 2048 tokens: 48,576,380,928).
func TestFLOPsCountWhatIsComputed(t *testing.T) {
	s, err := Lookup("tiny-all")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.FLOPs(), 43098095616.0; got != want {
		t.Fatalf("FLOPs = %.0f, want %.0f", got, want)
	}
}

// Both sides of --vs-pytorch are rated with the row's count, whatever the
// result brought (reference.py reports no GFLOP/s).
func TestRowRatesBothSidesWithOneCount(t *testing.T) {
	s, _ := Lookup("tiny-all")
	r := Row{Spec: s, FLOPs: s.FLOPs()}
	r.Add(Result{Impl: "gotch", MsMedian: 500, GFLOPS: 1})
	r.Add(Result{Impl: "pytorch", MsMedian: 1000})
	want := s.FLOPs() / 1e9
	if math.Abs(r.Ours.GFLOPS-2*want) > 1e-9 || math.Abs(r.Theirs.GFLOPS-want) > 1e-9 {
		t.Fatalf("GFLOP/s ours %g theirs %g, want %g and %g", r.Ours.GFLOPS, r.Theirs.GFLOPS, 2*want, want)
	}
}

func TestBatchesAreRealistic(t *testing.T) {
	s, _ := Lookup("base-none")
	for _, b := range Batches(s, 2, 1) {
		if b.Size != 8 || b.SeqLen != 128 || len(b.MaskedPositions) != 8*Preds {
			t.Fatalf("batch %+v", b.Size)
		}
		for i := 0; i < b.Size; i++ {
			seen := map[int64]bool{}
			for _, p := range b.MaskedPositions[i*Preds : (i+1)*Preds] {
				if p <= 0 || p >= 128 || seen[p] {
					t.Fatalf("row %d: bad or repeated masked position %d", i, p)
				}
				seen[p] = true
			}
		}
		for _, id := range b.InputIDs {
			if id < 5 || id >= 30000 {
				t.Fatalf("id %d out of range", id)
			}
		}
	}
}

func TestThroughputTableLoadsAndPicksTheNearestStep(t *testing.T) {
	table, err := Throughputs()
	if err != nil {
		t.Fatal(err)
	}
	var cpu, cuda int
	for _, e := range table {
		switch e.Device {
		case "cpu":
			cpu++
		case "cuda":
			cuda++
		}
	}
	if cpu == 0 || cuda == 0 {
		t.Fatalf("want cpu and cuda entries, have %d and %d", cpu, cuda)
	}
	// base-shaped's own step on the H100 predicts its own measured time.
	base, _ := Lookup("base-all")
	e, err := EstimateTime(table, "cuda", "fp32", 20*base.FLOPs(), 20)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Seconds; math.Abs(got-20*0.03611) > 1e-3 || !strings.Contains(e.From.What, "base-shaped") {
		t.Fatalf("20 base steps on cuda: %.3f s from %q, want 0.722 s from base-shaped", got, e.From.What)
	}
	// A tiny step takes the tiny entry's (launch-bound) rate, not base's.
	tiny, _ := Lookup("tiny-all")
	if e, _ := EstimateTime(table, "cuda", "fp32", tiny.FLOPs(), 1); !strings.Contains(e.From.What, "tiny") {
		t.Fatalf("tiny step on cuda rated by %q", e.From.What)
	}
	// bf16 has no measurement yet: fp32 stands in, and says so.
	if e, err := EstimateTime(table, "cuda", "bf16", base.FLOPs(), 1); err != nil || e.Fallback == "" {
		t.Fatalf("bf16 on cuda: %+v, %v", e, err)
	}
	if _, err := EstimateTime(table, "tpu", "fp32", 1, 1); err == nil {
		t.Fatal("an unmeasured device must be an error")
	}
}

func TestGPUSpecsAreNamedAndSized(t *testing.T) {
	s, err := Lookup("base-all-s512")
	if err != nil {
		t.Fatal(err)
	}
	if s.Seq != 512 || s.Batch != 64 || s.Preds != Preds || s.Model.HiddenSize != 768 {
		t.Fatalf("base-all-s512: %+v", s)
	}
	if b := Batches(s, 1, 1)[0]; len(b.InputIDs) != 64*512 || len(b.MaskedPositions) != 64*Preds {
		t.Fatalf("batch of %d ids, %d masked", len(b.InputIDs), len(b.MaskedPositions))
	}
	for _, s := range Specs() {
		if s.Batch > 16 {
			t.Errorf("%s (batch %d) is in the default CPU list", s.Name, s.Batch)
		}
	}
}

package bench

import (
	"math"
	"testing"
)

// The FLOP formula by hand for tiny: T = 2048,
// 6T[L(4H²+2HF)+2EH] = 6·2048·(4·(262144+524288)+32768) = 39,057,358,848
// 6TEV = 6·2048·64·8000 = 6,291,456,000; 6B(H²+2H) = 6,340,608;
// 12LHS²B = 12·4·256·16384·16 = 3,221,225,472.
func TestFLOPsFormula(t *testing.T) {
	s, err := Lookup("tiny-all")
	if err != nil {
		t.Fatal(err)
	}
	want := 39057358848.0 + 6291456000 + 6340608 + 3221225472
	if got := s.FLOPs(); math.Abs(got-want) > 1 {
		t.Fatalf("FLOPs = %.0f, want %.0f", got, want)
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

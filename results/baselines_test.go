package results

import (
	"math"
	"testing"
	"time"
)

func TestBaselines(t *testing.T) {
	s := openT(t, tempDB(t))
	if bs, err := s.Baselines(); err != nil || len(bs) != 0 {
		t.Fatalf("empty store: %v, %v", bs, err)
	}
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	s.now = func() time.Time { return t0 }
	cfg := `{"seq_len":64}`
	put := []Baseline{
		{Task: "sop", Name: "logreg-bow", Accuracy: 0.6, N: 1024, DataConfigHash: "h1", DataConfigJSON: cfg},
		{Task: "nsp", Name: "tfidf-cosine", Accuracy: 0.65, N: 1024, DataConfigHash: "h1", DataConfigJSON: cfg},
		{Task: "nsp", Name: "tfidf-cosine", Accuracy: 0.7, N: 512, DataConfigHash: "h0", DataConfigJSON: `{}`},
	}
	if err := s.PutBaselines(put); err != nil {
		t.Fatal(err)
	}
	// Recomputing replaces, never duplicates.
	t1 := t0.Add(time.Hour)
	s.now = func() time.Time { return t1 }
	put[1].Accuracy = 0.66
	if err := s.PutBaselines(put[1:2]); err != nil {
		t.Fatal(err)
	}
	bs, err := s.Baselines()
	if err != nil {
		t.Fatal(err)
	}
	want := []Baseline{put[2], put[1], put[0]}
	want[0].CreatedAt, want[1].CreatedAt, want[2].CreatedAt = t0, t1, t0
	if len(bs) != 3 {
		t.Fatalf("%d baselines: %+v", len(bs), bs)
	}
	for i := range want {
		if bs[i] != want[i] {
			t.Errorf("baseline %d: %+v, want %+v", i, bs[i], want[i])
		}
	}
	if se := bs[1].StdErr(); math.Abs(se-math.Sqrt(0.66*0.34/1024)) > 1e-15 {
		t.Errorf("std err %v", se)
	}
	if err := s.PutBaselines([]Baseline{{Task: "nsp", Name: "x", Accuracy: 0.5, N: 0, DataConfigHash: "h"}}); err == nil {
		t.Error("a baseline over 0 pairs was stored")
	}
	if n := count(t, s, `SELECT COUNT(*) FROM baselines`); n != 3 {
		t.Errorf("a failed put left %d rows", n)
	}
}

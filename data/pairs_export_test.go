package data

import (
	"math"
	"reflect"
	"slices"
	"testing"
)

func TestBatchSegments(t *testing.T) {
	d := prepareSynth(t, smallConfig(), ObjectiveNSP, 31, 30, 20)
	es, err := d.EvalSets(16)
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range [][]Batch{es.MLM, es.NSP, es.SOP} {
		for _, b := range set {
			for i := 0; i < b.Size; i++ {
				a, bb := b.Segments(i)
				wa, wb := segments(b, i, unmask(b, i))
				if !slices.Equal(a, wa) || !slices.Equal(bb, wb) || len(a) == 0 || len(bb) == 0 {
					t.Fatalf("example %d: Segments %v | %v, want %v | %v", i, a, bb, wa, wb)
				}
			}
		}
	}
}

func TestTrainPairs(t *testing.T) {
	d := prepareSynth(t, smallConfig(), ObjectiveNone, 32, 30, 20)
	for _, obj := range []Objective{ObjectiveNone, ObjectiveNSP, ObjectiveSOP} {
		ps := d.TrainPairs(obj, 5)
		if int64(len(ps)) != d.ExamplesPerEpoch() {
			t.Fatalf("%s: %d pairs for %d chunks", obj, len(ps), d.ExamplesPerEpoch())
		}
		if !reflect.DeepEqual(ps, d.TrainPairs(obj, 5)) {
			t.Fatalf("%s: pairs are not a function of the seed", obj)
		}
		ones := 0
		for _, p := range ps {
			ones += int(p.Label)
			if len(p.A) == 0 || len(p.B) == 0 || len(p.A)+len(p.B) > d.cfg.SeqLen-3 {
				t.Fatalf("%s: pair of %d + %d tokens", obj, len(p.A), len(p.B))
			}
		}
		f := float64(ones) / float64(len(ps))
		if obj == ObjectiveNone && ones != 0 || obj != ObjectiveNone && math.Abs(f-0.5) > 0.1 {
			t.Errorf("%s: label-1 fraction %.2f", obj, f)
		}
	}
	ps := d.TrainPairs(ObjectiveSOP, 5)
	ps[0].A[0] = -7
	if d.TrainPairs(ObjectiveSOP, 5)[0].A[0] == -7 {
		t.Error("TrainPairs returns views of the dataset")
	}
	n := 0
	for _, doc := range d.TrainDocuments() {
		n += len(doc)
	}
	if len(d.TrainDocuments()) != d.train.numDocs() || n != len(d.train.toks) {
		t.Errorf("TrainDocuments: %d documents, %d tokens", len(d.TrainDocuments()), n)
	}
}

package data

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reproml/albert/data/corpus"
)

// twoSourceCorpus writes a synthetic corpus whose documents alternate
// between two sources and, unless noSources, its sources file. It returns
// the prepared dataset and each held-out document's source, in held-out order
// (found from the text, independently of Prepare).
func twoSourceCorpus(t *testing.T, noSources bool) (*Dataset, []string) {
	t.Helper()
	docs := synthDocs(rand.New(rand.NewPCG(21, 99)), 40, 20)
	sources := make([]string, len(docs))
	bySentence := map[string]string{}
	for i := range docs {
		sources[i] = []string{"left", "right"}[i%2]
		bySentence[docs[i].Sentences[0]] = sources[i]
	}
	cfg, root := testCorpus(t, docs, smallConfig())
	cfg.EvalExamples = 400
	if !noSources {
		if err := corpus.WriteSources(cfg.Corpus, sources); err != nil {
			t.Fatal(err)
		}
	}
	d, err := Prepare(cfg, ObjectiveNSP, root)
	if err != nil {
		t.Fatal(err)
	}
	_, held := splitHeldOut(docs, cfg.HeldOutDocs)
	var heldSrc []string
	for _, h := range held {
		heldSrc = append(heldSrc, bySentence[h.Sentences[0]])
	}
	return d, heldSrc
}

// TestNegativeKinds: in the held-out NSP set every random-document B (label
// 1) says whether it came from the chunk's source, checked against the
// documents that hold A and B; every other example, and every MLM and SOP
// example, is NegNone; training batches carry no kinds.
func TestNegativeKinds(t *testing.T) {
	d, heldSrc := twoSourceCorpus(t, false)
	es, err := d.EvalSets(64)
	if err != nil {
		t.Fatal(err)
	}
	for name, set := range map[string][]Batch{"mlm": es.MLM, "sop": es.SOP} {
		for _, b := range set {
			if len(b.NegativeKinds) != b.Size {
				t.Fatalf("%s: %d kinds for %d examples", name, len(b.NegativeKinds), b.Size)
			}
			for i, k := range b.NegativeKinds {
				if k != NegNone {
					t.Fatalf("%s example %d: kind %d", name, i, k)
				}
			}
		}
	}
	count := map[int8]int{}
	checked := 0
	for _, b := range es.NSP {
		if len(b.NegativeKinds) != b.Size {
			t.Fatalf("nsp: %d kinds for %d examples", len(b.NegativeKinds), b.Size)
		}
		for i := 0; i < b.Size; i++ {
			k := b.NegativeKinds[i]
			count[k]++
			if b.SentenceLabels[i] == 0 {
				if k != NegNone {
					t.Fatalf("true-next example %d: kind %d", i, k)
				}
				continue
			}
			if k != NegSameSource && k != NegOtherSource {
				t.Fatalf("random-next example %d: kind %d", i, k)
			}
			a, bb := segments(b, i, unmask(b, i))
			da, db := docsContaining(&d.heldout, a), docsContaining(&d.heldout, bb)
			if len(da) != 1 || len(db) != 1 {
				continue // a segment found in several documents: ambiguous
			}
			want := NegOtherSource
			if heldSrc[da[0]] == heldSrc[db[0]] {
				want = NegSameSource
			}
			if k != want {
				t.Errorf("example %d: A in held-out doc %d (%s), B in %d (%s): kind %d, want %d",
					i, da[0], heldSrc[da[0]], db[0], heldSrc[db[0]], k, want)
			}
			checked++
		}
	}
	if count[NegSameSource] == 0 || count[NegOtherSource] == 0 || checked < (count[NegSameSource]+count[NegOtherSource])*3/4 {
		t.Errorf("kinds %v, %d negatives checked: the test corpus should give both kinds, most unambiguous", count, checked)
	}
	l := d.NewLoader(8, 1, 0)
	defer l.Close()
	if b, _ := l.Next(); b.NegativeKinds != nil {
		t.Error("a training batch carries NegativeKinds")
	}
}

func TestNegativeKindsWithoutSources(t *testing.T) {
	d, _ := twoSourceCorpus(t, true)
	es, err := d.EvalSets(64)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range es.NSP {
		for i := 0; i < b.Size; i++ {
			want := NegNone
			if b.SentenceLabels[i] == 1 {
				want = NegUnknownSource
				n++
			}
			if b.NegativeKinds[i] != want {
				t.Fatalf("example %d, label %d: kind %d, want %d", i, b.SentenceLabels[i], b.NegativeKinds[i], want)
			}
		}
	}
	if n == 0 {
		t.Fatal("no NSP negatives")
	}
}

func TestSourcesFileLineCount(t *testing.T) {
	docs := synthDocs(rand.New(rand.NewPCG(22, 99)), 20, 10)
	cfg, root := testCorpus(t, docs, smallConfig())
	names := make([]string, 19)
	for i := range names {
		names[i] = "one"
	}
	if err := corpus.WriteSources(cfg.Corpus, names); err != nil {
		t.Fatal(err)
	}
	_, err := Prepare(cfg, ObjectiveNSP, root)
	if err == nil || !strings.Contains(err.Error(), filepath.Base(corpus.SourcesPath(cfg.Corpus))) || !strings.Contains(err.Error(), "20 documents") {
		t.Fatalf("a sources file one line short: %v", err)
	}
}

package baseline

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/reproml/albert/data"
)

// synthetic is a two-topic corpus of token documents: every document draws
// its words from common words (60–99), its topic's words (topic 0: 100–199,
// topic 1: 300–399) and a few words of its own (1000+). Sentence i of a
// document starts with an ordinal word (700+i: "first", "then", "finally"),
// so sentence order leaves a trace that bag-of-words features can find.
type synthetic struct {
	docs  [][][]int32 // document → sentence → tokens
	topic []int
}

func newSynthetic(seed uint64, ndocs int) synthetic {
	r := rand.New(rand.NewPCG(seed, 7))
	var s synthetic
	for d := 0; d < ndocs; d++ {
		topic := d % 2
		var own []int32
		for k := 0; k < 5; k++ {
			own = append(own, int32(1000+r.IntN(5000)))
		}
		var doc [][]int32
		for n := 4 + r.IntN(12); n > 0; n-- {
			sent := []int32{int32(700 + len(doc))}
			for w := 6 + r.IntN(10); w > 0; w-- {
				switch x := r.IntN(10); {
				case x < 4:
					sent = append(sent, int32(60+r.IntN(40)))
				case x < 8:
					sent = append(sent, int32(100+200*topic+r.IntN(100)))
				default:
					sent = append(sent, own[r.IntN(len(own))])
				}
			}
			doc = append(doc, sent)
		}
		s.docs = append(s.docs, doc)
		s.topic = append(s.topic, topic)
	}
	return s
}

func flat(ss [][]int32) []int32 {
	var out []int32
	for _, s := range ss {
		out = append(out, s...)
	}
	return out
}

// pairs builds n pairs of the objective from documents [lo, hi), as the
// official builder does at sentence granularity: A = a document's sentences
// before a random split, B = those after (label 0); NSP label 1 replaces B
// with sentences of another document, SOP label 1 swaps A and B.
func (s synthetic) pairs(obj data.Objective, lo, hi, n int, r *rand.Rand) []Pair {
	var out []Pair
	for len(out) < n {
		d := lo + r.IntN(hi-lo)
		doc := s.docs[d]
		start := r.IntN(len(doc) - 2)
		end := start + 2 + r.IntN(min(4, len(doc)-start-1))
		split := start + 1 + r.IntN(end-start-1)
		p := Pair{Pair: data.Pair{A: flat(doc[start:split]), B: flat(doc[split:end])}}
		if r.IntN(2) == 0 {
			p.Label = 1
			switch obj {
			case data.ObjectiveNSP:
				o := lo + r.IntN(hi-lo-1)
				if o >= d {
					o++
				}
				k := r.IntN(len(s.docs[o]))
				p.B = flat(s.docs[o][k:min(k+2, len(s.docs[o]))])
				p.Kind = data.NegOtherSource
				if s.topic[o] == s.topic[d] {
					p.Kind = data.NegSameSource
				}
			case data.ObjectiveSOP:
				p.A, p.B = p.B, p.A
			}
		}
		out = append(out, p)
	}
	return out
}

// inputs: documents 0–199 train, 200–259 held out; 4000 training and 2000
// held-out pairs a task.
func syntheticInputs(seed uint64) Inputs {
	s := newSynthetic(seed, 260)
	r := rand.New(rand.NewPCG(seed, 8))
	in := Inputs{Train: map[data.Objective][]data.Pair{}, Heldout: map[data.Objective][]Pair{}}
	for d := 0; d < 200; d++ {
		in.TrainDocs = append(in.TrainDocs, flat(s.docs[d]))
	}
	for _, obj := range []data.Objective{data.ObjectiveNSP, data.ObjectiveSOP} {
		in.Train[obj] = pairsOf(s.pairs(obj, 0, 200, 4000, r))
		in.Heldout[obj] = s.pairs(obj, 200, 260, 2000, r)
	}
	return in
}

func byName(t *testing.T, rs []Result) map[string]Result {
	t.Helper()
	m := map[string]Result{}
	for _, r := range rs {
		m[string(r.Task)+" "+r.Name] = r
	}
	return m
}

func TestLearnableTasks(t *testing.T) {
	in := syntheticInputs(1)
	rs, err := Evaluate(in, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	m := byName(t, rs)
	for _, r := range rs {
		t.Logf("%s %-17s %.3f (train %.3f) %v", r.Task, r.Name, r.Accuracy, r.TrainAccuracy, r.Negatives)
	}
	if len(m) != 6 {
		t.Fatalf("results %v", m)
	}
	for name, min := range map[string]float64{
		"nsp tfidf-cosine": 0.70, "nsp logreg-bow+cosine": 0.70, "sop logreg-bow": 0.60,
	} {
		r, ok := m[name]
		if !ok || r.N != 2000 || r.Accuracy < min {
			t.Errorf("%s: %+v, want accuracy ≥ %.2f on 2000 pairs", name, r, min)
		}
	}
	for _, name := range []string{"nsp majority", "sop majority"} {
		if r := m[name]; math.Abs(r.Accuracy-0.5) > 0.04 {
			t.Errorf("%s: %.3f, want about 0.5", name, r.Accuracy)
		}
	}
	cos := m["nsp tfidf-cosine"]
	if se := math.Sqrt(cos.Accuracy * (1 - cos.Accuracy) / 2000); math.Abs(cos.StdErr-se) > 1e-12 {
		t.Errorf("std err %v, want %v", cos.StdErr, se)
	}
	same, other := cos.Negatives["same-source"], cos.Negatives["other-source"]
	if same.N == 0 || other.N == 0 || other.Accuracy <= same.Accuracy {
		t.Errorf("negatives by source %+v: another topic's segment should be easier to spot", cos.Negatives)
	}
	if m["sop logreg-bow"].Negatives != nil {
		t.Error("SOP results split negatives by source")
	}
	again, _ := Evaluate(in, DefaultOptions())
	if a, b := mustJSON(t, rs), mustJSON(t, again); a != b {
		t.Error("Evaluate is not deterministic")
	}
}

// With labels shuffled (on training and held-out pairs alike) nothing can be
// learned: every baseline is near chance.
func TestShuffledLabelsAreChance(t *testing.T) {
	in := syntheticInputs(2)
	r := rand.New(rand.NewPCG(3, 3))
	for _, ps := range in.Train {
		for i := range ps {
			ps[i].Label = int64(r.IntN(2))
		}
	}
	for _, ps := range in.Heldout {
		for i := range ps {
			ps[i].Label = int64(r.IntN(2))
		}
	}
	rs, err := Evaluate(in, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range rs {
		if math.Abs(x.Accuracy-0.5) > 0.05 { // 4.5 standard errors at n = 2000
			t.Errorf("%s %s: %.3f on shuffled labels", x.Task, x.Name, x.Accuracy)
		}
	}
}

func TestBestThreshold(t *testing.T) {
	ps := []data.Pair{{Label: 1}, {Label: 1}, {Label: 0}, {Label: 1}, {Label: 0}, {Label: 0}}
	scores := []float64{0.1, 0.2, 0.3, 0.3, 0.5, 0.9}
	// Cuts: below 0.1 → 3 right; after 0.1 → 4; after 0.2 → 5; after the
	// 0.3 tie → 5 (not better); after 0.5 → 4.
	if th := bestThreshold(scores, ps); th != 0.25 {
		t.Errorf("threshold %v, want 0.25", th)
	}
}

func TestIDFAndCosine(t *testing.T) {
	f := newIDF([][]int32{{1, 2, 2}, {1, 3}, {1}})
	if f.weight(1) != 1 || !(f.weight(2) > f.weight(1)) || f.weight(99) != f.max {
		t.Errorf("idf 1: %v, 2: %v, unseen: %v", f.weight(1), f.weight(2), f.weight(99))
	}
	if c := f.cosine([]int32{2, 3}, []int32{3, 2}); math.Abs(c-1) > 1e-12 {
		t.Errorf("same bag: cosine %v", c)
	}
	if c := f.cosine([]int32{2}, []int32{3}); c != 0 {
		t.Errorf("disjoint bags: cosine %v", c)
	}
	if c := f.cosine(nil, []int32{3}); c != 0 {
		t.Errorf("empty segment: cosine %v", c)
	}
}

func TestConfigKeyAndText(t *testing.T) {
	cfg := data.DefaultConfig()
	js, hash, err := ConfigKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(js, `{"corpus":"default","dupe_factor":40,"eval_examples":1024,"heldout_docs":24,"mask_prob":0.15,`) || len(hash) != 64 {
		t.Errorf("canonical JSON %s, hash %s", js, hash)
	}
	cfg.SeqLen = 64
	if _, h2, _ := ConfigKey(cfg); h2 == hash {
		t.Error("hash ignores seq_len")
	}
	rs, err := Evaluate(syntheticInputs(4), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	rep := Report{DataConfigJSON: js, DataConfigHash: hash, TrainPairs: map[data.Objective]int{data.ObjectiveNSP: 4000, data.ObjectiveSOP: 4000}, Results: rs}
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for _, line := range strings.Split(b.String(), "\n") {
		if f := strings.Fields(line); len(f) >= 5 {
			rows[f[0]+" "+f[1]+" "+f[4]] = true
		}
	}
	for _, want := range []string{"NSP tfidf-cosine 2000", "SOP logreg-bow 2000"} {
		if !rows[want] {
			t.Errorf("text lacks the row %q:\n%s", want, b.String())
		}
	}
	for _, want := range []string{"same-source", hash[:12]} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
	mustJSON(t, rep)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

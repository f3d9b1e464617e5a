// Package baseline scores simple non-neural classifiers on the held-out NSP
// and SOP pairs the trainer scores (data.Dataset.EvalSets), to show whether
// the sentence tasks are learnable on a corpus at all (`exp check
// sentence-baseline`):
//
//   - majority: the training pairs' more frequent label;
//   - tfidf-cosine (NSP): the TF-IDF cosine of segments A and B, IDF from the
//     training documents; "random" below a threshold chosen on training
//     pairs;
//   - logreg-bow (NSP, SOP): logistic regression by SGD on hashed,
//     segment-tagged bag-of-words features (A's tokens, B's tokens, the
//     first and last token of each segment), trained on training pairs of
//     the same objective;
//   - logreg-bow+cosine (NSP): the same with the TF-IDF cosine as one more
//     feature.
//
// Tokens are the dataset's SentencePiece ids. Held-out pairs are read
// unmasked from the eval batches (data.Batch.Segments); training pairs come
// from data.Dataset.TrainPairs. Everything is deterministic.
package baseline

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/reproml/albert/data"
)

// Options sets the classifiers' hyperparameters.
type Options struct {
	Seed     int64   // training pairs and SGD order
	HashBits int     // logistic regression: 2^HashBits hashed weights
	Epochs   int     // SGD passes over the training pairs
	LR       float64 // SGD step
	L2       float64 // weight decay per step on the touched weights
}

// DefaultOptions are the settings `exp check sentence-baseline` uses.
func DefaultOptions() Options {
	return Options{Seed: 1, HashBits: 20, Epochs: 5, LR: 0.5, L2: 1e-6}
}

// Pair is a held-out pair with its NSP negative kind (data.NegativeKinds).
type Pair struct {
	data.Pair
	Kind int8
}

// Inputs is everything a baseline sees: the training documents (for IDF),
// training pairs and held-out pairs of each task.
type Inputs struct {
	TrainDocs [][]int32
	Train     map[data.Objective][]data.Pair
	Heldout   map[data.Objective][]Pair
}

// Score is an accuracy over N pairs.
type Score struct {
	Accuracy float64 `json:"accuracy"`
	StdErr   float64 `json:"std_err"` // binomial: sqrt(acc(1-acc)/N)
	N        int     `json:"n"`
}

func newScore(correct, n int) Score {
	if n == 0 {
		return Score{Accuracy: math.NaN(), StdErr: math.NaN()}
	}
	p := float64(correct) / float64(n)
	return Score{Accuracy: p, StdErr: math.Sqrt(p * (1 - p) / float64(n)), N: n}
}

// Result is one baseline on one task's held-out pairs.
type Result struct {
	Task data.Objective `json:"task"`
	Name string         `json:"baseline"`
	Score
	// Negatives scores NSP negatives alone, by the source of their random B
	// ("same-source", "other-source", "unknown-source"); NSP only.
	Negatives map[string]Score `json:"negatives,omitempty"`
	// Threshold is tfidf-cosine's cut: "random" below it.
	Threshold float64 `json:"threshold,omitempty"`
	// TrainAccuracy is the accuracy on the training pairs it was fit on.
	TrainAccuracy float64 `json:"train_accuracy"`
}

// Baseline names.
const (
	Majority        = "majority"
	TFIDFCosine     = "tfidf-cosine"
	LogRegBoW       = "logreg-bow"
	LogRegBoWCosine = "logreg-bow+cosine"
)

// kindNames names data.NegativeKinds values in Result.Negatives.
var kindNames = map[int8]string{
	data.NegSameSource:    "same-source",
	data.NegOtherSource:   "other-source",
	data.NegUnknownSource: "unknown-source",
}

// FromDataset gathers the inputs of d: its training documents, one training
// pair per chunk for NSP and SOP (seed), and the held-out NSP and SOP sets of
// d.EvalSets.
func FromDataset(d *data.Dataset, seed int64) (Inputs, error) {
	es, err := d.EvalSets(256)
	if err != nil {
		return Inputs{}, err
	}
	in := Inputs{TrainDocs: d.TrainDocuments(), Train: map[data.Objective][]data.Pair{}, Heldout: map[data.Objective][]Pair{}}
	for obj, set := range map[data.Objective][]data.Batch{data.ObjectiveNSP: es.NSP, data.ObjectiveSOP: es.SOP} {
		in.Train[obj] = d.TrainPairs(obj, seed)
		var ps []Pair
		for _, b := range set {
			for i := 0; i < b.Size; i++ {
				a, bb := b.Segments(i)
				p := Pair{Pair: data.Pair{A: a, B: bb, Label: b.SentenceLabels[i]}}
				if b.NegativeKinds != nil {
					p.Kind = b.NegativeKinds[i]
				}
				ps = append(ps, p)
			}
		}
		in.Heldout[obj] = ps
	}
	return in, nil
}

// Evaluate fits every baseline on the training pairs and scores it on the
// held-out pairs, NSP first, then SOP (tasks without pairs are skipped).
func Evaluate(in Inputs, opt Options) ([]Result, error) {
	if opt.HashBits < 1 || opt.HashBits > 28 || opt.Epochs < 1 || opt.LR <= 0 || opt.L2 < 0 {
		return nil, fmt.Errorf("baseline: bad options %+v", opt)
	}
	idf := newIDF(in.TrainDocs)
	var out []Result
	for _, task := range []data.Objective{data.ObjectiveNSP, data.ObjectiveSOP} {
		train, held := in.Train[task], in.Heldout[task]
		if len(held) == 0 {
			continue
		}
		if len(train) == 0 {
			return nil, fmt.Errorf("baseline: %s: held-out pairs but no training pairs", task)
		}
		score := func(name string, predictTrain func(i int) int64, predict func(i int) int64) Result {
			r := Result{Task: task, Name: name}
			ok := 0
			for i, p := range train {
				if predictTrain(i) == p.Label {
					ok++
				}
			}
			r.TrainAccuracy = float64(ok) / float64(len(train))
			ok = 0
			byKind := map[int8][2]int{}
			for i, p := range held {
				hit := predict(i) == p.Label
				if hit {
					ok++
				}
				if task == data.ObjectiveNSP && p.Label == 1 {
					c := byKind[p.Kind]
					c[1]++
					if hit {
						c[0]++
					}
					byKind[p.Kind] = c
				}
			}
			r.Score = newScore(ok, len(held))
			for k, c := range byKind {
				if r.Negatives == nil {
					r.Negatives = map[string]Score{}
				}
				name, known := kindNames[k]
				if !known {
					name = fmt.Sprintf("kind-%d", k)
				}
				r.Negatives[name] = newScore(c[0], c[1])
			}
			return r
		}

		ones := 0
		for _, p := range train {
			ones += int(p.Label)
		}
		major := int64(0)
		if 2*ones > len(train) {
			major = 1
		}
		constant := func(int) int64 { return major }
		out = append(out, score(Majority, constant, constant))

		var trainCos, heldCos []float64
		if task == data.ObjectiveNSP {
			trainCos, heldCos = cosines(idf, train), cosines(idf, pairsOf(held))
			th := bestThreshold(trainCos, train)
			below := func(cs []float64) func(int) int64 {
				return func(i int) int64 {
					if cs[i] < th {
						return 1
					}
					return 0
				}
			}
			r := score(TFIDFCosine, below(trainCos), below(heldCos))
			r.Threshold = th
			out = append(out, r)
		}

		m := newLogReg(opt)
		m.fit(train, nil, opt)
		out = append(out, score(LogRegBoW, m.predictor(train, nil), m.predictor(pairsOf(held), nil)))
		if task == data.ObjectiveNSP {
			zTrain, zHeld := standardize(trainCos, trainCos), standardize(heldCos, trainCos)
			m := newLogReg(opt)
			m.fit(train, zTrain, opt)
			out = append(out, score(LogRegBoWCosine, m.predictor(train, zTrain), m.predictor(pairsOf(held), zHeld)))
		}
	}
	return out, nil
}

// standardize returns (x - mean) / std of xs, with the mean and standard
// deviation of ref, so that a dense feature learns at the pace of the
// unit-norm hashed ones.
func standardize(xs, ref []float64) []float64 {
	var mean, sq float64
	for _, x := range ref {
		mean += x
	}
	mean /= float64(len(ref))
	for _, x := range ref {
		sq += (x - mean) * (x - mean)
	}
	std := math.Sqrt(sq / float64(len(ref)))
	if std == 0 {
		std = 1
	}
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = (x - mean) / std
	}
	return out
}

func pairsOf(ps []Pair) []data.Pair {
	out := make([]data.Pair, len(ps))
	for i, p := range ps {
		out[i] = p.Pair
	}
	return out
}

// idf is smoothed inverse document frequency: ln((1+N)/(1+df)) + 1.
type idf struct {
	w   map[int32]float64
	max float64 // of a token seen in no document
}

func newIDF(docs [][]int32) idf {
	df := map[int32]int{}
	seen := map[int32]bool{}
	for _, d := range docs {
		clear(seen)
		for _, t := range d {
			if !seen[t] {
				seen[t] = true
				df[t]++
			}
		}
	}
	n := float64(len(docs))
	f := idf{w: make(map[int32]float64, len(df)), max: math.Log(1+n) + 1}
	for t, c := range df {
		f.w[t] = math.Log((1+n)/(1+float64(c))) + 1
	}
	return f
}

func (f idf) weight(t int32) float64 {
	if w, ok := f.w[t]; ok {
		return w
	}
	return f.max
}

// cosine is the cosine of the TF-IDF vectors of a and b. Sums run in token
// order, so the result does not depend on map iteration.
func (f idf) cosine(a, b []int32) float64 {
	ca, cb := counts(a), counts(b)
	var dot, na, nb float64
	i, j := 0, 0
	for i < len(ca) || j < len(cb) {
		switch {
		case j == len(cb) || i < len(ca) && ca[i].t < cb[j].t:
			v := float64(ca[i].n) * f.weight(ca[i].t)
			na += v * v
			i++
		case i == len(ca) || cb[j].t < ca[i].t:
			v := float64(cb[j].n) * f.weight(cb[j].t)
			nb += v * v
			j++
		default:
			w := f.weight(ca[i].t)
			va, vb := float64(ca[i].n)*w, float64(cb[j].n)*w
			na, nb, dot = na+va*va, nb+vb*vb, dot+va*vb
			i, j = i+1, j+1
		}
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}

type tokenCount struct {
	t int32
	n int
}

// counts returns the distinct tokens of ts in increasing order, with counts.
func counts(ts []int32) []tokenCount {
	s := slices.Clone(ts)
	slices.Sort(s)
	var out []tokenCount
	for i, t := range s {
		if i > 0 && t == s[i-1] {
			out[len(out)-1].n++
		} else {
			out = append(out, tokenCount{t, 1})
		}
	}
	return out
}

func cosines(f idf, ps []data.Pair) []float64 {
	out := make([]float64, len(ps))
	for i, p := range ps {
		out[i] = f.cosine(p.A, p.B)
	}
	return out
}

// bestThreshold returns the cut θ (predict 1 when score < θ) with the best
// accuracy on the training pairs: midway between two adjacent distinct
// scores, the smallest such cut on ties.
func bestThreshold(scores []float64, ps []data.Pair) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	// θ below every score: everything predicted 0.
	correct := 0
	for _, p := range ps {
		if p.Label == 0 {
			correct++
		}
	}
	best, th := correct, math.Inf(-1)
	for k := 0; k < len(idx); {
		s := scores[idx[k]]
		for k < len(idx) && scores[idx[k]] == s {
			if ps[idx[k]].Label == 1 {
				correct++
			} else {
				correct--
			}
			k++
		}
		if correct > best {
			best = correct
			if k < len(idx) {
				th = (s + scores[idx[k]]) / 2
			} else {
				th = math.Inf(1)
			}
		}
	}
	return th
}

// logReg is logistic regression on hashed features (plus, optionally, one
// dense feature: the TF-IDF cosine).
type logReg struct {
	w     []float64
	bias  float64
	dense float64 // weight of the dense feature
	shift uint    // 64 - hash bits
}

func newLogReg(opt Options) *logReg {
	return &logReg{w: make([]float64, 1<<opt.HashBits), shift: uint(64 - opt.HashBits)}
}

// Feature tags: which segment, and what of it.
const (
	tagA uint64 = 1 + iota
	tagB
	tagFirstA
	tagLastA
	tagFirstB
	tagLastB
)

// features returns the distinct hashed feature indices of p, each of value
// 1/sqrt(count) so that every example has unit norm.
func (m *logReg) features(p data.Pair, buf []uint64) ([]uint64, float64) {
	buf = buf[:0]
	add := func(tag uint64, t int32) { // Fibonacci hashing: the product's top bits
		buf = append(buf, (tag<<32|uint64(uint32(t)))*0x9e3779b97f4a7c15>>m.shift)
	}
	for _, t := range p.A {
		add(tagA, t)
	}
	for _, t := range p.B {
		add(tagB, t)
	}
	if len(p.A) > 0 {
		add(tagFirstA, p.A[0])
		add(tagLastA, p.A[len(p.A)-1])
	}
	if len(p.B) > 0 {
		add(tagFirstB, p.B[0])
		add(tagLastB, p.B[len(p.B)-1])
	}
	sort.Slice(buf, func(i, j int) bool { return buf[i] < buf[j] })
	u := buf[:0]
	for i, f := range buf {
		if i == 0 || f != buf[i-1] {
			u = append(u, f)
		}
	}
	if len(u) == 0 {
		return u, 0
	}
	return u, 1 / math.Sqrt(float64(len(u)))
}

func (m *logReg) logit(fs []uint64, v, dense float64) float64 {
	z := m.bias + m.dense*dense
	for _, f := range fs {
		z += m.w[f] * v
	}
	return z
}

// fit runs SGD on the log loss: opt.Epochs passes in a seeded order. dense
// is the per-pair dense feature (nil: none).
func (m *logReg) fit(ps []data.Pair, dense []float64, opt Options) {
	r := rand.New(rand.NewPCG(uint64(opt.Seed), 0xba5e))
	feats := make([][]uint64, len(ps))
	vals := make([]float64, len(ps))
	for i, p := range ps {
		fs, v := m.features(p, nil)
		feats[i], vals[i] = fs, v
	}
	order := make([]int, len(ps))
	for i := range order {
		order[i] = i
	}
	for e := 0; e < opt.Epochs; e++ {
		r.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		lr := opt.LR / (1 + float64(e))
		for _, i := range order {
			d := 0.0
			if dense != nil {
				d = dense[i]
			}
			p := 1 / (1 + math.Exp(-m.logit(feats[i], vals[i], d)))
			g := p - float64(ps[i].Label)
			m.bias -= lr * g
			m.dense -= lr * g * d
			for _, f := range feats[i] {
				m.w[f] -= lr * (g*vals[i] + opt.L2*m.w[f])
			}
		}
	}
}

// predictor returns the model's label for pair i of ps.
func (m *logReg) predictor(ps []data.Pair, dense []float64) func(int) int64 {
	var buf []uint64
	return func(i int) int64 {
		fs, v := m.features(ps[i], buf)
		buf = fs
		d := 0.0
		if dense != nil {
			d = dense[i]
		}
		if m.logit(fs, v, d) > 0 {
			return 1
		}
		return 0
	}
}

package data

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/reproml/albert/data/corpus"
)

func TestFakeModelEncodesWholeWords(t *testing.T) {
	d := prepareSynth(t, smallConfig(), ObjectiveSOP, 1, 20, 10)
	ids := d.tok.Encode("kalori men, tus.")
	var pieces []string
	for _, id := range ids {
		pieces = append(pieces, d.tok.Pieces[id].Text)
	}
	if got := strings.Join(pieces, " "); got != "▁ka lo ri ▁men , ▁tus ." {
		t.Fatalf("pieces %q", got)
	}
	var starts []bool
	for _, id := range ids {
		starts = append(starts, d.wordStart[id])
	}
	if !reflect.DeepEqual(starts, []bool{true, false, false, true, true, true, true}) {
		t.Fatalf("word starts %v", starts)
	}
}

func TestNGramHistogram(t *testing.T) {
	cfg := smallConfig()
	cfg.SeqLen = 256
	cfg.MaxPredictions = 256
	d := prepareSynth(t, cfg, ObjectiveSOP, 2, 60, 40)
	st := d.Stats()
	want := []float64{6.0 / 11, 3.0 / 11, 2.0 / 11}
	for n := range want {
		if math.Abs(st.NGramSampled[n]-want[n]) > 0.02 {
			t.Errorf("sampled p(%d) = %.3f, want %.3f ± 0.02 (%v)", n+1, st.NGramSampled[n], want[n], st.NGramSampled)
		}
		if math.Abs(st.NGramHistogram[n]-want[n]) > 0.1 {
			t.Errorf("masked p(%d) = %.3f, want %.3f ± 0.1 (%v)", n+1, st.NGramHistogram[n], want[n], st.NGramHistogram)
		}
	}
	if !(st.NGramHistogram[0] > st.NGramHistogram[1] && st.NGramHistogram[1] > st.NGramHistogram[2]) {
		t.Errorf("masked n-gram histogram not decreasing: %v", st.NGramHistogram)
	}
}

func TestMaskedFractionAndWholeWords(t *testing.T) {
	cfg := smallConfig()
	cfg.SeqLen = 128
	cfg.MaxPredictions = 128
	d := prepareSynth(t, cfg, ObjectiveSOP, 3, 40, 30)
	l := d.NewLoader(32, 7, 0)
	defer l.Close()
	var real, maskedN, asMask, kept, other int
	for step := 0; step < 20; step++ {
		b, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < b.Size; i++ {
			row := unmask(b, i)
			real += len(row)
			isMasked := map[int]bool{}
			for j := 0; j < b.MaxPred; j++ {
				if b.MaskedWeights[i*b.MaxPred+j] == 0 {
					if b.MaskedPositions[i*b.MaxPred+j] != 0 || b.MaskedIDs[i*b.MaxPred+j] != 0 {
						t.Fatal("padding prediction slot is not zero")
					}
					continue
				}
				p := int(b.MaskedPositions[i*b.MaxPred+j])
				isMasked[p] = true
				maskedN++
				if row[p] == int64(d.cls) || row[p] == int64(d.sep) {
					t.Fatalf("special token masked at %d", p)
				}
				switch in := b.InputIDs[i*b.SeqLen+p]; {
				case in == int64(d.mask):
					asMask++
				case in == row[p]:
					kept++
				default:
					other++
				}
			}
			// Whole words: a masked continuation piece has its word start
			// masked too, and a masked piece's continuation is masked.
			for p := range isMasked {
				if !d.wordStart[row[p]] && !isMasked[p-1] && row[p-1] != int64(d.cls) && row[p-1] != int64(d.sep) {
					t.Fatalf("masked continuation piece at %d without its word start", p)
				}
				if p+1 < len(row) && !d.wordStart[row[p+1]] && row[p+1] != int64(d.sep) && !isMasked[p+1] {
					t.Fatalf("word cut at %d: continuation %d not masked", p, p+1)
				}
			}
		}
	}
	if f := float64(maskedN) / float64(real); math.Abs(f-0.15) > 0.01 {
		t.Errorf("masked fraction %.4f, want 0.15 ± 0.01", f)
	}
	fm, fk, fo := float64(asMask)/float64(maskedN), float64(kept)/float64(maskedN), float64(other)/float64(maskedN)
	if math.Abs(fm-0.8) > 0.03 || math.Abs(fk-0.1) > 0.03 || math.Abs(fo-0.1) > 0.03 {
		t.Errorf("[MASK]/kept/random = %.3f/%.3f/%.3f, want 0.8/0.1/0.1", fm, fk, fo)
	}
}

func TestMaskingCap(t *testing.T) {
	cfg := smallConfig()
	cfg.SeqLen = 128
	cfg.MaxPredictions = 5
	d := prepareSynth(t, cfg, ObjectiveNone, 4, 30, 30)
	l := d.NewLoader(64, 1, 0)
	defer l.Close()
	b, _ := l.Next()
	total, capped := 0, 0
	for i := 0; i < b.Size; i++ {
		n := 0
		for j := 0; j < b.MaxPred; j++ {
			n += int(b.MaskedWeights[i*b.MaxPred+j])
		}
		want := min(5, max(1, int(math.RoundToEven(float64(len(unmask(b, i)))*0.15))))
		if n > want {
			t.Fatalf("row %d masks %d > cap %d", i, n, want)
		}
		total += n
		capped += want
	}
	if float64(total) < 0.95*float64(capped) {
		t.Errorf("masked %d of a budget of %d", total, capped)
	}
}

func TestSOPNegativesAreExactSwaps(t *testing.T) {
	d := prepareSynth(t, smallConfig(), ObjectiveSOP, 5, 40, 20)
	o := d.trainOptions()
	ones := 0
	for c := range d.chunks {
		o.forceSwap = 0
		pos := buildPair(&d.train, d.chunks[c], o, newRand(3, streamExample, 0, uint64(c)))
		o.forceSwap = 1
		neg := buildPair(&d.train, d.chunks[c], o, newRand(3, streamExample, 0, uint64(c)))
		if pos.label != 0 || neg.label != 1 || !slices.Equal(pos.a, neg.b) || !slices.Equal(pos.b, neg.a) {
			t.Fatalf("chunk %d: negative is not the swap of the positive", c)
		}
		o.forceSwap = -1
		drawn := buildPair(&d.train, d.chunks[c], o, newRand(3, streamExample, 0, uint64(c)))
		want := pos
		if drawn.label == 1 {
			want = neg
			ones++
		}
		if !slices.Equal(drawn.a, want.a) || !slices.Equal(drawn.b, want.b) {
			t.Fatalf("chunk %d: drawn pair differs from the forced one", c)
		}
		// An untruncated positive is consecutive text of its document.
		if len(pos.a)+len(pos.b) < o.maxTokens {
			doc := d.train.tokens(d.train.docs[d.chunks[c].doc], d.train.docs[d.chunks[c].doc+1])
			if !contains(doc, append(slices.Clone(pos.a), pos.b...)) {
				t.Fatalf("chunk %d: A+B is not consecutive text of document %d", c, d.chunks[c].doc)
			}
		}
	}
	if f := float64(ones) / float64(len(d.chunks)); math.Abs(f-0.5) > 0.06 {
		t.Errorf("SOP label-1 fraction %.3f over %d chunks", f, len(d.chunks))
	}
	if st := d.Stats(); !st.SOPExactSwaps || st.SOPSwapsChecked == 0 {
		t.Errorf("stats: sop_exact_swaps %v over %d", st.SOPExactSwaps, st.SOPSwapsChecked)
	}
}

func TestNSPNegativesComeFromAnotherDocument(t *testing.T) {
	d := prepareSynth(t, smallConfig(), ObjectiveNSP, 6, 40, 20)
	o := d.trainOptions()
	ones := 0
	for c, ch := range d.chunks {
		p := buildPair(&d.train, ch, o, newRand(9, streamExample, 0, uint64(c)))
		docsA := docsContaining(&d.train, p.a)
		docsB := docsContaining(&d.train, p.b)
		if !slices.Contains(docsA, int(ch.doc)) {
			t.Fatalf("chunk %d: A not from its document", c)
		}
		if p.label == 1 {
			ones++
			if slices.Contains(docsB, int(ch.doc)) && len(p.b) > 3 {
				t.Fatalf("chunk %d: random B found in the chunk's own document %d", c, ch.doc)
			}
			if len(docsB) == 0 {
				t.Fatalf("chunk %d: random B is not text of any training document", c)
			}
		} else if !slices.Contains(docsB, int(ch.doc)) {
			t.Fatalf("chunk %d: true-next B not from the same document", c)
		}
	}
	if f := float64(ones) / float64(len(d.chunks)); math.Abs(f-0.5) > 0.06 {
		t.Errorf("NSP label-1 fraction %.3f", f)
	}
}

func TestShortSequences(t *testing.T) {
	cfg := smallConfig()
	cfg.SeqLen = 48
	cfg.MaxPredictions = 20
	d := prepareSynth(t, cfg, ObjectiveSOP, 7, 200, 60)
	short := 0
	for _, c := range d.chunks {
		if c.short {
			short++
			if c.target < 2 || int(c.target) > cfg.SeqLen-3 {
				t.Fatalf("short target %d outside [2, %d]", c.target, cfg.SeqLen-3)
			}
		} else if int(c.target) != cfg.SeqLen-3 {
			t.Fatalf("full target %d", c.target)
		}
	}
	if len(d.chunks) < 1500 {
		t.Fatalf("only %d chunks", len(d.chunks))
	}
	if f := float64(short) / float64(len(d.chunks)); math.Abs(f-0.1) > 0.02 {
		t.Errorf("short fraction %.3f, want 0.1 ± 0.02", f)
	}
	if f := d.Stats().ShortTargetFraction; math.Abs(f-0.1) > 0.03 {
		t.Errorf("stats short fraction %.3f", f)
	}
}

func TestHeldOutNeverInTraining(t *testing.T) {
	cfg := smallConfig()
	docs := synthDocs(rand.New(rand.NewPCG(8, 8)), 40, 15)
	cfg, root := testCorpus(t, docs, cfg)
	d, err := Prepare(cfg, ObjectiveNSP, root)
	if err != nil {
		t.Fatal(err)
	}
	if d.heldout.numDocs() != cfg.HeldOutDocs || d.train.numDocs() != 40-cfg.HeldOutDocs {
		t.Fatalf("split %d/%d", d.train.numDocs(), d.heldout.numDocs())
	}
	// Held-out 5-grams never occur in training batches; eval batches only
	// hold held-out text.
	grams := func(sp *split) map[[5]int32]bool {
		m := map[[5]int32]bool{}
		for i := 0; i+5 <= len(sp.toks); i++ {
			m[[5]int32(sp.toks[i:i+5])] = true
		}
		return m
	}
	held, train := grams(&d.heldout), grams(&d.train)
	check := func(b Batch, forbidden map[[5]int32]bool, what string) {
		for i := 0; i < b.Size; i++ {
			a, bb := segments(b, i, unmask(b, i))
			for _, seg := range [][]int32{a, bb} {
				for j := 0; j+5 <= len(seg); j++ {
					if forbidden[[5]int32(seg[j:j+5])] {
						t.Fatalf("%s row %d holds text of the other split", what, i)
					}
				}
			}
		}
	}
	l := d.NewLoader(50, 1, 0)
	defer l.Close()
	for k := int64(0); k < d.ExamplesPerEpoch()/50+1; k++ {
		b, _ := l.Next()
		check(b, held, "training")
	}
	es, err := d.EvalSets(64)
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range [][]Batch{es.MLM, es.NSP, es.SOP} {
		for _, b := range set {
			check(b, train, "eval")
		}
	}
	// The choice is by content: reordering documents keeps it.
	rev := slices.Clone(docs)
	slices.Reverse(rev)
	_, h1 := splitHeldOut(docs, 6)
	_, h2 := splitHeldOut(rev, 6)
	key := func(ds []corpus.Document) []string {
		var k []string
		for _, x := range ds {
			k = append(k, x.Sentences[0])
		}
		slices.Sort(k)
		return k
	}
	if !slices.Equal(key(h1), key(h2)) {
		t.Error("held-out choice depends on document order")
	}
}

func collect(t *testing.T, d *Dataset, bs int, seed, cursor int64, n int) []Batch {
	t.Helper()
	l := d.NewLoader(bs, seed, cursor)
	defer l.Close()
	var out []Batch
	for i := 0; i < n; i++ {
		b, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	if got, want := l.Cursor(), cursor+int64(bs*n); got != want {
		t.Fatalf("cursor %d, want %d", got, want)
	}
	return out
}

func TestSameSeedSameBatches(t *testing.T) {
	d := prepareSynth(t, smallConfig(), ObjectiveSOP, 9, 30, 20)
	a := collect(t, d, 16, 42, 0, 10)
	b := collect(t, d, 16, 42, 0, 10)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed gave different batches")
	}
	c := collect(t, d, 16, 43, 0, 10)
	if reflect.DeepEqual(a, c) {
		t.Fatal("different seeds gave the same batches")
	}
	// A second Prepare (cache hit) gives the same batches.
	d2, err := Prepare(d.cfg, ObjectiveSOP, filepath.Dir(filepath.Dir(d.info.cachePath)))
	if err != nil {
		t.Fatal(err)
	}
	if !d2.info.cached {
		t.Fatal("second Prepare did not hit the cache")
	}
	if !reflect.DeepEqual(a, collect(t, d2, 16, 42, 0, 10)) {
		t.Fatal("cached dataset gave different batches")
	}
}

func TestResumeAtCursor(t *testing.T) {
	d := prepareSynth(t, smallConfig(), ObjectiveNSP, 10, 20, 10)
	n := int(d.ExamplesPerEpoch())
	bs := 7
	steps := 3*n/bs + 2 // crosses two epoch boundaries
	full := collect(t, d, bs, 5, 0, steps)
	for _, k := range []int{1, n / bs, n/bs + 1, steps - 1} {
		rest := collect(t, d, bs, 5, int64(k*bs), steps-k)
		if !reflect.DeepEqual(full[k:], rest) {
			t.Fatalf("resume at batch %d (cursor %d) differs", k, k*bs)
		}
	}
	// Any cursor, not only batch multiples: compare example streams.
	ones := collect(t, d, 1, 5, 0, 2*n)
	cur := n - 3
	odd := collect(t, d, 5, 5, int64(cur), 2)
	for i := 0; i < 10; i++ {
		b := odd[i/5]
		row := ones[cur+i]
		j := i % 5
		if !slices.Equal(b.InputIDs[j*b.SeqLen:(j+1)*b.SeqLen], row.InputIDs) ||
			!slices.Equal(b.MaskedIDs[j*b.MaxPred:(j+1)*b.MaxPred], row.MaskedIDs) ||
			b.SentenceLabels[j] != row.SentenceLabels[0] {
			t.Fatalf("example %d at cursor %d differs", cur+i, cur)
		}
	}
}

func TestStaticAndDynamicMasking(t *testing.T) {
	cfg := smallConfig()
	cfg.DupeFactor = 2
	d := prepareSynth(t, cfg, ObjectiveSOP, 11, 20, 10)
	same := func(e1, e2 int64) bool {
		o1, o2 := d.epochOrder(1, e1), d.epochOrder(1, e2)
		pos := func(o []int, c int) int { return slices.Index(o, c) }
		for c := range d.chunks {
			x := d.trainExample(1, e1, o1, pos(o1, c))
			y := d.trainExample(1, e2, o2, pos(o2, c))
			if !reflect.DeepEqual(x, y) {
				return false
			}
		}
		return true
	}
	if !same(0, 2) || !same(1, 3) {
		t.Error("static masking (dupe 2): epochs 0 and 2 differ")
	}
	if same(0, 1) {
		t.Error("static masking (dupe 2): epochs 0 and 1 are identical")
	}
	if slices.Equal(d.epochOrder(1, 0), d.epochOrder(1, 2)) {
		t.Error("epochs are not reshuffled")
	}
	d.cfg.DupeFactor = 0
	if same(0, 2) {
		t.Error("dynamic masking: epochs 0 and 2 identical")
	}
}

func TestEvalSets(t *testing.T) {
	d := prepareSynth(t, smallConfig(), ObjectiveNone, 12, 30, 20)
	es, err := d.EvalSets(32)
	if err != nil {
		t.Fatal(err)
	}
	es2, _ := d.EvalSets(32)
	if !reflect.DeepEqual(es, es2) {
		t.Fatal("eval sets are not fixed")
	}
	for name, set := range map[string][]Batch{"mlm": es.MLM, "nsp": es.NSP, "sop": es.SOP} {
		n, ones, masked := 0, 0, 0
		for _, b := range set {
			n += b.Size
			for i := 0; i < b.Size; i++ {
				ones += int(b.SentenceLabels[i])
			}
			for _, w := range b.MaskedWeights {
				masked += int(w)
			}
		}
		if n != d.cfg.EvalExamples || len(set) != 4 || set[3].Size != 4 {
			t.Errorf("%s: %d examples in %d batches", name, n, len(set))
		}
		if masked == 0 {
			t.Errorf("%s: no masked tokens", name)
		}
		f := float64(ones) / float64(n)
		if name == "mlm" && ones != 0 || name != "mlm" && math.Abs(f-0.5) > 0.15 {
			t.Errorf("%s: label-1 fraction %.2f", name, f)
		}
	}
	if _, err := d.EvalSets(0); err == nil {
		t.Error("EvalSets(0) succeeded")
	}
}

func TestSingleSentenceDocuments(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 13))
	docs := synthDocs(r, 30, 1) // every document one sentence
	for _, quirk := range []bool{false, true} {
		cfg := smallConfig()
		cfg.SOPRandomNegatives = quirk
		cfg, root := testCorpus(t, docs, cfg)
		d, err := Prepare(cfg, ObjectiveSOP, root)
		if err != nil {
			t.Fatal(err)
		}
		l := d.NewLoader(len(d.chunks), 1, 0)
		b, err := l.Next()
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < b.Size; i++ {
			a, bb := segments(b, i, unmask(b, i))
			if len(a) == 0 || len(bb) == 0 {
				t.Fatalf("quirk %v row %d: empty segment", quirk, i)
			}
			sameDoc := len(docsContaining(&d.train, append(slices.Clone(a), bb...))) > 0 ||
				len(docsContaining(&d.train, append(slices.Clone(bb), a...))) > 0
			if !quirk && !sameDoc {
				t.Fatalf("clean SOP row %d: A and B are not one sentence split", i)
			}
			if quirk && b.SentenceLabels[i] != 1 {
				t.Fatalf("quirk row %d: single-sentence chunk not a random negative", i)
			}
		}
	}
}

func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		return p
	}
	cfg := smallConfig()
	cases := map[string]struct {
		path, want string
	}{
		"missing":   {filepath.Join(dir, "nope.txt"), "no such file"},
		"empty":     {write("empty.txt", ""), "no documents"},
		"blank":     {write("blank.txt", "\n\n  \n\t\n"), "no documents"},
		"utf8":      {write("bad.txt", "fine line.\n\nbad \xff\xfe line.\n"), "bad.txt:3: invalid UTF-8"},
		"too few":   {write("few.txt", "one.\ntwo.\n\nthree.\n"), "has 2 documents"},
		"directory": {dir, "is a directory"},
	}
	for name, c := range cases {
		cfg.Corpus = c.path
		_, err := Prepare(cfg, ObjectiveSOP, filepath.Join(dir, "cache"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", name, err, c.want)
		}
	}
	cfg.Corpus = "default"
	if _, err := Prepare(cfg, ObjectiveSOP, filepath.Join(dir, "cache")); err == nil || !strings.Contains(err.Error(), "exp data fetch") {
		t.Errorf("default corpus missing: %v", err)
	}
	if _, err := Prepare(smallConfig(), "mlm", dir); err == nil || !strings.Contains(err.Error(), "objective") {
		t.Errorf("bad objective: %v", err)
	}
	// Corrupt cache: rebuilt, not a panic.
	d := prepareSynth(t, smallConfig(), ObjectiveSOP, 14, 20, 5)
	os.WriteFile(d.info.cachePath, []byte("ALBTOK\x00\x01garbage"), 0o644)
	root := filepath.Dir(filepath.Dir(d.info.cachePath))
	d2, err := Prepare(d.cfg, ObjectiveSOP, root)
	if err != nil || d2.info.cached || !reflect.DeepEqual(d.train, d2.train) {
		t.Errorf("corrupt cache: err %v, cached %v", err, d2 != nil && d2.info.cached)
	}
}

func TestValidateNamesField(t *testing.T) {
	cases := map[string]func(*Config){
		"corpus":          func(c *Config) { c.Corpus = "" },
		"vocab_size":      func(c *Config) { c.VocabSize = 0 },
		"seq_len":         func(c *Config) { c.SeqLen = 4 },
		"max_predictions": func(c *Config) { c.MaxPredictions = 0 },
		"mask_prob":       func(c *Config) { c.MaskProb = math.NaN() },
		"ngram":           func(c *Config) { c.NGram = 0 },
		"short_seq_prob":  func(c *Config) { c.ShortSeqProb = 1.5 },
		"dupe_factor":     func(c *Config) { c.DupeFactor = -1 },
		"heldout_docs":    func(c *Config) { c.HeldOutDocs = 1 },
		"eval_examples":   func(c *Config) { c.EvalExamples = 0 },
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for field, mut := range cases {
		c := DefaultConfig()
		mut(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), field+" =") {
			t.Errorf("%s: %v", field, err)
		}
	}
}

func TestLoaderClose(t *testing.T) {
	d := prepareSynth(t, smallConfig(), ObjectiveSOP, 15, 20, 5)
	l := d.NewLoader(4, 1, 0)
	if _, err := l.Next(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l.Close()
	if _, err := l.Next(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
}

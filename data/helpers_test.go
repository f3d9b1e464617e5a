package data

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reproml/albert/data/corpus"
	"github.com/reproml/albert/data/tokenizer"
)

var syllables = []string{"ka", "lo", "ri", "men", "tus", "an", "be", "dor", "fi", "gu", "hal", "ne", "po", "sar", "te", "vi", "wo", "zel", "qua", "ist"}

// fakeModel is a hand-built SentencePiece unigram model (no spm_train
// needed): ALBERT's special pieces, the user-defined symbols, then for every
// syllable a word-start piece "▁syl" and a continuation piece "syl", so a
// word of k syllables encodes to k pieces (whole-word masking is exercised).
func fakeModel() []byte {
	var pieces []byte
	add := func(text string, score float32, typ tokenizer.PieceType) {
		var p []byte
		p = append(p, 0x0a, byte(len(text)))
		p = append(p, text...)
		p = append(p, 0x15)
		p = binary.LittleEndian.AppendUint32(p, math.Float32bits(score))
		p = append(p, 0x18, byte(typ))
		pieces = append(pieces, 0x0a, byte(len(p)))
		pieces = append(pieces, p...)
	}
	add("<pad>", 0, tokenizer.Control)
	add("<unk>", 0, tokenizer.Unknown)
	add("[CLS]", 0, tokenizer.Control)
	add("[SEP]", 0, tokenizer.Control)
	add("[MASK]", 0, tokenizer.Control)
	for _, s := range tokenizer.UserDefinedSymbols {
		add(s, 0, tokenizer.UserDefined)
	}
	add("▁", -5, tokenizer.Normal)
	add(",", -4, tokenizer.Normal)
	for i, s := range syllables {
		add("▁"+s, -3-float32(i)/100, tokenizer.Normal)
		add(s, -3.5-float32(i)/100, tokenizer.Normal)
	}
	out := append([]byte{}, pieces...)
	out = append(out, 0x12, 0x02, 0x18, 0x01)                         // trainer_spec{model_type: UNIGRAM}
	out = append(out, 0x1a, 0x06, 0x18, 0x01, 0x20, 0x01, 0x28, 0x01) // normalizer_spec: dummy prefix, remove extra ws, escape ws
	return out
}

// synthDocs makes n documents of sentences of random syllable words; every
// document gets 1+IntN(maxSents) sentences.
func synthDocs(r *rand.Rand, n, maxSents int) []corpus.Document {
	docs := make([]corpus.Document, n)
	for i := range docs {
		ns := 1 + r.IntN(maxSents)
		for s := 0; s < ns; s++ {
			var b strings.Builder
			words := 3 + r.IntN(14)
			for w := 0; w < words; w++ {
				if w > 0 {
					b.WriteByte(' ')
				}
				for k := 0; k < 1+r.IntN(3); k++ {
					b.WriteString(syllables[r.IntN(len(syllables))])
				}
				if r.IntN(10) == 0 && w < words-1 {
					b.WriteByte(',')
				}
			}
			b.WriteByte('.')
			docs[i].Sentences = append(docs[i].Sentences, b.String())
		}
	}
	return docs
}

// testCorpus writes synthetic documents and installs the fake model where
// Prepare looks for the SentencePiece model of that corpus and config.
func testCorpus(t testing.TB, docs []corpus.Document, cfg Config) (Config, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "corpus.txt")
	if err := corpus.WriteFile(path, docs); err != nil {
		t.Fatal(err)
	}
	cfg.Corpus = path
	root := filepath.Join(dir, "cache")
	installFakeModel(t, docs, cfg, root)
	return cfg, root
}

func installFakeModel(t testing.TB, docs []corpus.Document, cfg Config, root string) {
	t.Helper()
	if len(docs) < cfg.HeldOutDocs {
		return
	}
	train, _ := splitHeldOut(docs, cfg.HeldOutDocs)
	mdir := spmDir(root, spmText(train), cfg.VocabSize)
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mdir, "spm.model"), fakeModel(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// smallConfig is a fast configuration for unit tests.
func smallConfig() Config {
	c := DefaultConfig()
	c.VocabSize = 100
	c.SeqLen = 64
	c.MaxPredictions = 64
	c.HeldOutDocs = 6
	c.EvalExamples = 100
	c.DupeFactor = 0
	return c
}

// prepareSynth prepares a synthetic dataset.
func prepareSynth(t testing.TB, cfg Config, obj Objective, seed uint64, ndocs, maxSents int) *Dataset {
	t.Helper()
	docs := synthDocs(rand.New(rand.NewPCG(seed, 99)), ndocs, maxSents)
	cfg, root := testCorpus(t, docs, cfg)
	d, err := Prepare(cfg, obj, root)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// unmask restores the original tokens of row i of a batch.
func unmask(b Batch, i int) []int64 {
	row := append([]int64{}, b.InputIDs[i*b.SeqLen:(i+1)*b.SeqLen]...)
	for j := 0; j < b.MaxPred; j++ {
		if b.MaskedWeights[i*b.MaxPred+j] == 1 {
			row[b.MaskedPositions[i*b.MaxPred+j]] = b.MaskedIDs[i*b.MaxPred+j]
		}
	}
	n := 0
	for j := 0; j < b.SeqLen; j++ {
		n += int(b.InputMask[i*b.SeqLen+j])
	}
	return row[:n]
}

// segments splits an unmasked row into A and B (without [CLS]/[SEP]).
func segments(b Batch, i int, row []int64) (a, bb []int32) {
	for j := 1; j < len(row)-1; j++ {
		if row[j] == 3 && b.SegmentIDs[i*b.SeqLen+j] == 0 { // [SEP] ending A
			continue
		}
		if b.SegmentIDs[i*b.SeqLen+j] == 0 {
			a = append(a, int32(row[j]))
		} else {
			bb = append(bb, int32(row[j]))
		}
	}
	return a, bb
}

// contains reports whether needle occurs contiguously in hay.
func contains(hay, needle []int32) bool {
	if len(needle) == 0 {
		return true
	}
outer:
	for i := 0; i+len(needle) <= len(hay); i++ {
		for j, x := range needle {
			if hay[i+j] != x {
				continue outer
			}
		}
		return true
	}
	return false
}

// docsContaining lists the documents of sp whose tokens contain seq.
func docsContaining(sp *split, seq []int32) []int {
	var out []int
	for d := 0; d < sp.numDocs(); d++ {
		if contains(sp.tokens(sp.docs[d], sp.docs[d+1]), seq) {
			out = append(out, d)
		}
	}
	return out
}

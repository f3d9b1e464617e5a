package tasks

import (
	"encoding/binary"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/reproml/albert/data/tokenizer"
)

// testVocab builds a SentencePiece unigram model in memory: the ALBERT
// specials (<pad> 0, <unk> 1, [CLS] 2, [SEP] 3, [MASK] 4), then "▁w" for
// each word (ids 5, 6, … in order), "▁", and single characters. Known words
// encode to one token each, so positions can be checked by hand.
func testVocab(t testing.TB, words ...string) *Vocab {
	t.Helper()
	type piece struct {
		text  string
		score float32
		typ   int
	}
	ps := []piece{{"<pad>", 0, 3}, {"<unk>", 0, 2}, {"[CLS]", 0, 3}, {"[SEP]", 0, 3}, {"[MASK]", 0, 3}}
	for _, w := range words {
		ps = append(ps, piece{"\u2581" + w, -1, 1})
	}
	ps = append(ps, piece{"\u2581", -5, 1})
	for _, r := range "abcdefghijklmnopqrstuvwxyz0123456789.,?!'\"-_é" {
		ps = append(ps, piece{string(r), -8, 1})
	}
	var model []byte
	for _, p := range ps {
		var msg []byte
		msg = append(msg, 1<<3|2)
		msg = binary.AppendUvarint(msg, uint64(len(p.text)))
		msg = append(msg, p.text...)
		msg = append(msg, 2<<3|5)
		msg = binary.LittleEndian.AppendUint32(msg, math.Float32bits(p.score))
		msg = append(msg, 3<<3|0, byte(p.typ))
		model = append(model, 1<<3|2)
		model = binary.AppendUvarint(model, uint64(len(msg)))
		model = append(model, msg...)
	}
	m, err := tokenizer.Parse(model)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVocab(m)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// pieces decodes ids back to piece texts, for readable failures.
func pieces(v *Vocab, ids []int64) string {
	var out []string
	for _, id := range ids {
		out = append(out, v.Model.Pieces[id].Text)
	}
	return strings.Join(out, " ")
}

// realLen is the number of mask-1 positions.
func realLen(mask []int64) int {
	n := 0
	for _, m := range mask {
		n += int(m)
	}
	return n
}

func writeLines(path string, lines []string) error {
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

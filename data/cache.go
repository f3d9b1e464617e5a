package data

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// split is a tokenized set of documents, flat: document d has sentences
// docs[d]..docs[d+1]-1, sentence s has tokens toks[sents[s]:sents[s+1]].
type split struct {
	docs  []int32
	sents []int32
	toks  []int32
}

func (s *split) numDocs() int  { return len(s.docs) - 1 }
func (s *split) numSents() int { return len(s.sents) - 1 }
func (s *split) sentence(i int32) []int32 {
	return s.toks[s.sents[i]:s.sents[i+1]]
}

// sentRangeLen is the token count of sentences [a, b).
func (s *split) sentRangeLen(a, b int32) int { return int(s.sents[b] - s.sents[a]) }

// tokens returns the tokens of sentences [a, b) (a view, do not modify).
func (s *split) tokens(a, b int32) []int32 { return s.toks[s.sents[a]:s.sents[b]] }

func newSplit() split { return split{docs: []int32{0}, sents: []int32{0}} }

// cacheHeader is the JSON header of a prepared token cache.
type cacheHeader struct {
	Version      int    `json:"version"`
	CorpusSHA256 string `json:"corpus_sha256"`
	ModelSHA256  string `json:"model_fingerprint"` // tokenizer.Model.Fingerprint
	HeldOutDocs  int    `json:"heldout_docs"`
	VocabSize    int    `json:"vocab_size"`
	TokenBytes   int    `json:"token_bytes"` // 2 (uint16) or 4 (uint32)
	Skipped      int    `json:"skipped_sentences"`
}

const cacheVersion = 1

var cacheMagic = [8]byte{'A', 'L', 'B', 'T', 'O', 'K', 0, 1}

// writeCache stores the train and held-out splits: magic, header length,
// JSON header, then for each split the int32 document and sentence offsets
// and the token ids as little-endian uint16 (vocabularies up to 65536) or
// uint32. The file is written to a temporary name and renamed.
func writeCache(path string, h cacheHeader, splits ...*split) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	hb, _ := json.Marshal(h)
	w.Write(cacheMagic[:])
	binary.Write(w, binary.LittleEndian, uint32(len(hb)))
	w.Write(hb)
	for _, s := range splits {
		binary.Write(w, binary.LittleEndian, [3]uint32{uint32(len(s.docs)), uint32(len(s.sents)), uint32(len(s.toks))})
		binary.Write(w, binary.LittleEndian, s.docs)
		binary.Write(w, binary.LittleEndian, s.sents)
		if h.TokenBytes == 2 {
			buf := make([]byte, 2*len(s.toks))
			for i, t := range s.toks {
				binary.LittleEndian.PutUint16(buf[2*i:], uint16(t))
			}
			w.Write(buf)
		} else {
			binary.Write(w, binary.LittleEndian, s.toks)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("data: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("data: writing %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// readCache loads a cache written by writeCache and checks it against want.
func readCache(path string, want cacheHeader, n int) ([]split, cacheHeader, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, cacheHeader{}, err
	}
	corrupt := func(why string) error {
		return fmt.Errorf("data: cache %s is corrupt (%s); delete it to rebuild", path, why)
	}
	if len(b) < 12 || [8]byte(b[:8]) != cacheMagic {
		return nil, cacheHeader{}, corrupt("bad magic")
	}
	hl := int(binary.LittleEndian.Uint32(b[8:]))
	if 12+hl > len(b) {
		return nil, cacheHeader{}, corrupt("short header")
	}
	var h cacheHeader
	if err := json.Unmarshal(b[12:12+hl], &h); err != nil {
		return nil, cacheHeader{}, corrupt(err.Error())
	}
	skipped := h.Skipped
	h.Skipped = want.Skipped
	if h != want {
		return nil, cacheHeader{}, corrupt("header does not match its key")
	}
	h.Skipped = skipped
	r := b[12+hl:]
	take := func(nb int) ([]byte, error) {
		if nb < 0 || nb > len(r) {
			return nil, io.ErrUnexpectedEOF
		}
		out := r[:nb]
		r = r[nb:]
		return out, nil
	}
	ints := func(count int) ([]int32, error) {
		raw, err := take(4 * count)
		if err != nil {
			return nil, err
		}
		out := make([]int32, count)
		for i := range out {
			out[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return out, nil
	}
	splits := make([]split, n)
	for i := range splits {
		raw, err := take(12)
		if err != nil {
			return nil, h, corrupt("truncated")
		}
		nd, ns, nt := int(binary.LittleEndian.Uint32(raw)), int(binary.LittleEndian.Uint32(raw[4:])), int(binary.LittleEndian.Uint32(raw[8:]))
		s := &splits[i]
		if s.docs, err = ints(nd); err != nil {
			return nil, h, corrupt("truncated")
		}
		if s.sents, err = ints(ns); err != nil {
			return nil, h, corrupt("truncated")
		}
		if h.TokenBytes == 2 {
			raw, err := take(2 * nt)
			if err != nil {
				return nil, h, corrupt("truncated")
			}
			s.toks = make([]int32, nt)
			for j := range s.toks {
				s.toks[j] = int32(binary.LittleEndian.Uint16(raw[2*j:]))
			}
		} else if s.toks, err = ints(nt); err != nil {
			return nil, h, corrupt("truncated")
		}
		if err := s.check(h.VocabSize); err != nil {
			return nil, h, corrupt(err.Error())
		}
	}
	if len(r) != 0 {
		return nil, h, corrupt("trailing bytes")
	}
	return splits, h, nil
}

// check verifies offsets are monotone and in range and ids below vocab.
func (s *split) check(vocab int) error {
	if len(s.docs) < 1 || len(s.sents) < 1 || s.docs[0] != 0 || s.sents[0] != 0 {
		return errors.New("bad offsets")
	}
	for i := 1; i < len(s.docs); i++ {
		if s.docs[i] <= s.docs[i-1] {
			return errors.New("empty or unordered document")
		}
	}
	if int(s.docs[len(s.docs)-1]) != len(s.sents)-1 {
		return errors.New("document offsets do not cover the sentences")
	}
	for i := 1; i < len(s.sents); i++ {
		if s.sents[i] <= s.sents[i-1] {
			return errors.New("empty or unordered sentence")
		}
	}
	if int(s.sents[len(s.sents)-1]) != len(s.toks) {
		return errors.New("sentence offsets do not cover the tokens")
	}
	for _, t := range s.toks {
		if t < 0 || int(t) >= vocab {
			return errors.New("token id out of range")
		}
	}
	return nil
}

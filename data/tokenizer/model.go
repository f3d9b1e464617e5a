// Package tokenizer encodes text with a SentencePiece unigram model in pure
// Go and trains such models with the real SentencePiece (spm_train).
//
// The encoder reads the .model file itself (pieces, scores, types and the
// precompiled normalisation map) and runs the same Viterbi search as
// SentencePiece, so its ids equal spm_encode's without libsentencepiece.
package tokenizer

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"unicode/utf8"
)

// PieceType is SentencePiece's piece type (ModelProto.SentencePiece.Type).
type PieceType int

// Piece types as numbered in sentencepiece_model.proto.
const (
	Normal      PieceType = 1
	Unknown     PieceType = 2
	Control     PieceType = 3
	UserDefined PieceType = 4
	Unused      PieceType = 5
	Byte        PieceType = 6
)

// Piece is one vocabulary entry.
type Piece struct {
	Text  string
	Score float32
	Type  PieceType
}

// Model is a loaded SentencePiece unigram model.
type Model struct {
	Pieces []Piece

	unkID                 int
	minScore, maxScore    float32
	addDummyPrefix        bool
	removeExtraWhitespace bool
	escapeWhitespace      bool
	charsTrie             []uint32 // darts-clone double array of the normaliser
	charsNorm             []byte   // normalised strings, NUL-terminated
	userDefined           *trie    // prefix matcher over user-defined symbols
	pieces                *trie    // normal, user-defined and unused pieces
	ids                   map[string]int
}

// Load reads a SentencePiece .model file.
func Load(path string) (*Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return m, nil
}

// Parse decodes the bytes of a SentencePiece .model (a ModelProto).
func Parse(b []byte) (*Model, error) {
	m := &Model{unkID: -1, addDummyPrefix: true, removeExtraWhitespace: true, escapeWhitespace: true,
		ids: map[string]int{}}
	modelType := int64(1)
	err := walk(b, func(field int, wire int, v uint64, data []byte) error {
		switch field {
		case 1: // pieces
			p := Piece{Type: Normal}
			err := walk(data, func(f, w int, v uint64, d []byte) error {
				switch f {
				case 1:
					p.Text = string(d)
				case 2:
					p.Score = math.Float32frombits(uint32(v))
				case 3:
					p.Type = PieceType(v)
				}
				return nil
			})
			if err != nil {
				return err
			}
			m.Pieces = append(m.Pieces, p)
		case 2: // trainer_spec
			return walk(data, func(f, w int, v uint64, d []byte) error {
				if f == 3 {
					modelType = int64(v)
				}
				if f == 24 && v != 0 {
					return errors.New("treat_whitespace_as_suffix is not supported")
				}
				return nil
			})
		case 3: // normalizer_spec
			return walk(data, func(f, w int, v uint64, d []byte) error {
				switch f {
				case 2:
					if len(d) > 0 {
						return m.setCharsMap(d)
					}
				case 3:
					m.addDummyPrefix = v != 0
				case 4:
					m.removeExtraWhitespace = v != 0
				case 5:
					m.escapeWhitespace = v != 0
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if modelType != 1 {
		return nil, fmt.Errorf("model type %d is not unigram", modelType)
	}
	if len(m.Pieces) == 0 {
		return nil, errors.New("model has no pieces")
	}
	m.minScore, m.maxScore = math.MaxFloat32, math.SmallestNonzeroFloat32
	m.userDefined, m.pieces = newTrie(), newTrie()
	for id, p := range m.Pieces {
		if !utf8.ValidString(p.Text) || p.Text == "" {
			return nil, fmt.Errorf("piece %d is not valid UTF-8 text", id)
		}
		m.ids[p.Text] = id
		switch p.Type {
		case Normal:
			m.minScore = min(m.minScore, p.Score)
			m.maxScore = max(m.maxScore, p.Score)
			m.pieces.insert(p.Text, int32(id))
		case UserDefined:
			m.userDefined.insert(p.Text, int32(id))
			m.pieces.insert(p.Text, int32(id))
		case Unused:
			m.pieces.insert(p.Text, int32(id))
		case Unknown:
			m.unkID = id
		case Byte:
			return nil, errors.New("byte-fallback models are not supported")
		}
	}
	if m.unkID < 0 {
		return nil, errors.New("model has no <unk> piece")
	}
	return m, nil
}

// Size is the vocabulary size.
func (m *Model) Size() int { return len(m.Pieces) }

// ID returns the id of a piece and whether it exists.
func (m *Model) ID(piece string) (int, bool) {
	id, ok := m.ids[piece]
	return id, ok
}

// UnkID is the id of <unk>.
func (m *Model) UnkID() int { return m.unkID }

func (m *Model) setCharsMap(d []byte) error {
	if len(d) <= 4 {
		return errors.New("precompiled charsmap is broken")
	}
	n := binary.LittleEndian.Uint32(d)
	if int(n) >= len(d)-4+1 || n%4 != 0 {
		return errors.New("precompiled charsmap trie size exceeds the blob")
	}
	blob := d[4 : 4+n]
	m.charsTrie = make([]uint32, n/4)
	for i := range m.charsTrie {
		m.charsTrie[i] = binary.LittleEndian.Uint32(blob[4*i:])
	}
	m.charsNorm = d[4+n:]
	return nil
}

// walk iterates the fields of a protobuf message.
func walk(b []byte, fn func(field, wire int, v uint64, data []byte) error) error {
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("malformed protobuf key")
		}
		b = b[n:]
		field, wire := int(key>>3), int(key&7)
		var v uint64
		var data []byte
		switch wire {
		case 0:
			v, n = binary.Uvarint(b)
			if n <= 0 {
				return errors.New("malformed protobuf varint")
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return errors.New("truncated protobuf fixed64")
			}
			v, b = binary.LittleEndian.Uint64(b), b[8:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return errors.New("truncated protobuf bytes")
			}
			data, b = b[n:n+int(l)], b[n+int(l):]
		case 5:
			if len(b) < 4 {
				return errors.New("truncated protobuf fixed32")
			}
			v, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		default:
			return fmt.Errorf("unsupported protobuf wire type %d", wire)
		}
		if err := fn(field, wire, v, data); err != nil {
			return err
		}
	}
	return nil
}

// trie is a byte trie with sorted child lists (root has a direct table).
type trie struct {
	nodes []trieNode
	root  [256]int32
}

type trieNode struct {
	value    int32 // piece id, -1 if none
	children []trieEdge
}

type trieEdge struct {
	b     byte
	child int32
}

func newTrie() *trie {
	t := &trie{}
	for i := range t.root {
		t.root[i] = -1
	}
	return t
}

func (t *trie) insert(s string, value int32) {
	cur := t.root[s[0]]
	if cur < 0 {
		cur = int32(len(t.nodes))
		t.nodes = append(t.nodes, trieNode{value: -1})
		t.root[s[0]] = cur
	}
	for i := 1; i < len(s); i++ {
		next := t.child(cur, s[i])
		if next < 0 {
			next = int32(len(t.nodes))
			t.nodes = append(t.nodes, trieNode{value: -1})
			n := &t.nodes[cur]
			j := 0
			for j < len(n.children) && n.children[j].b < s[i] {
				j++
			}
			n.children = append(n.children, trieEdge{})
			copy(n.children[j+1:], n.children[j:])
			n.children[j] = trieEdge{s[i], next}
		}
		cur = next
	}
	t.nodes[cur].value = value
}

func (t *trie) child(n int32, b byte) int32 {
	for _, e := range t.nodes[n].children {
		if e.b == b {
			return e.child
		}
		if e.b > b {
			break
		}
	}
	return -1
}

// prefixes calls fn(length, id) for every stored key that prefixes s,
// shortest first (as darts' commonPrefixSearch).
func (t *trie) prefixes(s string, fn func(n int, id int32)) {
	if len(s) == 0 {
		return
	}
	cur := t.root[s[0]]
	for i := 1; cur >= 0; i++ {
		if v := t.nodes[cur].value; v >= 0 {
			fn(i, v)
		}
		if i >= len(s) {
			return
		}
		cur = t.child(cur, s[i])
	}
}

// Fingerprint is a SHA-256 over what determines encoding: the pieces (text,
// score bits, type) and the normaliser. Unlike the file hash it ignores the
// trainer spec, which records input paths.
func (m *Model) Fingerprint() string {
	h := sha256.New()
	var buf [9]byte
	for _, p := range m.Pieces {
		h.Write([]byte(p.Text))
		buf[0] = 0
		binary.LittleEndian.PutUint32(buf[1:], math.Float32bits(p.Score))
		binary.LittleEndian.PutUint32(buf[5:], uint32(p.Type))
		h.Write(buf[:])
	}
	fmt.Fprintf(h, "|%v|%v|%v|%d|", m.addDummyPrefix, m.removeExtraWhitespace, m.escapeWhitespace, len(m.charsTrie))
	for _, u := range m.charsTrie {
		binary.LittleEndian.PutUint32(buf[:4], u)
		h.Write(buf[:4])
	}
	h.Write(m.charsNorm)
	return hex.EncodeToString(h.Sum(nil))
}

// Package corpus reads and builds pretraining corpora in the BERT/ALBERT
// create_pretraining_data layout: one sentence per line, a blank line between
// documents.
package corpus

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// Document is one document: its sentences in order.
type Document struct {
	Sentences []string
}

// Read parses a corpus file in the one-sentence-per-line layout. Lines are
// trimmed; one or more blank lines end a document. It returns the documents
// and the SHA-256 of the file. Invalid UTF-8 is an error naming the line; a
// file without any sentence is an error.
func Read(path string) ([]Document, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("corpus: %w", err)
	}
	docs, err := Parse(bytes.NewReader(b), path)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(b)
	return docs, hex.EncodeToString(sum[:]), nil
}

// Parse reads the layout from r; name is used in errors.
func Parse(r io.Reader, name string) ([]Document, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var docs []Document
	var cur []string
	line := 0
	for sc.Scan() {
		line++
		raw := sc.Bytes()
		if !utf8.Valid(raw) {
			return nil, fmt.Errorf("corpus: %s:%d: invalid UTF-8", name, line)
		}
		s := strings.TrimSpace(string(raw))
		if s == "" {
			if len(cur) > 0 {
				docs = append(docs, Document{Sentences: cur})
				cur = nil
			}
			continue
		}
		cur = append(cur, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("corpus: %s:%d: %w", name, line+1, err)
	}
	if len(cur) > 0 {
		docs = append(docs, Document{Sentences: cur})
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("corpus: %s: no documents (expected one sentence per line, a blank line between documents)", name)
	}
	return docs, nil
}

// Write writes documents in the layout.
func Write(w io.Writer, docs []Document) error {
	bw := bufio.NewWriter(w)
	for i, d := range docs {
		if i > 0 {
			bw.WriteByte('\n')
		}
		for _, s := range d.Sentences {
			bw.WriteString(s)
			bw.WriteByte('\n')
		}
	}
	return bw.Flush()
}

// WriteFile writes documents to path atomically.
func WriteFile(path string, docs []Document) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	if err := Write(f, docs); err != nil {
		f.Close()
		return fmt.Errorf("corpus: %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("corpus: %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

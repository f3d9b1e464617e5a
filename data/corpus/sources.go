package corpus

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Sources of the default corpus's documents (its sources file).
const (
	SourceSOTU     = "sotu"
	SourceMobyDick = "moby-dick"
)

// SourcesPath is the sidecar of a corpus file that names each document's
// source (where it came from: "sotu", "moby-dick"), one line per document in
// corpus order: the corpus path with ".sources" appended.
func SourcesPath(corpusPath string) string { return corpusPath + ".sources" }

// ReadSources reads the sources file of the corpus at corpusPath, which has
// numDocs documents. It returns nil and no error when there is no such file.
// A file whose line count is not numDocs, or with an empty line, is an error
// naming it.
func ReadSources(corpusPath string, numDocs int) ([]string, error) {
	p := SourcesPath(corpusPath)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	text := strings.TrimSuffix(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	var lines []string
	if text != "" {
		lines = strings.Split(text, "\n")
	}
	if len(lines) != numDocs {
		return nil, fmt.Errorf("corpus: %s has %d lines, but %s has %d documents (want one source per document, in corpus order; delete it or rebuild the corpus)",
			p, len(lines), corpusPath, numDocs)
	}
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
		if lines[i] == "" {
			return nil, fmt.Errorf("corpus: %s:%d: empty source name", p, i+1)
		}
	}
	return lines, nil
}

// WriteSources writes the sources file of the corpus at corpusPath
// atomically, one name a line.
func WriteSources(corpusPath string, sources []string) error {
	p := SourcesPath(corpusPath)
	var b strings.Builder
	for _, s := range sources {
		if s == "" || strings.ContainsAny(s, "\r\n") {
			return fmt.Errorf("corpus: %s: bad source name %q", p, s)
		}
		b.WriteString(s)
		b.WriteByte('\n')
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	return nil
}

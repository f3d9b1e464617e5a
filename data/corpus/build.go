package corpus

import (
	"regexp"
	"strings"
	"sync"

	"github.com/neurosnap/sentences"
	"github.com/neurosnap/sentences/english"
)

var (
	splitterOnce sync.Once
	splitter     *sentences.DefaultSentenceTokenizer
	splitterErr  error
	italics      = regexp.MustCompile(`_([^_\n]+)_`)
	underscores  = regexp.MustCompile(`_+`)
	paraBreak    = regexp.MustCompile(`\n[ \t\r\f\v]*\n`)
)

// Normalize cleans raw prose: CRLF to LF, `_italics_` underscores stripped
// (and any other underscores removed), and every run of whitespace inside a
// paragraph collapsed to one space. Paragraphs (blank-line separated) are
// returned separately.
func Normalize(raw string) []string {
	raw = strings.ReplaceAll(raw, "\r\n", "\n")
	raw = strings.ReplaceAll(raw, "\r", "\n")
	raw = italics.ReplaceAllString(raw, "$1")
	raw = underscores.ReplaceAllString(raw, " ")
	var paras []string
	for _, p := range paraBreak.Split(raw, -1) {
		p = strings.Join(strings.Fields(p), " ")
		if p != "" {
			paras = append(paras, p)
		}
	}
	return paras
}

// SplitSentences splits one paragraph into sentences with the Punkt English
// model of github.com/neurosnap/sentences.
func SplitSentences(paragraph string) ([]string, error) {
	splitterOnce.Do(func() { splitter, splitterErr = english.NewSentenceTokenizer(nil) })
	if splitterErr != nil {
		return nil, splitterErr
	}
	var out []string
	for _, s := range splitter.Tokenize(paragraph) {
		if t := strings.Join(strings.Fields(s.Text), " "); t != "" {
			out = append(out, t)
		}
	}
	return out, nil
}

// BuildDocument turns the raw text of one document into sentences.
func BuildDocument(raw string) (Document, error) {
	var d Document
	for _, p := range Normalize(raw) {
		ss, err := SplitSentences(p)
		if err != nil {
			return d, err
		}
		d.Sentences = append(d.Sentences, ss...)
	}
	return d, nil
}

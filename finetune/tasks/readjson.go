package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"unicode/utf8"
)

type squadJSON struct {
	Data []struct {
		Paragraphs []struct {
			Context *string `json:"context"`
			QAs     []struct {
				ID       *string `json:"id"`
				Question *string `json:"question"`
				Answers  []struct {
					Text        *string `json:"text"`
					AnswerStart *int    `json:"answer_start"`
				} `json:"answers"`
				IsImpossible bool `json:"is_impossible"`
			} `json:"qas"`
		} `json:"paragraphs"`
	} `json:"data"`
}

// readSQuAD reads a SQuAD JSON file as squad_utils.read_squad_examples does,
// one Example per question, and checks what the official code assumes: ids,
// questions and contexts present, ids unique, answer offsets inside the
// context, an answerable question with at least one answer (exactly one in
// training, where squad_utils raises otherwise), an unanswerable one with
// none.
func readSQuAD(p string, version int, training bool) ([]Example, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	var doc squadJSON
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, jsonError(p, b, err)
	}
	if doc.Data == nil {
		return nil, fmt.Errorf("tasks: %s: data: missing (want the SQuAD layout data[].paragraphs[].qas[])", p)
	}
	var out []Example
	seen := map[string]string{}
	for i, art := range doc.Data {
		for j, par := range art.Paragraphs {
			at := fmt.Sprintf("data[%d].paragraphs[%d]", i, j)
			if par.Context == nil {
				return nil, fmt.Errorf("tasks: %s: %s.context: missing", p, at)
			}
			ctx := *par.Context
			ctxRunes := utf8.RuneCountInString(ctx)
			for k, qa := range par.QAs {
				at := fmt.Sprintf("%s.qas[%d]", at, k)
				if qa.ID == nil || *qa.ID == "" {
					return nil, fmt.Errorf("tasks: %s: %s.id: missing", p, at)
				}
				if prev, dup := seen[*qa.ID]; dup {
					return nil, fmt.Errorf("tasks: %s: %s.id: %q already used at %s", p, at, *qa.ID, prev)
				}
				seen[*qa.ID] = at
				if qa.Question == nil {
					return nil, fmt.Errorf("tasks: %s: %s.question: missing", p, at)
				}
				if qa.IsImpossible && version < 2 {
					return nil, fmt.Errorf("tasks: %s: %s.is_impossible: true in a SQuAD 1.1 file", p, at)
				}
				ex := Example{ID: *qa.ID, Question: *qa.Question, Context: ctx, IsImpossible: qa.IsImpossible, Label: -1}
				switch {
				case qa.IsImpossible && len(qa.Answers) > 0:
					return nil, fmt.Errorf("tasks: %s: %s.answers: %d answers for an unanswerable question (want none)", p, at, len(qa.Answers))
				case !qa.IsImpossible && len(qa.Answers) == 0:
					return nil, fmt.Errorf("tasks: %s: %s.answers: none for an answerable question", p, at)
				case !qa.IsImpossible && training && len(qa.Answers) != 1:
					return nil, fmt.Errorf("tasks: %s: %s.answers: %d answers; a training question has exactly one", p, at, len(qa.Answers))
				}
				for l, a := range qa.Answers {
					at := fmt.Sprintf("%s.answers[%d]", at, l)
					if a.Text == nil {
						return nil, fmt.Errorf("tasks: %s: %s.text: missing", p, at)
					}
					if a.AnswerStart == nil {
						return nil, fmt.Errorf("tasks: %s: %s.answer_start: missing", p, at)
					}
					start, n := *a.AnswerStart, utf8.RuneCountInString(*a.Text)
					if start < 0 || start+n > ctxRunes {
						return nil, fmt.Errorf("tasks: %s: %s.answer_start: %d + %d characters of %q runs outside the context (%d characters)", p, at, start, n, *a.Text, ctxRunes)
					}
					ex.Answers = append(ex.Answers, Answer{Text: *a.Text, Start: start})
				}
				out = append(out, ex)
			}
		}
	}
	return out, nil
}

// jsonError turns a decoding error into file:line:col with the JSON field.
func jsonError(p string, b []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		l, c := lineCol(b, syn.Offset)
		return fmt.Errorf("tasks: %s:%d:%d: malformed JSON: %v", p, l, c, syn)
	case errors.As(err, &typ):
		l, c := lineCol(b, typ.Offset)
		return fmt.Errorf("tasks: %s:%d:%d: %s: JSON %s where %s is expected", p, l, c, typ.Field, typ.Value, typ.Type)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("tasks: %s: truncated JSON", p)
	}
	return fmt.Errorf("tasks: %s: %w", p, err)
}

func lineCol(b []byte, off int64) (int, int) {
	off = min(max(off, 0), int64(len(b)))
	before := b[:off]
	line := bytes.Count(before, []byte{'\n'}) + 1
	col := int(off) - (bytes.LastIndexByte(before, '\n') + 1)
	return line, col
}

type raceJSON struct {
	Article   *string    `json:"article"`
	Questions []string   `json:"questions"`
	Options   [][]string `json:"options"`
	Answers   []string   `json:"answers"`
	ID        string     `json:"id"`
}

// readRACE reads RACE/<split>/{middle,high}/*.txt (file names in sorted
// order): each file holds one JSON object per article (the distribution has
// one per file; race_utils reads one per line), each question becomes one
// Example with ID "<id>-<question index>". The split is missing when neither
// subset folder exists.
func readRACE(dir string) ([]Example, string, error) {
	var out []Example
	found := false
	for _, sub := range []string{SubsetMiddle, SubsetHigh} {
		d := filepath.Join(dir, sub)
		entries, err := os.ReadDir(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, "", fmt.Errorf("tasks: %w", err)
		}
		found = true
		var names []string
		for _, e := range entries {
			if !e.IsDir() && filepath.Ext(e.Name()) == ".txt" {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, name := range names {
			exs, err := readRACEFile(filepath.Join(d, name), sub)
			if err != nil {
				return nil, "", err
			}
			out = append(out, exs...)
		}
	}
	if !found {
		return nil, filepath.Join(dir, SubsetMiddle), nil
	}
	return out, "", nil
}

func readRACEFile(p, subset string) ([]Example, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var out []Example
	for obj := 0; ; obj++ {
		var r raceJSON
		if err := dec.Decode(&r); err == io.EOF {
			if obj == 0 {
				return nil, fmt.Errorf("tasks: %s: empty (want one JSON object per article)", p)
			}
			return out, nil
		} else if err != nil {
			return nil, jsonError(p, b, err)
		}
		at := ""
		if obj > 0 {
			at = fmt.Sprintf("object %d: ", obj+1)
		}
		if r.Article == nil {
			return nil, fmt.Errorf("tasks: %s: %sarticle: missing", p, at)
		}
		if r.ID == "" {
			r.ID = filepath.Base(p)
		}
		if len(r.Options) != len(r.Questions) || len(r.Answers) != len(r.Questions) {
			return nil, fmt.Errorf("tasks: %s: %s%d questions, %d option lists, %d answers (want equal counts)", p, at, len(r.Questions), len(r.Options), len(r.Answers))
		}
		for i, q := range r.Questions {
			if len(r.Options[i]) != 4 {
				return nil, fmt.Errorf("tasks: %s: %soptions[%d]: %d options, want 4", p, at, i, len(r.Options[i]))
			}
			a := r.Answers[i]
			if len(a) != 1 || a[0] < 'A' || a[0] > 'D' {
				return nil, fmt.Errorf("tasks: %s: %sanswers[%d]: %q, want A, B, C or D", p, at, i, a)
			}
			out = append(out, Example{
				ID:       fmt.Sprintf("%s-%d", r.ID, i),
				Article:  *r.Article,
				Question: q,
				Options:  append([]string(nil), r.Options[i]...),
				Label:    int(a[0] - 'A'),
				Subset:   subset,
			})
		}
	}
}

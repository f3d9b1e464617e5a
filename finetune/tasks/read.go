package tasks

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Read reads one split of a task from the data root in the task's official
// layout. Absent files are not an error: the Set comes back with Missing set
// to the path that was looked for. A malformed file is an error naming
// file:line (TSV) or the file and the JSON path, with the reason.
func Read(root string, t Task, s Split) (Set, error) {
	set := Set{Task: t, Split: s}
	p, err := SplitPath(root, t, s)
	if err != nil {
		return set, err
	}
	set.Path = p
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		set.Missing = p
		return set, nil
	} else if err != nil {
		return set, fmt.Errorf("tasks: %s: %w", t.Name, err)
	}
	switch t.Format {
	case FormatSQuAD:
		set.Examples, err = readSQuAD(p, t.SQuADVersion, s == Train)
	case FormatRACE:
		set.Examples, set.Missing, err = readRACE(p)
	default:
		set.Examples, err = readGLUE(p, t, s)
	}
	if err != nil {
		return Set{Task: t, Split: s, Path: p}, err
	}
	return set, nil
}

// SplitPath is the file (GLUE, SQuAD) or folder (RACE) that holds a split.
func SplitPath(root string, t Task, s Split) (string, error) {
	dir := filepath.Join(root, filepath.FromSlash(t.Dir))
	switch t.Format {
	case "":
		return "", fmt.Errorf("tasks: task %q has no format", t.Name)
	case FormatSQuAD:
		if s != Train && s != Dev {
			return "", fmt.Errorf("tasks: %s has no split %q (train, dev)", t.Name, s)
		}
		switch t.SQuADVersion {
		case 1:
			return filepath.Join(dir, string(s)+"-v1.1.json"), nil
		case 2:
			return filepath.Join(dir, string(s)+"-v2.0.json"), nil
		}
		return "", fmt.Errorf("tasks: %s: SQuAD version %d, want 1 or 2", t.Name, t.SQuADVersion)
	case FormatRACE:
		if s != Train && s != Dev && s != Test {
			return "", fmt.Errorf("tasks: %s has no split %q (train, dev, test)", t.Name, s)
		}
		return filepath.Join(dir, string(s)), nil
	}
	ok := s == Train
	if t.Format == MNLI {
		ok = ok || s == DevMatched || s == DevMismatched
	} else {
		ok = ok || s == Dev
	}
	if !ok {
		return "", fmt.Errorf("tasks: %s has no labelled split %q", t.Name, s)
	}
	return filepath.Join(dir, string(s)+".tsv"), nil
}

// Found says whether a task's files are under the data root.
type Found struct {
	Task Task
	// Missing is the first of the task's training and evaluation files that
	// is absent, "" when all are there.
	Missing string
}

// Present reports whether every split the task uses is there.
func (f Found) Present() bool { return f.Missing == "" }

// Discover checks, for every task of the catalog, whether its training split
// and every evaluation split are present under root (a RACE split needs its
// middle or its high folder). It only looks for the files; Read parses them.
func Discover(root string) []Found {
	var out []Found
	for _, t := range catalog {
		f := Found{Task: t}
		for _, s := range append([]Split{t.TrainSplit}, t.EvalSplits...) {
			p, err := SplitPath(root, t, s)
			if err != nil {
				f.Missing = p
				break
			}
			if t.Format == FormatRACE {
				if !exists(filepath.Join(p, SubsetMiddle)) && !exists(filepath.Join(p, SubsetHigh)) {
					f.Missing = filepath.Join(p, SubsetMiddle)
					break
				}
			} else if !exists(p) {
				f.Missing = p
				break
			}
		}
		out = append(out, f)
	}
	return out
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// glueLayout is where run_classifier.py's processors read text and labels
// (0-based columns; -1 = last column).
type glueLayout struct {
	a, b, label int  // b = -2: no second text
	header      bool // the first row is a header
	idCol       int  // column holding the example id; -1: "<split>-<row>"
	skipShort   bool // rows with too few columns are skipped, not an error (QQP)
}

const noText = -2

var glueLayouts = map[string]glueLayout{
	MNLI: {a: 8, b: 9, label: -1, header: true, idCol: 0},
	MRPC: {a: 3, b: 4, label: 0, header: true, idCol: -1},
	CoLA: {a: 3, b: noText, label: 1, header: false, idCol: -1},
	SST2: {a: 0, b: noText, label: 1, header: true, idCol: -1},
	STSB: {a: 7, b: 8, label: -1, header: true, idCol: 0},
	QQP:  {a: 3, b: 4, label: 5, header: true, idCol: 0, skipShort: true},
	QNLI: {a: 1, b: 2, label: -1, header: true, idCol: 0},
	RTE:  {a: 1, b: 2, label: -1, header: true, idCol: 0},
	WNLI: {a: 1, b: 2, label: -1, header: true, idCol: 0},
}

// readGLUE reads a GLUE TSV as run_classifier.py does: tab-separated, no
// quoting, the header row skipped (CoLA's train and dev have none), rows
// numbered from the file's first line as the official guids are.
func readGLUE(p string, t Task, s Split) ([]Example, error) {
	lay, ok := glueLayouts[t.Format]
	if !ok {
		return nil, fmt.Errorf("tasks: %s: unknown format %q", t.Name, t.Format)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	defer f.Close()
	labels := map[string]int{}
	for i, l := range t.Labels {
		labels[l] = i
	}
	need := max(lay.a, lay.b, lay.label, lay.idCol) + 1
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var out []Example
	line := 0
	for sc.Scan() {
		line++
		row := line - 1 // the official enumerate index
		if lay.header && row == 0 {
			continue
		}
		text := strings.TrimSuffix(sc.Text(), "\r")
		if text == "" {
			continue
		}
		cols := strings.Split(text, "\t")
		if len(cols) < need {
			if lay.skipShort {
				continue
			}
			return nil, fmt.Errorf("tasks: %s:%d: %d columns, %s needs at least %d", p, line, len(cols), t.Format, need)
		}
		col := func(i int) string {
			if i == -1 {
				return cols[len(cols)-1]
			}
			return cols[i]
		}
		ex := Example{TextA: col(lay.a), Label: -1}
		if lay.b != noText {
			ex.TextB = col(lay.b)
		}
		if lay.idCol >= 0 {
			ex.ID = cols[lay.idCol]
		} else {
			ex.ID = fmt.Sprintf("%s-%d", s, row)
		}
		raw := strings.TrimSpace(col(lay.label))
		if t.Kind == Regression {
			v, err := strconv.ParseFloat(raw, 64)
			if err != nil {
				return nil, fmt.Errorf("tasks: %s:%d: score %q is not a number", p, line, raw)
			}
			ex.Score = v
		} else {
			id, ok := labels[raw]
			if !ok {
				return nil, fmt.Errorf("tasks: %s:%d: label %q is not one of %v", p, line, raw, t.Labels)
			}
			ex.Label = id
		}
		out = append(out, ex)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tasks: %s:%d: %w", p, line+1, err)
	}
	return out, nil
}

package experiments

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in an experiment file or a --set override. It prints
// as "file:line: key: message", or "--set k=v: message" for an override.
type Error struct {
	File string // the experiment file; empty for a --set override
	Line int    // 1-based; 0 if unknown
	Set  string // the --set argument, when the problem is in one
	Key  string // the dotted key as written, e.g. "base.model.num_heads"
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Set != "":
		fmt.Fprintf(&b, "--set %s: ", e.Set)
	case e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	default:
		fmt.Fprintf(&b, "%s: ", e.File)
	}
	if e.Key != "" && e.Set == "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one pass, in file order; it prints one
// per line. Validation reports all of them rather than the first.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// maxErrors bounds a report: after this many, the rest are summarised.
const maxErrors = 20

// errs collects problems, dropping exact repeats (one bad base value breaks
// every run of a sweep the same way).
type errs struct {
	list Errors
	seen map[string]bool
}

func (c *errs) add(src source, msg string, args ...any) {
	e := &Error{File: src.file, Line: src.line, Set: src.set, Key: src.key, Msg: fmt.Sprintf(msg, args...)}
	c.addErr(e, e.Error())
}

// addErr adds e unless an error with the same dedup key is already there.
func (c *errs) addErr(e *Error, dedup string) {
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	if c.seen[dedup] {
		return
	}
	c.seen[dedup] = true
	c.list = append(c.list, e)
}

func (c *errs) empty() bool { return len(c.list) == 0 }

// err returns the collected problems sorted by position, or nil.
func (c *errs) err() error {
	if len(c.list) == 0 {
		return nil
	}
	l := append(Errors(nil), c.list...)
	sort.SliceStable(l, func(i, j int) bool {
		if (l[i].Set == "") != (l[j].Set == "") {
			return l[i].Set != "" // --set problems first: they are the newest input
		}
		return l[i].Line < l[j].Line
	})
	if len(l) > maxErrors {
		extra := len(l) - maxErrors
		l = append(l[:maxErrors:maxErrors], &Error{File: l[0].File, Msg: fmt.Sprintf("… and %d more problems", extra)})
	}
	return l
}

// source is where a value was set: a key on a line of a file, or a --set.
type source struct {
	file string
	line int
	key  string // as written in the file, e.g. "profiles.cpu.model.hidden_size"
	set  string // the whole --set argument, for overrides
}

func (s source) String() string {
	if s.set != "" {
		return "--set " + s.set
	}
	return fmt.Sprintf("%s:%d", s.file, s.line)
}

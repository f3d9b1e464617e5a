package torchbuild

import (
	"bufio"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// A wrapperFunc is one generated C wrapper (atg_*) of gotch's
// torch_api_generated.cpp.h, kept as text so that it can be swapped for a stub.
type wrapperFunc struct {
	Name   string // atg_add
	Ret    string // "void", "int64_t", "tensor", ...
	Header string // the signature line, ending in "{"
	Text   string // the whole definition
}

var funcStartRe = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_ \*]*?)\s*\b(atg_[A-Za-z0-9_]+)\(.*\{\s*$`)

// parseWrappers splits the generated file into its functions. Every
// definition starts at column 0 with its signature and ends with "}" alone.
func parseWrappers(src string) ([]wrapperFunc, error) {
	var (
		funcs []wrapperFunc
		cur   *wrapperFunc
		body  strings.Builder
	)
	sc := bufio.NewScanner(strings.NewReader(src))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if cur == nil {
			if m := funcStartRe.FindStringSubmatch(line); m != nil {
				cur = &wrapperFunc{Name: m[2], Ret: strings.TrimSpace(m[1]), Header: line}
				body.Reset()
				body.WriteString(line + "\n")
			}
			continue
		}
		body.WriteString(line + "\n")
		if line == "}" {
			cur.Text = body.String()
			funcs = append(funcs, *cur)
			cur = nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil {
		return nil, fmt.Errorf("generated wrapper %s has no closing brace", cur.Name)
	}
	if len(funcs) == 0 {
		return nil, fmt.Errorf("no atg_ wrappers found in the generated file")
	}
	return funcs, nil
}

// stub returns a definition with f's signature that records a Go-visible
// error naming the op and the libtorch version, and returns a defined value.
func (f wrapperFunc) stub(version string) string {
	msg := fmt.Sprintf("torch op %s is not available: it does not compile against libtorch %s, so torchbuild replaced it with a stub", f.Name, version)
	var ret string
	switch {
	case f.Ret == "void":
	case strings.Contains(f.Ret, "*") || f.Ret == "tensor" || f.Ret == "scalar" || f.Ret == "ivalue" || f.Ret == "module" || f.Ret == "optimizer":
		ret = "  return nullptr;\n"
	default: // int, int64_t, double, bool, uint8_t, ...
		ret = "  return 0;\n"
	}
	return fmt.Sprintf("%s\n  torch_last_err = strdup(%q);\n%s}\n", f.Header, msg, ret)
}

// chunk is one translation unit of wrappers and the line span of each.
type chunk struct {
	funcs []int    // indexes into the wrapper list
	lines []string // function name at each 1-based line (index 0 unused)
}

const chunkPreamble = "#include \"torch_api.h\"\n\n"

func renderChunk(all []wrapperFunc, idx []int, stubbed map[string]bool, version string) (string, chunk) {
	var b strings.Builder
	c := chunk{funcs: idx, lines: []string{""}}
	add := func(text, name string) {
		b.WriteString(text)
		for i := 0; i < strings.Count(text, "\n"); i++ {
			c.lines = append(c.lines, name)
		}
	}
	add(chunkPreamble, "")
	for _, i := range idx {
		f := all[i]
		if stubbed[f.Name] {
			add(f.stub(version), f.Name)
		} else {
			add(f.Text, f.Name)
		}
		add("\n", "")
	}
	return b.String(), c
}

var (
	inFunctionRe = regexp.MustCompile(`In function '[^']*\b(atg_[A-Za-z0-9_]+)\(`)
	locRe        = regexp.MustCompile(`(gen_\d+\.cpp):(\d+):\d+: (error|required from here)`)
)

// failingWrappers reads a compiler's diagnostics for one chunk and returns
// the wrappers they point at, and whether some error could not be placed.
func failingWrappers(diag, file string, c chunk) (names []string, unplaced bool) {
	set := map[string]bool{}
	for _, line := range strings.Split(diag, "\n") {
		if m := inFunctionRe.FindStringSubmatch(line); m != nil && strings.HasPrefix(line, file) {
			set[m[1]] = true
		}
		if m := locRe.FindStringSubmatch(line); m != nil && m[1] == file {
			var ln int
			fmt.Sscan(m[2], &ln)
			if ln > 0 && ln < len(c.lines) && c.lines[ln] != "" {
				set[c.lines[ln]] = true
			} else if m[3] == "error" {
				unplaced = true
			}
		}
	}
	if strings.Contains(diag, ": error:") && len(set) == 0 {
		unplaced = true
	}
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, unplaced
}

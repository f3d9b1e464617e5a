package experiments

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// File is a parsed and fully validated experiment file: every profile it
// defines expands into valid runs.
type File struct {
	Path           string // as given to Load
	Name           string // experiment name: the key that links runs to it in the store
	Description    string
	PaperTable     string // e.g. "v6 Table 4"
	DefaultProfile string // the profile `exp run` uses without --profile
	ContentHash    string // sha256 of the file's bytes (hex)

	base     *layer
	incBase  []setting // [base] settings of included files
	profiles map[string]*layer
	order    []string // profile names in file order
	axes     []*axis
	dims     []*dim
}

// layer is the base or one profile: settings applied on top of the defaults.
type layer struct {
	name        string
	description string
	settings    []setting
	inc         []setting // a profile's settings from included files
	seeds       []int64   // nil: inherit
	seedsSrc    source
	replace     map[string]axisValues // profile only: axis path → new values
	src         source
	down        *downSpec // [downstream] (base) or [profiles.NAME.downstream]
}

type setting struct {
	f     field
	value any
	src   source
}

// axis is one swept key: a [grid] entry or one key of a [[zip]] group.
type axis struct {
	f      field
	values []any
	src    source
	dim    *dim
}

type axisValues struct {
	values []any
	src    source
}

// dim is one dimension of the sweep: a grid axis, or a zip group whose axes
// move together. The plan is the cartesian product of the dims in file order.
type dim struct {
	axes []*axis
	zip  int // zip group index, -1 for a grid axis
	src  source
}

func (d *dim) len() int {
	if len(d.axes) == 0 {
		return 0
	}
	return len(d.axes[0].values)
}

// Load reads and validates the experiment file at path.
func Load(path string) (*File, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("experiments: %w", err)
	}
	return Parse(path, src)
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// Parse validates an experiment file's content; path is used in messages
// and to find included files. Every problem is reported as
// "path:line: key: message" (an Errors value), including impossible model,
// data and training values of any profile.
func Parse(path string, src []byte) (*File, error) {
	f, p, err := parseDoc(path, src, false)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write(src)
	for _, inc := range p.includes {
		ipath := filepath.Join(filepath.Dir(path), inc.path)
		b, err := os.ReadFile(ipath)
		if err != nil {
			p.errs.add(inc.src, "include: %v", err)
			continue
		}
		g, ip, err := parseDoc(ipath, b, true)
		if err != nil {
			if es, ok := err.(Errors); ok {
				for _, e := range es {
					p.errs.addErr(e, e.Error())
				}
				continue
			}
			return nil, err
		}
		for _, e := range ip.errs.list {
			p.errs.addErr(e, e.Error())
		}
		f.merge(g)
		fmt.Fprintf(h, "\x00include %s\x00", inc.path)
		h.Write(b)
	}
	f.ContentHash = hex.EncodeToString(h.Sum(nil))
	p.finish()
	if err := p.errs.err(); err != nil {
		return nil, err
	}
	// Expanding every profile validates every run the file can produce.
	names := f.order
	if len(names) == 0 {
		names = []string{"base"}
	}
	for _, name := range names {
		if _, err := f.plan(name, nil, &p.errs); err != nil && p.errs.empty() {
			return nil, err
		}
	}
	if err := p.errs.err(); err != nil {
		return nil, err
	}
	return f, nil
}

// parseDoc decodes one document and walks its keys; a syntax error is
// returned at once, other problems are left in the parser.
func parseDoc(path string, src []byte, included bool) (*File, *parser, error) {
	f := &File{Path: path, profiles: map[string]*layer{}, base: &layer{name: "base"}}
	var raw map[string]any
	md, err := toml.Decode(string(src), &raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			// The decoder sometimes counts an offending newline into the
			// next line; the byte offset is exact.
			line := pe.Position.Line
			if st := pe.Position.Start; st > 0 && st <= len(src) {
				line = 1 + bytes.Count(src[:st], []byte("\n"))
			}
			msg := "syntax error: " + pe.Message
			if pe.LastKey != "" {
				msg += " (last key read: " + pe.LastKey + ")"
			}
			return nil, nil, Errors{{File: path, Line: line, Msg: msg}}
		}
		return nil, nil, Errors{{File: path, Msg: err.Error()}}
	}
	p := &parser{f: f, path: path, src: string(src), raw: raw, lines: keyLines(md, string(src)), bad: map[string]bool{}, included: included}
	p.walk(md.Keys())
	return f, p, nil
}

// merge adds an included file's settings. Precedence, lowest first: the
// included base, the included profile, the file's base, the file's profile
// (then --set, then the swept axes) — what the experiment file says beats
// what it includes.
func (f *File) merge(g *File) {
	f.incBase = append(f.incBase, g.base.settings...)
	if f.base.seeds == nil {
		f.base.seeds, f.base.seedsSrc = g.base.seeds, g.base.seedsSrc
	}
	var order []string
	for _, name := range g.order {
		gl, l := g.profiles[name], f.profiles[name]
		if l == nil {
			l = &layer{name: name, replace: map[string]axisValues{}, src: gl.src, description: gl.description}
			f.profiles[name] = l
			order = append(order, name)
		}
		l.inc = append(l.inc, gl.settings...)
		if l.seeds == nil {
			l.seeds, l.seedsSrc = gl.seeds, gl.seedsSrc
		}
		if l.description == "" {
			l.description = gl.description
		}
	}
	f.order = append(order, f.order...)
}

// Profiles lists the profile names in file order.
func (f *File) Profiles() []string { return append([]string(nil), f.order...) }

// Axes lists the swept keys in plan order (outermost first), e.g.
// ["model.embedding_size", "model.sharing"].
func (f *File) Axes() []string {
	var out []string
	for _, d := range f.dims {
		for _, a := range d.axes {
			out = append(out, a.f.path)
		}
	}
	return out
}

type parser struct {
	f        *File
	path     string
	src      string
	raw      map[string]any
	lines    map[string]int
	bad      map[string]bool // keys already reported; their children are skipped
	errs     errs
	zip      int // current [[zip]] group, -1 before the first
	includes []include
	included bool // an included file: base and profile settings only
	zips     []*dim
	gridN    int
}

type include struct {
	path string
	src  source
}

func (p *parser) source(k toml.Key) source {
	return source{file: p.path, line: p.lines[k.String()], key: displayKey(k)}
}

// displayKey writes a key the way a reader finds it in the file.
func displayKey(k toml.Key) string { return strings.Join(k, ".") }

func (p *parser) fail(k toml.Key, format string, args ...any) {
	p.bad[k.String()] = true
	p.errs.add(p.source(k), format, args...)
}

// value looks k up in the decoded document; [[zip]] resolves to the current
// group.
func (p *parser) value(k toml.Key) any {
	var cur any = p.raw
	for i, part := range k {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
		if i == 0 && part == "zip" {
			if arr, ok := cur.([]map[string]any); ok && p.zip >= 0 && p.zip < len(arr) {
				cur = arr[p.zip]
			}
		}
	}
	return cur
}

func (p *parser) skipped(k toml.Key) bool {
	for i := 1; i < len(k); i++ {
		if p.bad[k[:i].String()] {
			return true
		}
	}
	return false
}

func (p *parser) walk(keys []toml.Key) {
	p.zip = -1
	for _, k := range keys {
		if p.skipped(k) {
			continue
		}
		v := p.value(k)
		if p.included && len(k) >= 1 && k[0] == "downstream" {
			p.fail(k, "not allowed in an included file: [downstream] belongs to the experiment file")
			continue
		}
		if p.included && len(k) == 1 && k[0] != "description" && k[0] != "base" && k[0] != "profiles" {
			p.fail(k, "not allowed in an included file (only description, [base] and [profiles.NAME] settings)")
			continue
		}
		if p.included && len(k) >= 3 && k[0] == "profiles" && k[2] == "grid" {
			p.fail(k, "not allowed in an included file: axes belong to the experiment file")
			continue
		}
		switch k[0] {
		case "include":
			arr, ok := v.([]any)
			if !ok {
				if s, isStr := v.(string); isStr {
					arr = []any{s}
				} else {
					p.fail(k, "want a list of file paths, got %s %s", tomlTypeName(v), show(v))
					continue
				}
			}
			for _, x := range arr {
				s, ok := x.(string)
				if !ok || s == "" {
					p.fail(k, "want file paths (strings), got %s %s", tomlTypeName(x), show(x))
					break
				}
				p.includes = append(p.includes, include{path: s, src: p.source(k)})
			}
		case "name", "description", "paper_table", "default_profile":
			s, ok := v.(string)
			if !ok {
				p.fail(k, "want a string, got %s %s", tomlTypeName(v), show(v))
				continue
			}
			switch k[0] {
			case "name":
				if !nameRE.MatchString(s) {
					p.fail(k, "%q: want lower-case letters, digits, '_', '-' or '.'", s)
				}
				p.f.Name = s
			case "description":
				p.f.Description = s
			case "paper_table":
				p.f.PaperTable = s
			case "default_profile":
				p.f.DefaultProfile = s
			}
		case "base":
			p.layerKey(p.f.base, k, 1)
		case "downstream":
			p.downstreamKey(p.f.base, k, 1)
		case "grid":
			if len(k) == 1 {
				p.wantTable(k, v)
				continue
			}
			p.axisKey(k, 1, nil)
		case "zip":
			if len(k) == 1 {
				if _, ok := p.raw["zip"].([]map[string]any); !ok {
					p.fail(k, "want [[zip]] groups (an array of tables), got %s", tomlTypeName(p.raw["zip"]))
					continue
				}
				p.zip++
				d := &dim{zip: p.zip, src: source{file: p.path, line: nthHeaderLine(p.src, "zip", p.zip), key: "zip"}}
				p.zips = append(p.zips, d)
				continue
			}
			p.axisKey(k, 1, p.zips[p.zip])
		case "profiles":
			if len(k) == 1 {
				p.wantTable(k, v)
				continue
			}
			// [profiles.cpu.grid] alone defines profile "cpu": implicit
			// tables are not in md.Keys, so the profile is made on first use.
			l := p.profile(k[:2])
			if l == nil || len(k) == 2 {
				continue
			}
			if k[2] == "grid" {
				if len(k) == 3 {
					p.wantTable(k, v)
					continue
				}
				p.replaceKey(l, k, 3)
				continue
			}
			if k[2] == "description" && len(k) == 3 {
				s, ok := v.(string)
				if !ok {
					p.fail(k, "want a string, got %s", tomlTypeName(v))
				}
				l.description = s
				continue
			}
			p.layerKey(l, k, 2)
		default:
			p.fail(k, "unknown key (want name, description, paper_table, default_profile, include, [base], [grid], [[zip]], [downstream] or [profiles.NAME])")
		}
	}
}

// profile returns the layer of profile k[1], making it on first use; nil if
// the profile's key is bad.
func (p *parser) profile(k toml.Key) *layer {
	name := k[1]
	if l := p.f.profiles[name]; l != nil {
		return l
	}
	if p.bad[k.String()] || !p.wantTable(k, p.value(k)) {
		return nil
	}
	if !nameRE.MatchString(name) || name == "base" {
		p.fail(k, "profile name %q: want lower-case letters, digits, '_', '-' or '.' (and not \"base\")", name)
		return nil
	}
	l := &layer{name: name, replace: map[string]axisValues{}, src: p.source(k)}
	p.f.profiles[name] = l
	p.f.order = append(p.f.order, name)
	return l
}

func (p *parser) wantTable(k toml.Key, v any) bool {
	if _, ok := v.(map[string]any); !ok {
		p.fail(k, "want a table, got %s %s", tomlTypeName(v), show(v))
		return false
	}
	return true
}

// layerKey handles a key of [base] or [profiles.NAME]; k[at] is the key
// inside the layer.
func (p *parser) layerKey(l *layer, k toml.Key, at int) {
	v := p.value(k)
	if len(k) == at {
		p.wantTable(k, v)
		return
	}
	switch k[at] {
	case "objective":
		if len(k) > at+1 {
			return
		}
		p.setting(l, k, "objective", v)
	case "seeds", "repeats":
		if len(k) > at+1 {
			return
		}
		seeds, err := parseSeeds(k[at], v)
		if err != nil {
			p.fail(k, "%v", err)
			return
		}
		if l.seeds != nil {
			p.fail(k, "seeds are already set at line %d: give seeds or repeats, not both", l.seedsSrc.line)
			return
		}
		l.seeds, l.seedsSrc = seeds, p.source(k)
	case "downstream":
		if l.name == "base" {
			p.fail(k, "[base.downstream]: give [downstream] at the top level")
			return
		}
		p.downstreamKey(l, k, at+1)
	case secModel, secData, secTrain:
		if len(k) == at+1 {
			p.wantTable(k, v)
			return
		}
		if len(k) > at+2 {
			return // inside a value that was already reported
		}
		p.setting(l, k, k[at]+"."+k[at+1], v)
	default:
		p.fail(k, "unknown key (want objective, seeds, repeats, [model], [data] or [train]%s)",
			map[bool]string{true: ", [grid], [downstream] or description", false: ""}[l.name != "base"])
	}
}

func (p *parser) setting(l *layer, k toml.Key, path string, v any) {
	f, err := lookupField(path)
	if err != nil {
		p.fail(k, "%v", err)
		return
	}
	val, err := f.convert(v)
	if err != nil {
		p.fail(k, "%v", err)
		return
	}
	l.settings = append(l.settings, setting{f: f, value: val, src: p.source(k)})
}

func parseSeeds(key string, v any) ([]int64, error) {
	if key == "repeats" {
		n, ok := v.(int64)
		if !ok || n < 1 || n > 1000 {
			return nil, fmt.Errorf("want an integer in 1..1000, got %s %s", tomlTypeName(v), show(v))
		}
		seeds := make([]int64, n)
		for i := range seeds {
			seeds[i] = int64(i + 1)
		}
		return seeds, nil
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("want a list of integers, got %s %s", tomlTypeName(v), show(v))
	}
	if len(arr) == 0 {
		return nil, fmt.Errorf("empty list: want at least one seed")
	}
	seen := map[int64]bool{}
	var seeds []int64
	for _, x := range arr {
		n, ok := x.(int64)
		if !ok || n < 0 {
			return nil, fmt.Errorf("want non-negative integers, got %s %s", tomlTypeName(x), show(x))
		}
		if seen[n] {
			return nil, fmt.Errorf("seed %d is listed twice", n)
		}
		seen[n] = true
		seeds = append(seeds, n)
	}
	return seeds, nil
}

// axisPath turns the key inside [grid] (nested or quoted dotted) into a field path.
func axisPath(k toml.Key, at int) string { return strings.Join(k[at:], ".") }

// axisValues converts an axis's list, reporting the first bad value. With
// unique, a value listed twice is an error too (a [grid] axis); a [[zip]]
// axis may repeat values as long as its group's tuples differ (checkTuples).
func (p *parser) axisValues(k toml.Key, path string, v any, unique bool) (field, []any, bool) {
	if _, ok := v.(map[string]any); ok {
		return field{}, nil, false // a table on the way to the axis key
	}
	f, err := lookupField(path)
	if err != nil {
		p.fail(k, "%v", err)
		return field{}, nil, false
	}
	arr, ok := v.([]any)
	if !ok {
		p.fail(k, "want a list of values to sweep, got %s %s", tomlTypeName(v), show(v))
		return field{}, nil, false
	}
	if len(arr) == 0 {
		p.fail(k, "empty axis: want at least one value")
		return field{}, nil, false
	}
	vals := make([]any, 0, len(arr))
	for i, x := range arr {
		cv, err := f.convert(x)
		if err != nil {
			p.fail(k, "value %d: %v", i+1, err)
			return field{}, nil, false
		}
		if i := indexOf(vals, cv); unique && i >= 0 {
			p.fail(k, "value %v is listed twice", show(cv))
			return field{}, nil, false
		}
		vals = append(vals, cv)
	}
	return f, vals, true
}

// axisKey handles a key under [grid] (d == nil) or [[zip]] (d its group).
func (p *parser) axisKey(k toml.Key, at int, d *dim) {
	v := p.value(k)
	path := axisPath(k, at)
	f, vals, ok := p.axisValues(k, path, v, d == nil)
	if !ok {
		return
	}
	for _, a := range p.f.axes {
		if a.f.path == path {
			p.fail(k, "%s is already swept at line %d", path, a.src.line)
			return
		}
	}
	a := &axis{f: f, values: vals, src: p.source(k)}
	if d == nil {
		d = &dim{zip: -1, src: a.src}
		p.f.dims = append(p.f.dims, d)
	} else if len(d.axes) == 0 {
		p.f.dims = append(p.f.dims, d)
	} else if n := d.len(); n != len(vals) {
		p.fail(k, "has %d values but %s in the same [[zip]] group has %d: zipped axes move together", len(vals), d.axes[0].f.path, n)
		return
	}
	a.dim = d
	d.axes = append(d.axes, a)
	p.f.axes = append(p.f.axes, a)
}

// replaceKey handles [profiles.NAME.grid]: new values for an existing axis.
// Whether they may repeat depends on the axis (grid or zip), which may come
// later in the file: finish checks that.
func (p *parser) replaceKey(l *layer, k toml.Key, at int) {
	v := p.value(k)
	path := axisPath(k, at)
	_, vals, ok := p.axisValues(k, path, v, false)
	if !ok {
		return
	}
	l.replace[path] = axisValues{values: vals, src: p.source(k)}
}

// finish checks what needs the whole file.
func (p *parser) finish() {
	f := p.f
	top := source{file: p.path, line: 1}
	if f.Name == "" && !p.bad["name"] {
		p.errs.add(top, "name: required (the experiment's name in the store)")
	}
	for _, d := range p.zips {
		if len(d.axes) == 0 {
			p.errs.add(d.src, "empty [[zip]] group: want at least one axis")
		}
		p.checkTuples(nil, d)
	}
	for _, name := range f.order {
		l := f.profiles[name]
		reshaped := false
		for _, path := range sortedKeys(l.replace) {
			r := l.replace[path]
			var a *axis
			for _, x := range f.axes {
				if x.f.path == path {
					a = x
				}
			}
			switch {
			case a == nil:
				p.errs.add(r.src, "%s is not a swept axis of [grid] or [[zip]]: a profile rescales an axis, it cannot add one (set a fixed value in [profiles.%s.%s] instead)",
					path, name, strings.SplitN(path, ".", 2)[0])
			case len(r.values) != len(a.values):
				p.errs.add(r.src, "has %d values but the axis at line %d has %d: a profile rescales an axis, it cannot reshape it",
					len(r.values), a.src.line, len(a.values))
				reshaped = true
			case a.dim.zip < 0:
				for i, v := range r.values {
					if indexOf(r.values[:i], v) >= 0 {
						p.errs.add(r.src, "value %v is listed twice", show(v))
						break
					}
				}
			}
		}
		if !reshaped {
			for _, d := range p.zips {
				p.checkTuples(l, d)
			}
		}
		for _, s := range l.settings {
			for _, a := range f.axes {
				if a.f.path == s.f.path {
					p.errs.add(s.src, "%s is swept at line %d: give the profile's values in [profiles.%s.grid]", s.f.path, a.src.line, name)
				}
			}
		}
	}
	for _, s := range f.base.settings {
		for _, a := range f.axes {
			if a.f.path == s.f.path {
				p.errs.add(s.src, "%s is also swept at line %d: a key is either fixed in [base] or swept", s.f.path, a.src.line)
			}
		}
	}
	if f.DefaultProfile != "" && f.profiles[f.DefaultProfile] == nil {
		p.errs.add(source{file: p.path, line: p.lines["default_profile"], key: "default_profile"},
			"%q is not a profile of this file (profiles: %s)", f.DefaultProfile, profileList(f.order))
	}
}

// checkTuples reports a [[zip]] group whose tuples repeat under profile l
// (nil: the file's own values). One axis may repeat a value — objective
// ["nsp", "nsp", "sop"] zipped with optimizer ["adamw", "lamb", "adamw"] is
// three runs — but a whole tuple listed twice is the same run twice. Under a
// profile only groups it replaces values of are checked, and the error
// points at the replacement.
func (p *parser) checkTuples(l *layer, d *dim) {
	src := d.src
	if len(d.axes) > 0 {
		src = d.axes[0].src
	}
	if l != nil {
		replaced := false
		for _, a := range d.axes {
			if r, ok := l.replace[a.f.path]; ok {
				src, replaced = r.src, true
			}
		}
		if !replaced {
			return
		}
	}
	var tuples [][]pick
	for i := 0; i < d.len(); i++ {
		t := p.f.picksAt(l, d, i)
		for j, u := range tuples {
			if samePicks(t, u) {
				at := ""
				if l != nil {
					at = " in profile " + l.name
				}
				p.errs.add(src, "[[zip]] group at line %d%s: tuple %s is listed twice (positions %d and %d): zipped values may repeat within one axis, but each tuple is one run",
					d.src.line, at, showPicks(t), j+1, i+1)
				return
			}
		}
		tuples = append(tuples, t)
	}
}

func samePicks(a, b []pick) bool {
	for i := range a {
		if a[i].value != b[i].value {
			return false
		}
	}
	return true
}

func showPicks(ps []pick) string {
	parts := make([]string, len(ps))
	for i, x := range ps {
		parts[i] = x.f.path + "=" + show(x.value)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// indexOf is the position of v in vals, or -1.
func indexOf(vals []any, v any) int {
	for i, x := range vals {
		if x == v {
			return i
		}
	}
	return -1
}

func profileList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

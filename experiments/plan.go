package experiments

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/reproml/albert/data"
	"github.com/reproml/albert/model"
	"github.com/reproml/albert/train"
)

// ReferenceProfile is the profile every other profile's Scale is measured
// against: the paper's exact configuration and budget.
const ReferenceProfile = "paper"

// Plan is one experiment file expanded under one profile: the runs in order,
// each config once.
type Plan struct {
	Experiment  string // the file's name
	File        string // the file's path
	ContentHash string // sha256 of the file's bytes
	PaperTable  string
	Profile     string
	Runs        []Run
	Duplicates  int // grid points whose config equals an earlier run's: planned once

	downSets []downSet // --set downstream.finetune.KEY=V, applied by PlanDownstream
}

// Run is one resolved training run. Its identity is Hash, over Config()
// only: the experiment, profile, label and scale do not change what is
// trained, so a config swept by two files is trained once.
type Run struct {
	Experiment string
	Profile    string
	Index      int         // position in the plan, before sharding
	Label      string      // e.g. "E=128 sharing=all seed=1"
	Point      []AxisValue // this run's value of each swept axis, in plan order
	Scale      Scale
	Seed       int64
	Objective  data.Objective // none | nsp | sop
	Model      model.Config   // resolved; SentenceHead = objective != none
	Data       data.Config    // VocabSize = Model.VocabSize
	Train      train.Config
	Hash       string // sha256 of ConfigJSON (hex)
	ConfigJSON string // canonical JSON of Config(): sorted keys, no spaces
	// Finetune is set for a fine-tuning run (PlanDownstream): Model and Data
	// are then the pretrained model's, Train the fine-tuning optimizer, and
	// ConfigJSON a FinetuneConfig.
	Finetune *FinetuneRun
}

// AxisValue is one swept key's value in a run.
type AxisValue struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// Scale says how a run differs from the paper's configuration at the same
// grid point, so results of different profiles are never mixed silently.
type Scale struct {
	Reference string             `json:"reference"`         // the profile compared against ("paper"; "base" when the file has none)
	Point     map[string]any     `json:"point,omitempty"`   // the reference's value of each swept axis at this grid point (the paper's table row)
	Factors   map[string]float64 `json:"factors,omitempty"` // ours / reference, for every numeric key that differs
	Changed   []string           `json:"changed,omitempty"` // keys that differ but have no ratio (text, booleans, reference 0)
}

// Exact reports whether the run is the reference configuration itself.
func (s Scale) Exact() bool { return len(s.Factors) == 0 && len(s.Changed) == 0 }

// JSON is the scale as stored with the run (keys sorted).
func (s Scale) JSON() string {
	b, _ := json.Marshal(s) // maps of strings to numbers and scalars always marshal
	return string(b)
}

// RunConfig is everything that decides what a run trains: the hashed part
// of a Run. The trainer can rebuild it from the stored JSON (ParseRunConfig).
type RunConfig struct {
	Objective data.Objective `json:"objective"`
	Seed      int64          `json:"seed"`
	Model     model.Config   `json:"model"`
	Data      data.Config    `json:"data"`
	Train     train.Config   `json:"train"`
}

// Config is the run's hashed configuration.
func (r Run) Config() RunConfig {
	return RunConfig{Objective: r.Objective, Seed: r.Seed, Model: r.Model, Data: r.Data, Train: r.Train}
}

// Params is the model's exact parameter count (model.Config.Params().Model()).
func (r Run) Params() int64 { return r.Model.Params().Model() }

// CanonicalJSON encodes c with sorted keys and no spaces, so the text (and
// the hash) depends on the values only, not on field order anywhere.
func (c RunConfig) CanonicalJSON() (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("experiments: encode config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("experiments: encode config: %w", err)
	}
	b, err = json.Marshal(v) // maps marshal with sorted keys
	if err != nil {
		return "", fmt.Errorf("experiments: encode config: %w", err)
	}
	return string(b), nil
}

// Hash is the hex sha256 of the canonical JSON: the run's identity.
func (c RunConfig) Hash() (string, error) {
	js, err := c.CanonicalJSON()
	if err != nil {
		return "", err
	}
	return hashString(js), nil
}

func hashString(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// ParseRunConfig reads a stored config (results.Run.ConfigJSON) back,
// rejecting unknown keys.
func ParseRunConfig(js string) (RunConfig, error) {
	var c RunConfig
	dec := json.NewDecoder(strings.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return RunConfig{}, fmt.Errorf("experiments: parse run config: %w", err)
	}
	return c, nil
}

// Plan expands the file under profile ("" = the file's default_profile,
// else "cpu") with --set overrides ("model.hidden_size=128"), each typed and
// validated like the file. The error lists every problem.
func (f *File) Plan(profile string, sets []string) (*Plan, error) {
	var e errs
	p, err := f.plan(profile, sets, &e)
	if err != nil {
		return nil, err
	}
	if err := e.err(); err != nil {
		return nil, err
	}
	return p, nil
}

// ResolveProfile names the profile that profile ("" for the default) selects.
func (f *File) ResolveProfile(profile string) (string, error) {
	name, _, err := f.layerFor(profile)
	return name, err
}

func (f *File) layerFor(name string) (string, *layer, error) {
	if name == "" {
		name = f.DefaultProfile
	}
	if name == "" && f.profiles["cpu"] != nil {
		name = "cpu"
	}
	if name == "" && len(f.order) == 0 {
		name = "base"
	}
	if name == "base" && len(f.order) == 0 {
		return name, nil, nil
	}
	if name == "" {
		return "", nil, fmt.Errorf("%s: no --profile given and the file has no default_profile (profiles: %s)", f.Path, profileList(f.order))
	}
	l := f.profiles[name]
	if l == nil {
		return "", nil, fmt.Errorf("%s: no profile %q (profiles: %s)", f.Path, name, profileList(f.order))
	}
	return name, l, nil
}

// pick is one axis's value at a grid point.
type pick struct {
	f     field
	value any
	src   source
}

// overrides are the parsed --set arguments.
type overrides struct {
	settings []setting
	seeds    []int64
	down     []downSet // downstream.finetune.KEY=V
}

func (f *File) parseSets(sets []string, e *errs) overrides {
	var o overrides
	for _, s := range sets {
		src := source{set: s}
		k, v, ok := strings.Cut(s, "=")
		k = strings.TrimSpace(k)
		src.key = k
		if !ok || k == "" {
			e.add(src, "want key=value, e.g. model.hidden_size=128")
			continue
		}
		if k == "seeds" || k == "repeats" {
			seeds, err := parseSeedsArg(k, v)
			if err != nil {
				e.add(src, "%s: %v", k, err)
				continue
			}
			o.seeds = seeds
			continue
		}
		if key, ok := strings.CutPrefix(k, "downstream.finetune."); ok {
			sf, known := finetuneFields[key]
			if !known {
				e.add(src, "%s: unknown fine-tuning key (known: %s)", k, finetuneKeys())
				continue
			}
			fd := field{path: k, kind: sf.Type.Kind()}
			val, err := fd.parse(v)
			if err != nil {
				e.add(src, "%s: %v", k, err)
				continue
			}
			o.down = append(o.down, downSet{key: key, value: val, src: src})
			continue
		}
		fd, err := lookupField(k)
		if err != nil {
			e.add(src, "%s: %v", k, err)
			continue
		}
		val, err := fd.parse(v)
		if err != nil {
			e.add(src, "%s: %v", k, err)
			continue
		}
		swept := false
		for _, a := range f.axes {
			if a.f.path == k {
				e.add(src, "%s is swept by the file (%s:%d); --set cannot fix a swept key", k, f.Path, a.src.line)
				swept = true
			}
		}
		if !swept {
			o.settings = append(o.settings, setting{f: fd, value: val, src: src})
		}
	}
	return o
}

func parseSeedsArg(key, v string) ([]int64, error) {
	v = strings.Trim(strings.TrimSpace(v), "[]")
	if key == "repeats" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("want an integer, got %q", v)
		}
		return parseSeeds("repeats", n)
	}
	var arr []any
	for _, part := range strings.Split(v, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(part), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("want a comma-separated list of integers, got %q", v)
		}
		arr = append(arr, n)
	}
	return parseSeeds("seeds", arr)
}

// points lists every grid point (one pick per axis), first dim outermost.
func (f *File) points(l *layer) [][]pick {
	pts := [][]pick{nil}
	for _, d := range f.dims {
		var next [][]pick
		for _, pt := range pts {
			for i := 0; i < d.len(); i++ {
				np := append(append([]pick(nil), pt...), f.picksAt(l, d, i)...)
				next = append(next, np)
			}
		}
		pts = next
	}
	return pts
}

func (f *File) picksAt(l *layer, d *dim, i int) []pick {
	var out []pick
	for _, a := range d.axes {
		vals, src := a.values, a.src
		if l != nil {
			if r, ok := l.replace[a.f.path]; ok {
				vals, src = r.values, r.src
			}
		}
		out = append(out, pick{f: a.f, value: vals[i], src: src})
	}
	return out
}

// build applies defaults, preset, the included base and profile, the file's
// base and profile, overrides and the grid point, in that order, and records
// where each key was last set.
func (f *File) build(l *layer, o overrides, pt []pick) (cfgs, map[string]source) {
	prov := map[string]source{}
	layers := [][]setting{f.incBase}
	if l != nil {
		layers = append(layers, l.inc)
	}
	layers = append(layers, f.base.settings)
	if l != nil {
		layers = append(layers, l.settings)
	}
	layers = append(layers, o.settings)
	preset, presetSrc := "", source{}
	for _, ss := range layers {
		for _, s := range ss {
			if s.f.path == "model.preset" {
				preset, presetSrc = s.value.(string), s.src
			}
		}
	}
	for _, p := range pt {
		if p.f.path == "model.preset" {
			preset, presetSrc = p.value.(string), p.src
		}
	}
	c := cfgs{objective: string(data.ObjectiveSOP), data: data.DefaultConfig(), train: train.DefaultConfig()}
	if preset != "" {
		ps, _ := model.LookupPreset(preset) // the enum check already vetted the name
		c.model = unresolve(ps.Config)
		prov["model.preset"] = presetSrc
	}
	for _, ss := range layers {
		for _, s := range ss {
			c.set(s.f, s.value)
			prov[s.f.path] = s.src
		}
	}
	for _, p := range pt {
		c.set(p.f, p.value)
		prov[p.f.path] = p.src
	}
	return c, prov
}

// unresolve clears the preset fields that are the paper's derived defaults
// (heads H/64, FFN 4H), so they follow an overridden hidden_size. Fields a
// preset sets against the rule (ALBERT-xlarge's 16 heads) stay.
func unresolve(c model.Config) model.Config {
	if c.NumHeads == max(1, c.HiddenSize/64) {
		c.NumHeads = 0
	}
	if c.IntermediateSize == 4*c.HiddenSize {
		c.IntermediateSize = 0
	}
	return c
}

func (f *File) plan(profile string, sets []string, e *errs) (*Plan, error) {
	name, l, err := f.layerFor(profile)
	if err != nil {
		return nil, err
	}
	o := f.parseSets(sets, e)
	if !e.empty() {
		return nil, nil
	}
	seeds := []int64{1}
	switch {
	case o.seeds != nil:
		seeds = o.seeds
	case l != nil && l.seeds != nil:
		seeds = l.seeds
	case f.base.seeds != nil:
		seeds = f.base.seeds
	}
	refName, ref := ReferenceProfile, f.profiles[ReferenceProfile]
	if ref == nil {
		refName = "base"
	}
	plan := &Plan{Experiment: f.Name, File: f.Path, ContentHash: f.ContentHash, PaperTable: f.PaperTable, Profile: name, downSets: o.down}
	pts, refPts := f.points(l), f.points(ref)
	seen := map[string]bool{}
	for _, seed := range seeds {
		for i, pt := range pts {
			c, prov := f.build(l, o, pt)
			run, ok := f.finish(name, seed, c, prov, pt, e)
			if !ok {
				continue
			}
			rc, _ := f.build(ref, overrides{}, refPts[i])
			run.Scale = scaleOf(refName, c, rc, refPts[i])
			if seen[run.Hash] {
				plan.Duplicates++
				continue
			}
			seen[run.Hash] = true
			run.Index = len(plan.Runs)
			plan.Runs = append(plan.Runs, run)
		}
	}
	return plan, nil
}

// finish resolves and validates one run; problems go to e, attributed to
// the key that set the offending value.
func (f *File) finish(profile string, seed int64, c cfgs, prov map[string]source, pt []pick, e *errs) (Run, bool) {
	label := labelOf(pt, seed)
	fail := func(src source, msg string) {
		err := &Error{File: src.file, Line: src.line, Set: src.set, Key: src.key,
			Msg: fmt.Sprintf("%s (profile %s, run %q)", msg, profile, label)}
		e.addErr(err, src.String()+msg)
	}
	fallback := func(sec string) source {
		if s, ok := prov["model.preset"]; ok && sec == secModel {
			return s
		}
		return source{file: f.Path, line: 1, key: sec}
	}
	attribute := func(sec, msg string) source {
		for _, tok := range identRE.FindAllString(msg, -1) {
			if s, ok := prov[sec+"."+tok]; ok {
				return s
			}
		}
		return fallback(sec)
	}
	ok := true
	if s, set := prov["data.vocab_size"]; set && c.data.VocabSize != c.model.VocabSize {
		fail(s, fmt.Sprintf("data.vocab_size = %d differs from model.vocab_size = %d: the tokenizer's vocabulary is the model's (leave data.vocab_size out to follow the model)",
			c.data.VocabSize, c.model.VocabSize))
		ok = false
	}
	c.data.VocabSize = c.model.VocabSize
	obj := data.Objective(c.objective)
	c.model.SentenceHead = obj != data.ObjectiveNone
	c.model = c.model.Resolve()
	if err := c.model.Validate(); err != nil {
		fail(attribute(secModel, err.Error()), "model: "+err.Error())
		ok = false
	}
	if err := c.data.Validate(); err != nil {
		msg := strings.TrimPrefix(err.Error(), "data: ")
		fail(attribute(secData, msg), "data: "+msg)
		ok = false
	}
	if err := c.train.Validate(); err != nil {
		fail(attribute(secTrain, err.Error()), "train: "+err.Error())
		ok = false
	}
	if c.model.MaxPositions > 0 && c.data.SeqLen > c.model.MaxPositions {
		src, set := prov["data.seq_len"]
		if !set {
			src = attribute(secModel, "max_positions")
		}
		fail(src, fmt.Sprintf("data.seq_len = %d exceeds model.max_positions = %d", c.data.SeqLen, c.model.MaxPositions))
		ok = false
	}
	if !ok {
		return Run{}, false
	}
	run := Run{Experiment: f.Name, Profile: profile, Label: label, Seed: seed, Objective: obj,
		Model: c.model, Data: c.data, Train: c.train.Normalize()} // fp32 hashes as before precision existed
	for _, p := range pt {
		run.Point = append(run.Point, AxisValue{Key: p.f.path, Value: p.value})
	}
	js, err := run.Config().CanonicalJSON()
	if err != nil {
		fail(source{file: f.Path, line: 1}, err.Error())
		return Run{}, false
	}
	run.ConfigJSON, run.Hash = js, hashString(js)
	return run, true
}

var identRE = regexp.MustCompile(`[a-z][a-z0-9_]*`)

// shortNames abbreviate axes in labels the way the paper's tables do.
var shortNames = map[string]string{
	"model.vocab_size":        "V",
	"model.embedding_size":    "E",
	"model.hidden_size":       "H",
	"model.num_layers":        "L",
	"model.num_heads":         "heads",
	"model.intermediate_size": "FFN",
	"model.hidden_dropout":    "dropout",
	"model.attention_dropout": "attn_dropout",
	"model.preset":            "model",
	"data.seq_len":            "seq",
	"train.steps":             "steps",
	"train.batch_size":        "batch",
}

func labelOf(pt []pick, seed int64) string {
	var parts []string
	for _, p := range pt {
		name, ok := shortNames[p.f.path]
		if !ok {
			_, name, _ = strings.Cut(p.f.path, ".")
			if name == "" {
				name = p.f.path
			}
		}
		parts = append(parts, fmt.Sprintf("%s=%v", name, p.value))
	}
	parts = append(parts, fmt.Sprintf("seed=%d", seed))
	return strings.Join(parts, " ")
}

// scaleOf compares a run's configuration with the reference's at the same
// grid point. Both are resolved the way finish resolves them.
func scaleOf(refName string, c, ref cfgs, refPt []pick) Scale {
	norm := func(x cfgs) cfgs {
		x.data.VocabSize = x.model.VocabSize
		x.model.SentenceHead = x.objective != string(data.ObjectiveNone)
		x.model = x.model.Resolve()
		return x
	}
	c, ref = norm(c), norm(ref)
	s := Scale{Reference: refName, Point: map[string]any{}, Factors: map[string]float64{}}
	for _, p := range refPt {
		s.Point[p.f.path] = p.value
	}
	paths := sortedKeys(fields)
	for _, path := range paths {
		if path == "model.preset" {
			continue
		}
		a, b := c.get(path), ref.get(path)
		if reflect.DeepEqual(a, b) {
			continue
		}
		fa, okA := toFloat(a)
		fb, okB := toFloat(b)
		if okA && okB && fb != 0 {
			s.Factors[path] = round4(fa / fb)
		} else {
			s.Changed = append(s.Changed, path)
		}
	}
	if len(s.Point) == 0 {
		s.Point = nil
	}
	if len(s.Factors) == 0 {
		s.Factors = nil
	}
	sort.Strings(s.Changed)
	return s
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// round4 keeps four significant digits: enough to read, stable to store.
func round4(x float64) float64 {
	if x == 0 || math.IsInf(x, 0) || math.IsNaN(x) {
		return x
	}
	d := math.Pow(10, 3-math.Floor(math.Log10(math.Abs(x))))
	return math.Round(x*d) / d
}

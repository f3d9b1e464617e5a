// Package table puts our runs next to the paper: for each ablation the
// paper's table layout with, per cell, the paper's value, ours (mean ± std
// over seeds, n, and the eval set's standard error) and Δ, the profile and
// scale of our runs, and verdicts on the paper's qualitative claims by one
// rule (Rule). Everything is read from the results store;
// the claim checkers (claims.go) take plain numbers.
package table

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/reproml/albert/results"
)

// ErrNoRuns is returned (wrapped) for an ablation with no runs in the store.
var ErrNoRuns = errors.New("no runs")

// RunData is one run with its parsed configuration, scale and final evals.
type RunData struct {
	results.Run
	Config map[string]any     // parsed config_json
	Scale  Scale              // parsed scale_json
	Evals  map[string]float64 // final evals, by name
	Trans  []results.Transition
	// Finetunes are the fine-tuning runs started from this run's checkpoint
	// (every task, stand-ins included, every status): the paper's downstream
	// columns are read from them (finetuned.go).
	Finetunes []results.Finetune
}

// Scale mirrors experiments.Scale as stored in runs.scale_json.
type Scale struct {
	Reference string             `json:"reference"`
	Point     map[string]any     `json:"point"`
	Factors   map[string]float64 `json:"factors"`
	Changed   []string           `json:"changed"`
}

// Exact reports whether the run is at the reference (paper) configuration.
func (s Scale) Exact() bool { return len(s.Factors) == 0 && len(s.Changed) == 0 }

// shortAxis is the short name of the factors a reader cares about.
var shortAxis = []struct{ key, short string }{
	{"model.hidden_size", "H"},
	{"model.num_layers", "L"},
	{"model.embedding_size", "E"},
	{"model.vocab_size", "V"},
	{"data.seq_len", "seq"},
	{"train.batch_size", "batch"},
	{"train.steps", "steps"},
}

func trimFloat(f float64) string { return fmt.Sprintf("%.4g", f) }

// ConfigValue reads a dotted path ("model.embedding_size", "objective")
// from a parsed config.
func ConfigValue(cfg map[string]any, path string) (any, bool) {
	var cur any = cfg
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// PaperValue is the paper's value of a config key at this run's grid point:
// the scale's point if the key was swept; else the run's own value undone
// by its scale factor; unknown if the key differs from the paper without a
// ratio. Numbers are float64.
func (r RunData) PaperValue(path string) (any, bool) {
	if v, ok := r.Scale.Point[path]; ok {
		return normalize(v), true
	}
	for _, c := range r.Scale.Changed {
		if c == path {
			return nil, false
		}
	}
	v, ok := ConfigValue(r.Config, path)
	if !ok {
		return nil, false
	}
	v = normalize(v)
	if f, ok := r.Scale.Factors[path]; ok {
		x, isNum := v.(float64)
		if !isNum || f == 0 {
			return nil, false
		}
		return x / f, true
	}
	return v, true
}

func normalize(v any) any {
	switch x := v.(type) {
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case float32:
		return float64(x)
	case json.Number:
		f, err := x.Float64()
		if err == nil {
			return f
		}
	}
	return v
}

// sameValue compares a paper value with a match value: numbers within a
// relative 1e-3 (scale factors are stored with four significant digits),
// everything else exactly.
func sameValue(a, b any) bool {
	a, b = normalize(a), normalize(b)
	x, ok1 := a.(float64)
	y, ok2 := b.(float64)
	if ok1 && ok2 {
		if x == y {
			return true
		}
		return math.Abs(x-y) <= 1e-3*math.Max(math.Abs(x), math.Abs(y))
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// Matches reports whether the run reproduces a paper row or series: every
// key of match has the paper's value at the run's grid point. An empty
// match matches nothing.
func (r RunData) Matches(match map[string]any) bool {
	if len(match) == 0 {
		return false
	}
	for k, want := range match {
		got, ok := r.PaperValue(k)
		if !ok || !sameValue(got, want) {
			return false
		}
	}
	return true
}

// PointLabel names the run's grid point in paper terms ("E=128 sharing=all"),
// for runs that match no paper row.
func (r RunData) PointLabel() string {
	var keys []string
	for k := range r.Scale.Point {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		short := k
		for _, a := range shortAxis {
			if a.key == k {
				short = a.short
			}
		}
		if i := strings.LastIndex(short, "."); i >= 0 {
			short = short[i+1:]
		}
		parts = append(parts, fmt.Sprintf("%s=%v", short, r.Scale.Point[k]))
	}
	if len(parts) == 0 {
		return r.Name
	}
	return strings.Join(parts, " ")
}

// LoadRuns reads the runs of the latest version of experiment name (every
// status), with their configs, scales and evals. No experiment of that name,
// or one with no runs, wraps ErrNoRuns.
func LoadRuns(s *results.Store, name string) ([]RunData, error) {
	runs, _, err := loadRuns(s, name)
	return runs, err
}

func loadRuns(s *results.Store, name string) ([]RunData, results.Experiment, error) {
	var exp results.Experiment
	exps, err := s.Experiments()
	if err != nil {
		return nil, exp, fmt.Errorf("table: %s: %w", name, err)
	}
	var latest int64
	for _, e := range exps {
		if e.Name == name && e.ID > latest {
			latest, exp = e.ID, e
		}
	}
	if latest == 0 {
		return nil, exp, fmt.Errorf("table: experiment %q is not in %s: %w (plan and train it with `exp run ablations/%s.toml`)", name, s.Path(), ErrNoRuns, name)
	}
	runs, err := s.Runs(results.RunFilter{ExperimentID: latest, Kind: results.KindPretrain})
	if err != nil {
		return nil, exp, fmt.Errorf("table: %s: %w", name, err)
	}
	if len(runs) == 0 {
		return nil, exp, fmt.Errorf("table: experiment %q has %w in %s", name, ErrNoRuns, s.Path())
	}
	fts, err := s.Finetunes(results.FinetuneFilter{})
	if err != nil {
		return nil, exp, fmt.Errorf("table: %s: %w", name, err)
	}
	fromRun := map[int64][]results.Finetune{}
	for _, f := range fts {
		if f.Init == results.InitPretrained {
			fromRun[f.PretrainRunID] = append(fromRun[f.PretrainRunID], f)
		}
	}
	out := make([]RunData, 0, len(runs))
	for _, r := range runs {
		d := RunData{Run: r, Finetunes: fromRun[r.ID]}
		if err := json.Unmarshal([]byte(r.ConfigJSON), &d.Config); err != nil {
			return nil, exp, fmt.Errorf("table: run %d config: %w", r.ID, err)
		}
		if r.ScaleJSON != "" {
			if err := json.Unmarshal([]byte(r.ScaleJSON), &d.Scale); err != nil {
				return nil, exp, fmt.Errorf("table: run %d scale: %w", r.ID, err)
			}
		}
		if d.Evals, err = s.Evals(r.ID); err != nil {
			return nil, exp, fmt.Errorf("table: %w", err)
		}
		if d.Trans, err = s.Transitions(r.ID); err != nil {
			return nil, exp, fmt.Errorf("table: %w", err)
		}
		out = append(out, d)
	}
	return out, exp, nil
}

// PlannedRunData is a run that is only planned, from its config and scale
// JSON, for matching it against the paper's rows (Matches).
func PlannedRunData(configJSON, scaleJSON string) (RunData, error) {
	var d RunData
	if err := json.Unmarshal([]byte(configJSON), &d.Config); err != nil {
		return d, fmt.Errorf("table: planned run config: %w", err)
	}
	if scaleJSON != "" {
		if err := json.Unmarshal([]byte(scaleJSON), &d.Scale); err != nil {
			return d, fmt.Errorf("table: planned run scale: %w", err)
		}
	}
	return d, nil
}

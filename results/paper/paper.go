// Package paper holds the ALBERT paper's reference numbers as data
// (paper.toml, embedded): every cell of v6 Tables 1–8, 11–13 and v1 Tables
// 1–2, the figures' series, the paper version and source of each table, the
// known inconsistencies between tables, and the parameter-counting
// convention. The numbers come from shared/reference/albert-paper.md.
package paper

import (
	_ "embed"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
)

//go:embed paper.toml
var paperTOML []byte

// Reference is the whole data file.
type Reference struct {
	Meta            Meta            `toml:"meta"`
	Tables          []Table         `toml:"tables"`
	Figures         []Figure        `toml:"figures"`
	Inconsistencies []Inconsistency `toml:"inconsistencies"`
}

// Meta is the paper and the conventions of the file.
type Meta struct {
	Paper            string `toml:"paper"`
	V6               string `toml:"v6"`
	V1               string `toml:"v1"`
	ParamsConvention string `toml:"params_convention"`
	DownstreamNote   string `toml:"downstream_note"`
}

// Table is one table of the paper.
type Table struct {
	ID         string   `toml:"id"`      // e.g. "v6-table3"
	Version    string   `toml:"version"` // "v1" or "v6"
	Number     string   `toml:"number"`  // e.g. "Table 3"
	Caption    string   `toml:"caption"`
	Source     string   `toml:"source"`     // the reference sheet's source tags
	Confidence string   `toml:"confidence"` // ✔✔, ✔, ≈
	Ablation   string   `toml:"ablation"`   // the experiment that reproduces it, if any
	Columns    []string `toml:"columns"`    // column keys in the paper's order
	Notes      []string `toml:"notes"`
	Rows       []Row    `toml:"rows"`
}

// Row is one row of a table.
type Row struct {
	Label       string             `toml:"label"`
	Preset      string             `toml:"preset"`       // model preset of the row's configuration (model.LookupPreset)
	ParamsExact int64              `toml:"params_exact"` // exact count under the declared convention; 0 if not given
	Match       map[string]any     `toml:"match"`        // run-config path → the paper's value: which runs reproduce the row
	Text        map[string]string  `toml:"text"`         // non-numeric cells
	Values      map[string]float64 `toml:"values"`       // numeric cells, by column key, as printed
	Note        string             `toml:"note"`
}

// Figure is one figure of the paper; curve values were not transcribed.
type Figure struct {
	ID         string   `toml:"id"`
	Version    string   `toml:"version"`
	Number     string   `toml:"number"`
	Caption    string   `toml:"caption"`
	Source     string   `toml:"source"`
	Confidence string   `toml:"confidence"`
	Ablation   string   `toml:"ablation"`
	Panels     []string `toml:"panels"`
	Series     []Series `toml:"series"`
}

// Series is one curve of a figure and the runs that draw it.
type Series struct {
	Label string         `toml:"label"`
	Match map[string]any `toml:"match"`
}

// Inconsistency is a place where the paper reports one thing twice,
// differently, or a number no convention reproduces.
type Inconsistency struct {
	ID    string    `toml:"id"`
	What  string    `toml:"what"`
	Exact int64     `toml:"exact"` // the exact count, for parameter-count inconsistencies
	Cells []CellRef `toml:"cells"`
}

// CellRef names one printed value: a table cell, or a place in the text.
type CellRef struct {
	Table   string  `toml:"table"`
	Row     string  `toml:"row"`
	Column  string  `toml:"column"`
	Where   string  `toml:"where"`   // for values printed outside a table
	Value   float64 `toml:"value"`   // as recorded in the table data
	Printed string  `toml:"printed"` // the printed text, when it differs from Value (a typo)
}

// ColumnLabel is how the paper heads a column key.
func ColumnLabel(key string) string {
	if l, ok := columnLabels[key]; ok {
		return l
	}
	return key
}

var columnLabels = map[string]string{
	"params":     "Params (M)",
	"layers":     "Layers",
	"hidden":     "Hidden",
	"embedding":  "E",
	"speedup":    "Speedup",
	"steps_k":    "Steps (k)",
	"time_h":     "Time (h)",
	"squad11_f1": "SQuAD1.1 F1",
	"squad11_em": "SQuAD1.1 EM",
	"squad20_f1": "SQuAD2.0 F1",
	"squad20_em": "SQuAD2.0 EM",
	"mnli":       "MNLI",
	"sst2":       "SST-2",
	"race":       "RACE",
	"avg":        "Avg",
	"mlm":        "MLM",
	"nsp":        "NSP",
	"sop":        "SOP",
}

// Downstream reports whether a column key is a fine-tuning result: filled
// from fine-tuning runs on the official tasks when the store has them
// (results/table), never from a stand-in.
func Downstream(key string) bool {
	switch key {
	case "squad11_f1", "squad11_em", "squad20_f1", "squad20_em", "mnli", "sst2", "race", "avg":
		return true
	}
	return false
}

var (
	loadOnce sync.Once
	loaded   *Reference
	loadErr  error
)

// Load parses and checks the embedded data once; later calls return the
// same value, which callers must not modify.
func Load() (*Reference, error) {
	loadOnce.Do(func() { loaded, loadErr = Parse(paperTOML) })
	return loaded, loadErr
}

// MustLoad is Load for callers that treat a broken embedded file as a
// programming error (it is checked by this package's tests).
func MustLoad() *Reference {
	r, err := Load()
	if err != nil {
		panic(err)
	}
	return r
}

// Parse reads a reference file and checks it: unique ids, known column
// keys, values only for declared columns, and every inconsistency cell
// pointing at a cell that holds the recorded value.
func Parse(b []byte) (*Reference, error) {
	var r Reference
	md, err := toml.Decode(string(b), &r)
	if err != nil {
		return nil, fmt.Errorf("paper: parse: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("paper: parse: unknown keys %v", und)
	}
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("paper: %w", err)
	}
	return &r, nil
}

func (r *Reference) check() error {
	ids := map[string]bool{}
	abl := map[string]string{}
	for _, t := range r.Tables {
		if t.ID == "" || ids[t.ID] {
			return fmt.Errorf("table %q: empty or duplicate id", t.ID)
		}
		ids[t.ID] = true
		if t.Version != "v1" && t.Version != "v6" {
			return fmt.Errorf("table %s: version %q, want v1 or v6", t.ID, t.Version)
		}
		if t.Ablation != "" {
			if prev, ok := abl[t.Ablation]; ok {
				return fmt.Errorf("table %s: ablation %q already reproduced by %s", t.ID, t.Ablation, prev)
			}
			abl[t.Ablation] = t.ID
		}
		cols := map[string]bool{}
		for _, c := range t.Columns {
			if _, ok := columnLabels[c]; !ok {
				return fmt.Errorf("table %s: unknown column %q", t.ID, c)
			}
			cols[c] = true
		}
		labels := map[string]bool{}
		for _, row := range t.Rows {
			if row.Label == "" || labels[row.Label] {
				return fmt.Errorf("table %s: empty or duplicate row label %q", t.ID, row.Label)
			}
			labels[row.Label] = true
			for k := range row.Values {
				if !cols[k] {
					return fmt.Errorf("table %s row %q: value for undeclared column %q", t.ID, row.Label, k)
				}
			}
		}
	}
	for _, f := range r.Figures {
		if f.ID == "" || ids[f.ID] {
			return fmt.Errorf("figure %q: empty or duplicate id", f.ID)
		}
		ids[f.ID] = true
	}
	for _, in := range r.Inconsistencies {
		if len(in.Cells) < 1 {
			return fmt.Errorf("inconsistency %s: no cells", in.ID)
		}
		for _, c := range in.Cells {
			if c.Table == "" {
				if c.Where == "" {
					return fmt.Errorf("inconsistency %s: a cell names neither a table nor a place", in.ID)
				}
				continue
			}
			t, err := r.Table(c.Table)
			if err != nil {
				return fmt.Errorf("inconsistency %s: %w", in.ID, err)
			}
			row, ok := t.Row(c.Row)
			if !ok {
				return fmt.Errorf("inconsistency %s: table %s has no row %q", in.ID, c.Table, c.Row)
			}
			v, ok := row.Values[c.Column]
			if !ok || v != c.Value {
				return fmt.Errorf("inconsistency %s: %s / %q / %s holds %v, recorded %v", in.ID, c.Table, c.Row, c.Column, v, c.Value)
			}
		}
	}
	return nil
}

// Table returns the table with the given id ("v6-table3").
func (r *Reference) Table(id string) (*Table, error) {
	for i := range r.Tables {
		if r.Tables[i].ID == id {
			return &r.Tables[i], nil
		}
	}
	return nil, fmt.Errorf("no paper table %q", id)
}

// ForAblation returns the table an ablation reproduces ("sharing" → v6
// Table 4), or nil if it has none (e.g. "transitions", a figure).
func (r *Reference) ForAblation(name string) *Table {
	for i := range r.Tables {
		if r.Tables[i].Ablation == name {
			return &r.Tables[i]
		}
	}
	return nil
}

// FigureFor returns the figure an ablation reproduces, or nil.
func (r *Reference) FigureFor(name string) *Figure {
	for i := range r.Figures {
		if r.Figures[i].Ablation == name {
			return &r.Figures[i]
		}
	}
	return nil
}

// Ablations lists the ablation names that have a table or figure, sorted.
func (r *Reference) Ablations() []string {
	seen := map[string]bool{}
	for _, t := range r.Tables {
		if t.Ablation != "" {
			seen[t.Ablation] = true
		}
	}
	for _, f := range r.Figures {
		if f.Ablation != "" {
			seen[f.Ablation] = true
		}
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// InconsistenciesOf lists the inconsistencies that name a cell of table id.
func (r *Reference) InconsistenciesOf(id string) []Inconsistency {
	var out []Inconsistency
	for _, in := range r.Inconsistencies {
		for _, c := range in.Cells {
			if c.Table == id {
				out = append(out, in)
				break
			}
		}
	}
	return out
}

// Title is e.g. "v6 Table 3".
func (t *Table) Title() string { return t.Version + " " + t.Number }

// Title is e.g. "v6 Figure 1".
func (f *Figure) Title() string { return f.Version + " " + f.Number }

// Row returns the row with the given label.
func (t *Table) Row(label string) (Row, bool) {
	for _, r := range t.Rows {
		if r.Label == label {
			return r, true
		}
	}
	return Row{}, false
}

// Value returns a numeric cell.
func (r Row) Value(col string) (float64, bool) {
	v, ok := r.Values[col]
	return v, ok
}

// ParamsMatch says how a printed count (in millions) relates to the exact
// count of the row's configuration.
type ParamsMatch string

const (
	ParamsRounds         ParamsMatch = "rounds"            // round(exact / 1e6) = printed
	ParamsRoundsNoPooler ParamsMatch = "rounds w/o pooler" // only without the pooler (H² + H)
	ParamsNoConvention   ParamsMatch = "no convention"     // neither
	ParamsUnknown        ParamsMatch = ""                  // the row gives no printed or exact count
)

// ParamsMatch compares the row's printed "params" with ParamsExact; hidden
// is H (for the pooler, H² + H).
func (r Row) ParamsMatch(hidden int64) ParamsMatch {
	printed, ok := r.Values["params"]
	if !ok || r.ParamsExact == 0 {
		return ParamsUnknown
	}
	round := func(n int64) float64 { return math.Round(float64(n) / 1e6) }
	switch {
	case round(r.ParamsExact) == printed:
		return ParamsRounds
	case hidden > 0 && round(r.ParamsExact-hidden*hidden-hidden) == printed:
		return ParamsRoundsNoPooler
	}
	return ParamsNoConvention
}

// FormatValue prints a cell the way the paper does: scores with one
// decimal, counts and sizes as integers.
func FormatValue(col string, v float64) string {
	switch col {
	case "params", "layers", "hidden", "embedding", "steps_k", "time_h":
		if v == math.Trunc(v) {
			return fmt.Sprintf("%.0f", v)
		}
	}
	return fmt.Sprintf("%.1f", v)
}

// MatchString renders a match map deterministically ("model.sharing=all").
func MatchString(m map[string]any) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, m[k]))
	}
	return strings.Join(parts, " ")
}

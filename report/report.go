// Package report builds `exp report`'s page: one self-contained HTML file
// with, for every ablation in the store in the paper's order, the paper's
// table beside ours (results/table's model, rendered as HTML), each claim's
// verdict, the figures (plots, inlined as PNG data URIs) with the paper's
// values where it has them, the scale of the runs, the runs that diverged
// or failed; then what was not run, with the command that would run it,
// and the provenance of the numbers. The page needs no network and no
// JavaScript.
package report

import (
	"bytes"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/reproml/albert/plots"
	"github.com/reproml/albert/results"
	"github.com/reproml/albert/results/table"
)

// PlannedRun is one run an experiment file plans under a profile.
type PlannedRun struct {
	Profile    string
	Hash       string // config hash, as stored in runs.config_hash
	Label      string
	ConfigJSON string
	ScaleJSON  string
}

// Options tune Build.
type Options struct {
	Table table.Options
	// Plan re-plans an experiment file (cmd/exp wires the experiments
	// package): its profiles, the default first, and the runs of each. Nil
	// lists only what the store shows (ablations without runs, paper rows
	// without a run).
	Plan func(file string) (profiles []string, runs []PlannedRun, err error)
	// Now stamps the page (time.Now when nil).
	Now func() time.Time
}

// Page is the whole report.
type Page struct {
	DB        string
	Generated string
	Sections  []Section
	NotRun    []NotRun
	Prov      []ProvRow
	NoProv    int // runs without a provenance record
	Shared    []string
	Missing   []string // ablations with no runs, in the paper's order
}

// Section is one ablation.
type Section struct {
	Ablation string
	Title    string
	Parts    table.HTMLParts
	Scales   []string
	Figures  []Figure
	Lost     []LostRun
	Runs     int
	Done     int
	Verdicts map[string]int // by CSS class
}

// Figure is one inlined figure.
type Figure struct {
	Name          string
	Title         string
	Caption       string
	Src           template.URL // data:image/png;base64,…
	Width, Height int          // CSS pixels: the figure's size in inches at 96 px per inch
}

// FigureDPI is the resolution of the inlined figures: twice the CSS pixel
// density, so text stays sharp on high-density screens and when zoomed.
const FigureDPI = 192

// LostRun is a run that diverged or failed.
type LostRun struct {
	ID                   int64
	Name, Status, Reason string
	Seed                 int64
	Step, Total          int
	Attempts             int
}

// NotRun is one thing not run, with the command that would run it.
type NotRun struct {
	Ablation string
	What     string
	Command  string
}

// ProvRow is the runs that share one provenance.
type ProvRow struct {
	Commit, Dirty, Go, Gotch, Libtorch, CUDA, BLAS, Host, Device string
	BLASShort                                                    string // the libraries' file names (BLAS in full on hover)
	Threads                                                      int
	Runs                                                         int
	Seconds                                                      string // total, and the range per run
	From, To                                                     string
}

//go:embed page.html.tmpl
var pageTmpl string

var tmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"verdictClass": table.VerdictClass,
}).Parse(pageTmpl))

// Build reads every ablation of names (all, in the paper's order, when
// empty) from the store.
func Build(s *results.Store, names []string, opt Options) (*Page, error) {
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	p := &Page{DB: s.Path(), Generated: now().UTC().Format("2006-01-02 15:04 UTC"), Shared: table.Shared}
	named := len(names) > 0
	if !named {
		names = append(append([]string(nil), table.Ablations...), table.Downstream)
	}
	for _, name := range orderByPaper(names) {
		var rep *table.Report
		var err error
		if name == table.Downstream {
			rep, err = table.BuildDownstream(s)
		} else {
			rep, err = table.Build(s, name, opt.Table)
		}
		if errors.Is(err, table.ErrNoRuns) {
			p.Missing = append(p.Missing, name)
			nr := notRunAtAll(name, opt)
			if name == table.Downstream {
				nr.What = "no fine-tuning runs in the database"
			}
			p.NotRun = append(p.NotRun, nr)
			continue
		}
		if err != nil {
			return nil, err
		}
		sec, err := section(s, rep)
		if err != nil {
			return nil, err
		}
		p.Sections = append(p.Sections, sec)
		if name == table.Downstream {
			continue // fine-tuning runs are planned from the pretraining runs they start from
		}
		nr, err := notRun(rep, opt)
		if err != nil {
			return nil, err
		}
		p.NotRun = append(p.NotRun, nr...)
	}
	if len(p.Sections) == 0 {
		return nil, fmt.Errorf("report: %s has no runs of %s: %w", s.Path(), strings.Join(names, ", "), table.ErrNoRuns)
	}
	var err error
	if p.Prov, p.NoProv, err = provenance(s); err != nil {
		return nil, err
	}
	return p, nil
}

// orderByPaper sorts names into table.Ablations' order; the fine-tuning
// table and unknown names keep their place at the end (table.Build reports
// an unknown one).
func orderByPaper(names []string) []string {
	pos := map[string]int{}
	for i, a := range table.Ablations {
		pos[a] = i
	}
	out := append([]string(nil), names...)
	sort.SliceStable(out, func(i, j int) bool {
		pi, ok1 := pos[out[i]]
		pj, ok2 := pos[out[j]]
		if !ok1 {
			pi = len(pos)
		}
		if !ok2 {
			pj = len(pos)
		}
		return pi < pj
	})
	return out
}

func section(s *results.Store, rep *table.Report) (Section, error) {
	sec := Section{Ablation: rep.Ablation, Title: rep.Title, Scales: rep.Scales, Verdicts: map[string]int{}}
	var err error
	if sec.Parts, err = rep.HTML(); err != nil {
		return sec, err
	}
	for _, cs := range rep.Claims {
		for _, c := range cs.Claims {
			sec.Verdicts[table.VerdictClass(c.Verdict)]++
		}
	}
	runs := rep.Runs
	if rep.Ablation == table.Downstream { // the fine-tuning table: its runs are the fine-tuning runs
		fts, err := s.Finetunes(results.FinetuneFilter{})
		if err != nil {
			return sec, fmt.Errorf("report: %w", err)
		}
		runs = nil
		for _, f := range fts {
			runs = append(runs, table.RunData{Run: f.Run})
		}
	}
	for _, r := range runs {
		sec.Runs++
		switch r.Status {
		case results.StatusDone:
			sec.Done++
		case results.StatusDiverged, results.StatusFailed:
			sec.Lost = append(sec.Lost, LostRun{ID: r.ID, Name: r.Name, Status: string(r.Status), Reason: r.Reason,
				Seed: r.Seed, Step: r.Step, Total: r.TotalSteps, Attempts: r.Attempts})
		}
	}
	figs, err := plots.ForAblation(s, rep.Ablation)
	if err != nil {
		return sec, err
	}
	for _, f := range figs {
		fig := Figure{Name: f.Name, Title: f.Title,
			Caption: f.Note + " Runs of profile " + strings.Join(quoted(f.Profiles), ", ") + " (its factors against the paper are under Scale above)."}
		g := *f
		g.Caption = "" // the page prints it as text under the figure
		var b bytes.Buffer
		if err := g.RenderPNG(&b, FigureDPI); err != nil {
			return sec, err
		}
		fig.Src = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes()))
		w, h := g.Size()
		fig.Width, fig.Height = int(math.Round(w*96)), int(math.Round(h*96))
		sec.Figures = append(sec.Figures, fig)
	}
	return sec, nil
}

func quoted(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// command is the command that trains an ablation's file under profile.
func command(file, profile string, retry bool) string {
	c := "exp run " + file
	if profile != "" {
		c += " --profile " + profile
	}
	if retry {
		c += " --retry"
	}
	return c
}

func fileOf(ablation string) string { return "ablations/" + ablation + ".toml" }

func notRunAtAll(name string, opt Options) NotRun {
	nr := NotRun{Ablation: name, What: "no runs in the database", Command: command(fileOf(name), "", false)}
	if opt.Plan == nil {
		return nr
	}
	profiles, runs, err := opt.Plan(fileOf(name))
	if err != nil {
		nr.What += fmt.Sprintf(" (re-planning %s failed: %v)", fileOf(name), err)
		return nr
	}
	if len(profiles) > 0 {
		n := 0
		for _, r := range runs {
			if r.Profile == profiles[0] {
				n++
			}
		}
		nr.What = fmt.Sprintf("no runs in the database; the default profile %q plans %d", profiles[0], n)
	}
	return nr
}

// notRun lists an ablation's planned runs that are not done (per profile
// that has runs in the store) and the paper rows no run reproduces.
func notRun(rep *table.Report, opt Options) ([]NotRun, error) {
	var out []NotRun
	file := fileOf(rep.Ablation)
	byHash := map[string]table.RunData{}
	profiles := map[string]bool{}
	for _, r := range rep.Runs {
		byHash[r.ConfigHash] = r
		profiles[r.Profile] = true
	}
	var planned []PlannedRun
	var order []string
	if opt.Plan != nil {
		var err error
		order, planned, err = opt.Plan(file)
		if err != nil {
			out = append(out, NotRun{Ablation: rep.Ablation, What: fmt.Sprintf("re-planning %s failed: %v", file, err), Command: command(file, "", false)})
			planned = nil
		}
	}
	for _, prof := range order {
		if !profiles[prof] {
			continue
		}
		var missing, pending, lost []string
		for _, pr := range planned {
			if pr.Profile != prof {
				continue
			}
			r, ok := byHash[pr.Hash]
			switch {
			case !ok:
				missing = append(missing, pr.Label)
			case r.Status == results.StatusDiverged || r.Status == results.StatusFailed:
				lost = append(lost, fmt.Sprintf("%s (%s)", pr.Label, r.Status))
			case r.Status != results.StatusDone:
				pending = append(pending, fmt.Sprintf("%s (%s)", pr.Label, r.Status))
			}
		}
		if len(missing) > 0 {
			out = append(out, NotRun{Ablation: rep.Ablation, What: fmt.Sprintf("%d planned run(s) of profile %q not in the database: %s", len(missing), prof, strings.Join(missing, "; ")),
				Command: command(file, prof, false)})
		}
		if len(pending) > 0 {
			out = append(out, NotRun{Ablation: rep.Ablation, What: fmt.Sprintf("%d run(s) of profile %q not finished: %s", len(pending), prof, strings.Join(pending, "; ")),
				Command: command(file, prof, false)})
		}
		if len(lost) > 0 {
			out = append(out, NotRun{Ablation: rep.Ablation, What: fmt.Sprintf("%d run(s) of profile %q gave no result: %s", len(lost), prof, strings.Join(lost, "; ")),
				Command: command(file, prof, true)})
		}
	}
	// Paper rows no run reproduces, at any scale.
	for _, row := range rep.Rows {
		if len(row.Runs) > 0 || row.Paper == nil {
			continue
		}
		nr := NotRun{Ablation: rep.Ablation, What: fmt.Sprintf("paper row %q has no run at any scale", row.Label)}
		for _, prof := range order {
			if plansRow(planned, prof, row.Match) {
				nr.Command = command(file, prof, false)
				break
			}
		}
		if nr.Command == "" {
			nr.What += " (no profile of " + file + " plans it)"
		}
		out = append(out, nr)
	}
	return out, nil
}

// plansRow reports whether a planned run of profile reproduces a paper row.
func plansRow(planned []PlannedRun, profile string, match map[string]any) bool {
	for _, pr := range planned {
		if pr.Profile != profile {
			continue
		}
		rd, err := table.PlannedRunData(pr.ConfigJSON, pr.ScaleJSON)
		if err == nil && rd.Matches(match) {
			return true
		}
	}
	return false
}

// provenance groups every run's provenance record.
func provenance(s *results.Store) ([]ProvRow, int, error) {
	runs, err := s.Runs(results.RunFilter{})
	if err != nil {
		return nil, 0, fmt.Errorf("report: %w", err)
	}
	type agg struct {
		row      ProvRow
		secs     []float64
		from, to time.Time
	}
	idx := map[string]*agg{}
	var keys []string
	none := 0
	for _, r := range runs {
		if r.Status == results.StatusPending {
			continue
		}
		pv, err := s.Provenance(r.ID)
		if err != nil {
			none++
			continue
		}
		cuda := pv.CUDAVersion
		if cuda == "" {
			cuda = "—"
		}
		row := ProvRow{Commit: pv.GitCommit, Dirty: yesNo(pv.GitDirty), Go: pv.GoVersion, Gotch: pv.GotchVersion, Libtorch: pv.LibtorchVersion,
			CUDA: cuda, BLAS: pv.BLAS, Host: pv.Host, Device: r.Device, Threads: pv.Threads}
		k := fmt.Sprintf("%+v", row)
		a, ok := idx[k]
		if !ok {
			a = &agg{row: row}
			idx[k] = a
			keys = append(keys, k)
		}
		a.row.BLASShort = shortLibs(pv.BLAS)
		a.row.Runs++
		if r.Seconds > 0 {
			a.secs = append(a.secs, r.Seconds)
		}
		if !r.StartedAt.IsZero() && (a.from.IsZero() || r.StartedAt.Before(a.from)) {
			a.from = r.StartedAt
		}
		if !r.FinishedAt.IsZero() && r.FinishedAt.After(a.to) {
			a.to = r.FinishedAt
		}
	}
	var out []ProvRow
	for _, k := range keys {
		a := idx[k]
		if len(a.secs) > 0 {
			sort.Float64s(a.secs)
			t := 0.0
			for _, x := range a.secs {
				t += x
			}
			a.row.Seconds = fmt.Sprintf("%s in all; %s–%s per run", dur(t), dur(a.secs[0]), dur(a.secs[len(a.secs)-1]))
		}
		if !a.from.IsZero() {
			a.row.From = a.from.UTC().Format("2006-01-02 15:04")
		}
		if !a.to.IsZero() {
			a.row.To = a.to.UTC().Format("2006-01-02 15:04")
		}
		out = append(out, a.row)
	}
	return out, none, nil
}

// shortLibs keeps the file names of a comma-separated list of library
// paths ("/usr/lib/…/libblas.so.3, …" → "libblas.so.3, …").
func shortLibs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = filepath.Base(strings.TrimSpace(p))
	}
	return strings.Join(parts, ", ")
}

func yesNo(b bool) string {
	if b {
		return "dirty"
	}
	return "clean"
}

func dur(sec float64) string {
	return (time.Duration(sec) * time.Second).Round(time.Second).String()
}

// Write renders the page.
func (p *Page) Write(w io.Writer) error {
	if err := tmpl.Execute(w, p); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

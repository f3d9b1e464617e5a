package table

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/reproml/albert/results"
	"github.com/reproml/albert/results/paper"
)

// Ablations lists the ablations this package knows, in the paper's order.
var Ablations = []string{"embedding", "sharing", "sentence", "xlarge", "transitions", "depth", "width", "dropout"}

// metric is one quantity we measure per run.
type metric struct {
	key      string // eval name, or a derived quantity (see value)
	label    string
	paperCol string // the paper's column it is compared with ("" = ours only)
	percent  bool   // an accuracy: shown in %
	prec     int
}

var (
	mMLMAcc    = metric{key: "mlm_acc", label: "MLM acc (%)", percent: true, prec: 2}
	mMLMLoss   = metric{key: "mlm_loss", label: "MLM loss", prec: 3}
	mSOPAcc    = metric{key: "sop_acc", label: "SOP acc (%)", percent: true, prec: 2}
	mNSPAcc    = metric{key: "nsp_acc", label: "NSP acc (%)", percent: true, prec: 2}
	mTrainLoss = metric{key: "train_loss", label: "train loss", prec: 3}
)

func compared(m metric, col string) metric { m.paperCol = col; return m }

// specs are the measured columns of each ablation.
var specs = map[string][]metric{
	"embedding":   {mMLMAcc, mMLMLoss, mSOPAcc},
	"sharing":     {mMLMAcc, mMLMLoss, mSOPAcc},
	"sentence":    {compared(mMLMAcc, "mlm"), compared(mNSPAcc, "nsp"), compared(mSOPAcc, "sop"), mMLMLoss},
	"xlarge":      {mMLMAcc, mMLMLoss, mTrainLoss},
	"transitions": {{key: "l2_mean", label: "L2 mean", prec: 3}, {key: "l2_rough", label: "L2 roughness", prec: 3}, {key: "cos_mean", label: "cosine mean (°)", prec: 2}, {key: "cos_rough", label: "cosine roughness (°)", prec: 2}},
	"depth":       {mMLMAcc, mMLMLoss, mSOPAcc},
	"width":       {mMLMAcc, mMLMLoss, mSOPAcc},
	"dropout":     {mMLMAcc, mMLMLoss, mSOPAcc},
}

// ColumnKind says which parts a column has.
type ColumnKind int

const (
	PaperOnly   ColumnKind = iota // the paper's value (configuration, downstream scores)
	OursOnly                      // our measurement, which the paper does not print
	Compared                      // paper, ours and Δ
	NotMeasured                   // a column we cannot fill, with the reason
	OursText                      // our value as text (Cell.Text), e.g. a median
)

// Column is one column of a report.
type Column struct {
	Key   string
	Label string
	Kind  ColumnKind
	Prec  int    // decimals of ours and Δ
	Why   string // for NotMeasured: the reason
}

// Cell is one row × column.
type Cell struct {
	Paper    float64
	HasPaper bool
	Ours     Sample
	Delta    float64 // mean(ours) − paper
	HasDelta bool
	Text     string // for NotMeasured columns
}

// Row is one paper row (or one grid point the paper has no row for) under
// one profile and scale: runs of different profiles are never mixed.
type Row struct {
	Label    string
	Paper    *paper.Row // nil when the paper has no such row
	Match    map[string]any
	Profile  string // "" when no run reproduces the row
	Scale    string // the scale group: the profile, plus the keys that set it apart ("cpu train.steps=3000"); "" when no run
	Runs     []int64
	Lost     []Lost // runs without a result (diverged, failed, unfinished)
	Statuses map[results.Status]int
	Cells    map[string]Cell
}

// Done is the number of runs that finished.
func (r Row) Done() int { return r.Statuses[results.StatusDone] }

// RunsCell is e.g. "3/3" or "2/3 (1 diverged at step 812)".
func (r Row) RunsCell() string {
	if len(r.Runs) == 0 {
		return "0"
	}
	s := fmt.Sprintf("%d/%d", r.Done(), len(r.Runs))
	if len(r.Lost) > 0 {
		s += " (" + lostText(r.Lost) + ")"
	}
	return s
}

// ClaimSet is the claims of an ablation checked on the runs of one scale
// group (one profile and scale; never pooled across scales).
type ClaimSet struct {
	Profile string
	Scale   string // the scale group's label, e.g. "cpu train.steps=3000"
	Claims  []Claim
}

// Report is one ablation: the paper's table with our numbers and the claims.
type Report struct {
	Ablation string
	Title    string // e.g. "v6 Table 4: The effect of cross-layer …"
	Table    *paper.Table
	Figure   *paper.Figure
	Columns  []Column
	Rows     []Row
	Claims   []ClaimSet
	Notes    []string
	// Scales are the scale notes, one per profile: the factors against the
	// paper's configuration, once per ablation (also among Notes).
	Scales []string
	Runs   []RunData
	// Baselines are the non-neural sentence baselines on the held-out pairs
	// of each scale group (the sentence table, read by Build; FromRuns
	// leaves it empty).
	Baselines []BaselineSet

	ds dsTable // the paper's downstream columns from the runs' fine-tuning (finetuned.go)
}

// Options tune Build.
type Options struct {
	// ParamsOf counts the parameters of a paper row's configuration from its
	// model preset (cmd/exp wires model.LookupPreset + Config.Params). Nil
	// uses the exact counts recorded in the paper data.
	ParamsOf func(preset string) (int64, error)
	// Scales re-plans an experiment file (cmd/exp wires the experiments
	// package) and returns each run's scale JSON by config hash. A run
	// trained once for several experiments stores the scale of the first
	// that planned it; its paper point may differ in this one. Nil, or an
	// error, keeps the stored scales.
	Scales func(experiment, file string) (map[string]string, error)
}

// Build reads the ablation's runs from the store and lays them out against
// the paper. An ablation with no runs wraps ErrNoRuns.
func Build(s *results.Store, ablation string, opt Options) (*Report, error) {
	if _, ok := specs[ablation]; !ok {
		return nil, fmt.Errorf("table: unknown ablation %q (known: %s)", ablation, strings.Join(Ablations, ", "))
	}
	runs, exp, err := loadRuns(s, ablation)
	if err != nil {
		return nil, err
	}
	var note string
	if opt.Scales != nil {
		byHash, err := opt.Scales(exp.Name, exp.File)
		if err != nil {
			note = fmt.Sprintf("Scales as stored with each run (re-planning %s failed: %v).", exp.File, err)
		}
		for i := range runs {
			js, ok := byHash[runs[i].ConfigHash]
			if !ok {
				continue
			}
			var sc Scale
			if err := json.Unmarshal([]byte(js), &sc); err == nil {
				runs[i].Scale = sc
			}
		}
	}
	rep, err := FromRuns(ablation, runs, opt)
	if err != nil {
		return nil, err
	}
	if note != "" {
		rep.Notes = append(rep.Notes, note)
	}
	if err := rep.withBaselines(s, exp.File); err != nil {
		return nil, err
	}
	return rep, nil
}

// FromRuns lays out runs already loaded (Build without the store).
func FromRuns(ablation string, runs []RunData, opt Options) (*Report, error) {
	ms, ok := specs[ablation]
	if !ok {
		return nil, fmt.Errorf("table: unknown ablation %q (known: %s)", ablation, strings.Join(Ablations, ", "))
	}
	ref, err := paper.Load()
	if err != nil {
		return nil, fmt.Errorf("table: %w", err)
	}
	rep := &Report{Ablation: ablation, Table: ref.ForAblation(ablation), Figure: ref.FigureFor(ablation), Runs: runs}
	ms = percentify(ms, runs)
	type source struct {
		label string
		prow  *paper.Row
		match map[string]any
	}
	var sources []source
	switch {
	case rep.Table != nil:
		rep.Title = rep.Table.Title() + ": " + rep.Table.Caption
		for i := range rep.Table.Rows {
			r := &rep.Table.Rows[i]
			sources = append(sources, source{r.Label, r, r.Match})
		}
	case rep.Figure != nil:
		rep.Title = rep.Figure.Title() + ": " + rep.Figure.Caption
		for _, sr := range rep.Figure.Series {
			sources = append(sources, source{sr.Label, nil, sr.Match})
		}
	}
	rep.ds = downstreamOf(rep.Table, runs)
	rep.Columns = columns(rep.Table, ms, rep.ds)

	// Group runs: by paper row (first match wins), then configuration
	// (runs are pooled only when they differ by the seed alone).
	groups := ScaleGroups(runs)
	scaleOf := map[string]string{}
	for _, g := range groups {
		for _, r := range g.Runs {
			scaleOf[r.ConfigKey()] = g.Label
		}
	}
	type key struct{ src, point string }
	bySrc := map[key][]RunData{}
	var order []key
	for _, r := range runs {
		k := key{}
		matched := false
		for i, s := range sources {
			if r.Matches(s.match) {
				k.src, matched = fmt.Sprint(i), true
				break
			}
		}
		if !matched {
			k.point = r.PointLabel()
		}
		if _, ok := bySrc[k]; !ok {
			order = append(order, k)
		}
		bySrc[k] = append(bySrc[k], r)
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].point < order[j].point })
	emit := func(label string, prow *paper.Row, match map[string]any, rs []RunData) {
		sets := byConfig(rs)
		sort.SliceStable(sets, func(i, j int) bool {
			a, b := sets[i][0], sets[j][0]
			if a.Profile != b.Profile {
				return a.Profile < b.Profile
			}
			return natLess(scaleOf[a.ConfigKey()], scaleOf[b.ConfigKey()])
		})
		byProfile := map[string][][]RunData{}
		for _, set := range sets {
			byProfile[set[0].Profile] = append(byProfile[set[0].Profile], set)
		}
		for _, set := range sets {
			l := label
			if diff := differing(byProfile[set[0].Profile]); len(diff) > 0 {
				l += " (" + keyLabel(set[0], diff) + ")"
			}
			rep.Rows = append(rep.Rows, rep.row(l, prow, match, set[0].Profile, scaleOf[set[0].ConfigKey()], set, ms, opt))
		}
		if len(sets) == 0 {
			rep.Rows = append(rep.Rows, rep.row(label, prow, match, "", "", nil, ms, opt))
		}
	}
	for i, src := range sources {
		emit(src.label, src.prow, src.match, bySrc[key{src: fmt.Sprint(i)}])
	}
	for _, k := range order {
		if k.src == "" {
			emit(k.point+" (no paper row)", nil, nil, bySrc[k])
		}
	}
	rep.Scales = scaleNotes(runs)
	rep.Notes = rep.notes(ref, runs)
	rep.Claims = claimsOf(ablation, groups, ms, rep.ds)
	return rep, nil
}

// percentify marks accuracies stored as fractions (all values <= 1) to be
// shown in %, the paper's unit.
func percentify(ms []metric, runs []RunData) []metric {
	out := append([]metric(nil), ms...)
	for i, m := range out {
		if !m.percent {
			continue
		}
		frac := true
		for _, r := range runs {
			if v, ok := r.Evals[m.key]; ok && v > 1 {
				frac = false
			}
		}
		out[i].percent = frac
	}
	return out
}

// value is a run's measurement of m (NaN if absent).
func value(r RunData, m metric) float64 {
	switch m.key {
	case "params_run":
		return float64(r.Params)
	case "l2_mean", "l2_rough", "cos_mean", "cos_rough":
		var l2, cs []float64
		for _, t := range r.Trans {
			l2, cs = append(l2, t.L2), append(cs, t.CosineDeg)
		}
		switch m.key {
		case "l2_mean":
			return NewSample("", l2...).Mean()
		case "cos_mean":
			return NewSample("", cs...).Mean()
		case "l2_rough":
			return Roughness(l2)
		default:
			return Roughness(cs)
		}
	}
	v, ok := r.Evals[m.key]
	if !ok {
		return math.NaN()
	}
	if m.percent {
		v *= 100
	}
	return v
}

func columns(t *paper.Table, ms []metric, ds dsTable) []Column {
	var cols []Column
	has := map[string]bool{}
	if t != nil {
		for _, c := range t.Columns {
			has[c] = true
		}
		for _, c := range t.Columns {
			switch {
			case c == "params":
				cols = append(cols, Column{Key: "params", Label: "Params (M)", Kind: Compared, Prec: 2})
			case paper.Downstream(c) && ds.has(c):
				cols = append(cols, Column{Key: c, Label: paper.ColumnLabel(c), Kind: Compared, Prec: 2})
			case !paper.Downstream(c) && !isMetricCol(c, ms):
				cols = append(cols, Column{Key: c, Label: paper.ColumnLabel(c), Kind: PaperOnly})
			}
		}
	}
	cols = append(cols, Column{Key: "params_run", Label: "Params (run)", Kind: OursOnly})
	for _, m := range ms {
		k := OursOnly
		if m.paperCol != "" && has[m.paperCol] {
			k = Compared
		}
		cols = append(cols, Column{Key: m.key, Label: m.label, Kind: k, Prec: m.prec})
	}
	return cols
}

func isMetricCol(c string, ms []metric) bool {
	for _, m := range ms {
		if m.paperCol == c {
			return true
		}
	}
	return false
}

func (rep *Report) row(label string, prow *paper.Row, match map[string]any, profile, scale string, runs []RunData, ms []metric, opt Options) Row {
	row := Row{Label: label, Paper: prow, Match: match, Profile: profile, Scale: scale,
		Statuses: map[results.Status]int{}, Cells: map[string]Cell{}}
	for _, r := range runs {
		row.Runs = append(row.Runs, r.ID)
		row.Statuses[r.Status]++
		if r.Status != results.StatusDone {
			row.Lost = append(row.Lost, lostOf(r))
		}
	}
	for _, c := range rep.Columns {
		var cell Cell
		if prow != nil {
			if v, ok := prow.Values[c.Key]; ok {
				cell.Paper, cell.HasPaper = v, true
			}
		}
		switch c.Key {
		case "params":
			if prow != nil {
				if n := paramsOf(prow, opt); n > 0 {
					cell.Ours = NewSample("", float64(n)/1e6)
				}
			}
		case "params_run":
			cell.Ours = sampleOf(runs, metric{key: "params_run"})
			if cell.Ours.N() > 0 { // the same model for every seed: one count
				cell.Ours = NewSample("", cell.Ours.Values[0])
			}
		default:
			if paper.Downstream(c.Key) {
				cell.Ours = rep.ds.sample(c.Key, runs)
			}
			for _, m := range ms {
				if m.key == c.Key {
					cell.Ours = sampleOf(runs, m)
					if prow != nil && m.paperCol != "" {
						cell.Paper, cell.HasPaper = prow.Values[m.paperCol]
					}
				}
			}
		}
		if c.Kind == Compared && cell.HasPaper && cell.Ours.N() > 0 {
			cell.Delta, cell.HasDelta = cell.Ours.Mean()-cell.Paper, true
		}
		row.Cells[c.Key] = cell
	}
	return row
}

func paramsOf(prow *paper.Row, opt Options) int64 {
	if opt.ParamsOf != nil && prow.Preset != "" {
		if n, err := opt.ParamsOf(prow.Preset); err == nil {
			return n
		}
	}
	return prow.ParamsExact
}

func (rep *Report) notes(ref *paper.Reference, runs []RunData) []string {
	var out []string
	if rep.Table != nil {
		out = append(out, fmt.Sprintf("Paper: %s (%s, source %s %s).", rep.Table.Title(), versionName(ref, rep.Table.Version), rep.Table.Source, rep.Table.Confidence))
		out = append(out, rep.Table.Notes...)
		for _, r := range rep.Table.Rows {
			if r.Note != "" {
				out = append(out, fmt.Sprintf("%s: %s.", r.Label, r.Note))
			}
		}
		for _, in := range ref.InconsistenciesOf(rep.Table.ID) {
			out = append(out, "Inconsistency in the paper ("+in.ID+"): "+in.What)
		}
		for _, c := range rep.Columns {
			if c.Key == "params" {
				out = append(out, "Params: paper = as printed; ours = exact count of the paper's configuration (model presets); Δ in M. "+ref.Meta.ParamsConvention)
				break
			}
		}
		_, hidden := shownDownstream(rep.Table, rep.ds)
		var ds []string
		for _, c := range hidden {
			ds = append(ds, paper.ColumnLabel(c))
		}
		if len(ds) > 0 {
			out = append(out, "Not shown: the paper's "+strings.Join(ds, ", ")+" columns, which no row of ours can be compared with: "+
				"no pretraining run of these rows has finished fine-tuning on those official tasks in the store ("+ref.Meta.DownstreamNote+").")
		}
		out = append(out, rep.ds.notes...)
	}
	if rep.Figure != nil {
		out = append(out, fmt.Sprintf("Paper: %s (%s, source %s %s); curve values were not transcribed, so only our numbers are shown.",
			rep.Figure.Title(), versionName(ref, rep.Figure.Version), rep.Figure.Source, rep.Figure.Confidence))
	}
	out = append(out, "Ours: mean ± sample std over seeds (n = done runs); Δ = mean(ours) − paper. A row holds runs whose configurations differ by the seed alone; a row measured at two scales is two rows, labelled by the keys that differ.")
	out = append(out, rep.Scales...)
	out = append(out, EvalSENote, Rule)
	return out
}

func versionName(ref *paper.Reference, v string) string {
	if v == "v1" {
		return "arXiv v1"
	}
	return "ICLR 2020 / arXiv v6"
}

// claimsOf checks the ablation's claims on each scale group separately:
// never pooling runs of two profiles or scales.
func claimsOf(ablation string, groups []ScaleGroup, ms []metric, ds dsTable) []ClaimSet {
	var out []ClaimSet
	for _, g := range groups {
		out = append(out, ClaimSet{Profile: g.Profile, Scale: g.Label, Claims: claimsFor(ablation, g.Runs, ms, ds)})
	}
	if len(out) == 0 {
		out = append(out, ClaimSet{Claims: claimsFor(ablation, nil, ms, ds)})
	}
	return out
}

func metricOf(ms []metric, key string) metric {
	for _, m := range ms {
		if m.key == key {
			return m
		}
	}
	return metric{key: key}
}

func where(runs []RunData, match map[string]any) []RunData {
	var out []RunData
	for _, r := range runs {
		if r.Matches(match) {
			out = append(out, r)
		}
	}
	return out
}

// points groups runs matching base by the paper's value of axis.
func points(runs []RunData, base map[string]any, axis string, m metric) []Point {
	by := map[float64][]RunData{}
	for _, r := range runs {
		if len(base) > 0 && !r.Matches(base) {
			continue
		}
		v, ok := r.PaperValue(axis)
		x, isNum := v.(float64)
		if !ok || !isNum {
			continue
		}
		x = math.Round(x*1000) / 1000
		by[x] = append(by[x], r)
	}
	var out []Point
	for x, rs := range by {
		out = append(out, Point{X: x, Sample: sampleOf(rs, m)})
	}
	return sortPoints(out)
}

func claimsFor(ablation string, runs []RunData, ms []metric, ds dsTable) []Claim {
	acc := metricOf(ms, "mlm_acc")
	switch ablation {
	case "sentence":
		nsp, sop := where(runs, map[string]any{"objective": "nsp"}), where(runs, map[string]any{"objective": "sop"})
		return SentenceClaims(SentenceRuns{
			NSPofNSP: sampleOf(nsp, metricOf(ms, "nsp_acc")), SOPofNSP: sampleOf(nsp, metricOf(ms, "sop_acc")),
			NSPofSOP: sampleOf(sop, metricOf(ms, "nsp_acc")), SOPofSOP: sampleOf(sop, metricOf(ms, "sop_acc")),
			NSPMajority: sampleOf(nsp, metric{key: "nsp_majority"}), SOPMajority: sampleOf(sop, metric{key: "sop_majority"}),
		})
	case "sharing":
		var pts []SharingPoint
		for _, e := range []float64{768, 128} {
			at := func(s string) Sample {
				return sampleOf(where(runs, map[string]any{"model.embedding_size": e, "model.sharing": s}), acc)
			}
			pts = append(pts, SharingPoint{E: e, All: at("all"), Attention: at("attention"), FFN: at("ffn"), None: at("none")})
		}
		return SharingClaims(pts)
	case "embedding":
		return EmbeddingClaims(points(runs, map[string]any{"model.sharing": "all"}, "model.embedding_size", acc),
			points(runs, map[string]any{"model.sharing": "none"}, "model.embedding_size", acc))
	case "xlarge":
		large := where(runs, map[string]any{"model.hidden_size": 1024, "model.sharing": "none"})
		xl := where(runs, map[string]any{"model.hidden_size": 2048, "model.sharing": "none"})
		loss := metricOf(ms, "mlm_loss")
		cs := XlargeClaims(sampleOf(large, acc), sampleOf(xl, acc), sampleOf(large, loss), sampleOf(xl, loss))
		if ds.has("race") {
			cs = append(cs, XlargeRACEClaim(ds.sample("race", large), ds.sample("race", xl)))
		}
		return cs
	case "transitions":
		side := func(match map[string]any) TransitionRuns {
			var t TransitionRuns
			var done []RunData
			for _, r := range where(runs, match) {
				if r.Status != results.StatusDone || len(r.Trans) == 0 {
					continue
				}
				var l2, cs []float64
				for _, x := range r.Trans {
					l2, cs = append(l2, x.L2), append(cs, x.CosineDeg)
				}
				t.L2, t.Cos, t.Seeds = append(t.L2, l2), append(t.Cos, cs), append(t.Seeds, r.Seed)
				if r.Plateau() == PlateauUnknown {
					t.NoPlateau++
				}
				done = append(done, r)
			}
			t.MLM = sampleOf(done, acc)
			return t
		}
		return TransitionClaims(side(map[string]any{"model.sharing": "none"}), side(map[string]any{"model.sharing": "all"}))
	case "depth":
		return DepthClaims(points(runs, nil, "model.num_layers", acc))
	case "width":
		return WidthClaims(points(runs, nil, "model.hidden_size", acc))
	case "dropout":
		return DropoutClaims(sampleOf(where(runs, map[string]any{"model.hidden_dropout": 0.1}), acc),
			sampleOf(where(runs, map[string]any{"model.hidden_dropout": 0.0}), acc))
	}
	return nil
}

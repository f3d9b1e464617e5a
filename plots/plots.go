// Package plots draws the paper's figures and our per-ablation charts from
// the results store only, with gonum.org/v1/plot: v1 Figure 1 (BERT-large
// vs BERT-xlarge), v6 Figure 1 (layer transitions), Tables 3/4/5/8/11/12 as
// charts with error bars over seeds, and a learning-curve figure per run
// (with the held-out sentence diagnostics for runs that store them).
package plots

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"   // registers png
	_ "gonum.org/v1/plot/vg/vgpdf" // registers pdf
	_ "gonum.org/v1/plot/vg/vgsvg" // registers svg

	"github.com/reproml/albert/results"
	"github.com/reproml/albert/results/paper"
	"github.com/reproml/albert/results/table"
)

// Formats are the output formats; png is the default.
var Formats = []string{"png", "svg", "pdf"}

// ErrNothingToPlot is returned (wrapped) when the store has no run any
// figure could use.
var ErrNothingToPlot = errors.New("nothing to plot")

// Figure is one output file: one or more panels side by side.
type Figure struct {
	Name     string // stable file stem, e.g. "v1-figure1-xlarge"; may contain a folder ("runs/run-0001")
	Title    string // what the figure reproduces
	Ablation string // the experiment it draws ("" for a run's learning curves)
	// Caption says at which scale the runs were trained (each profile's
	// factors against the paper) and where the paper's values come from or
	// why the paper has none to draw; Render prints it under the panels.
	Caption string
	// Note is the caption less the factors of the scale, and Profiles the
	// profiles of its runs: for a page that prints the factors once above
	// its figures (exp report).
	Note     string
	Profiles []string
	Panels   []*plot.Plot // left to right
	Series   []int        // number of series (legend entries) per panel
	Rows     int          // panels are laid out in this many rows, left to right then down; 0 or 1: one row
}

// Render writes the figure in format (png, svg or pdf).
func (f *Figure) Render(w io.Writer, format string) error { return f.render(w, format, 0) }

// RenderPNG writes the figure as a PNG at dpi dots per inch (Render's PNG
// has 96): a page that shows it at its size in inches gets sharp text on a
// high-density screen, and the text is drawn with the figure's own fonts,
// where an SVG would fall back to whatever fonts the browser has.
func (f *Figure) RenderPNG(w io.Writer, dpi int) error { return f.render(w, "png", dpi) }

// Size is the figure's size in inches, caption included.
func (f *Figure) Size() (width, height float64) {
	w, h := f.size()
	return float64(w / vg.Inch), float64(h / vg.Inch)
}

func (f *Figure) size() (vg.Length, vg.Length) {
	rows := max(f.Rows, 1)
	cols := (len(f.Panels) + rows - 1) / rows
	width := vg.Length(cols) * 5 * vg.Inch
	if len(f.Panels) == 1 {
		width = 6.5 * vg.Inch // room for a full paper-table title
	}
	return width, vg.Length(rows)*4*vg.Inch + f.captionHeight(width)
}

// captionHeight is the height of the caption's wrapped lines.
func (f *Figure) captionHeight(width vg.Length) vg.Length {
	if len(f.Panels) == 0 {
		return 0
	}
	sty := captionStyle(f.Panels[0])
	lines := wrap(sty, f.Caption, width-vg.Inch/2)
	if len(lines) == 0 {
		return 0
	}
	return vg.Length(len(lines))*sty.Height("Xg")*1.2 + vg.Inch/8
}

func (f *Figure) render(w io.Writer, format string, dpi int) error {
	if len(f.Panels) == 0 {
		return fmt.Errorf("plots: %s: no panels", f.Name)
	}
	rows := max(f.Rows, 1)
	cols := (len(f.Panels) + rows - 1) / rows
	width, height := f.size()
	sty := captionStyle(f.Panels[0])
	lines := wrap(sty, f.Caption, width-vg.Inch/2)
	capH := f.captionHeight(width)
	var c vg.CanvasWriterTo
	if dpi > 0 && format == "png" {
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(dpi))}
	} else {
		var err error
		if c, err = draw.NewFormattedCanvas(width, height, format); err != nil {
			return fmt.Errorf("plots: %s: %w", f.Name, err)
		}
	}
	full := draw.New(c)
	for i, l := range lines {
		y := capH - vg.Inch/16 - vg.Length(i+1)*sty.Height("Xg")*1.2
		full.FillText(sty, vg.Point{X: vg.Inch / 4, Y: y + sty.Height("Xg")*0.25}, l)
	}
	dc := draw.Crop(full, 0, 0, capH, 0)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Inch / 4, PadY: vg.Inch / 4, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 8}
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, p := range f.Panels {
		n := 0
		if i < len(f.Series) {
			n = f.Series[i]
		}
		headroom(p, n)
		grid[i/cols][i%cols] = p
	}
	canvases := plot.Align(grid, tiles, dc)
	for i, p := range f.Panels {
		p.Draw(canvases[i/cols][i%cols])
	}
	if _, err := c.WriteTo(w); err != nil {
		return fmt.Errorf("plots: %s: %w", f.Name, err)
	}
	return nil
}

// headroom raises a panel's y range (once) so that its legend, drawn at the
// top, sits above every data point: the top band as tall as the legend's
// entries is left empty.
func headroom(p *plot.Plot, n int) {
	if p.Legend.Padding == legendMarked {
		return
	}
	p.Legend.Padding = legendMarked
	if p.Y.Max <= p.Y.Min {
		return
	}
	if n == 0 {
		return
	}
	// A 4-inch panel has about 3 inches of data area (2.6 under a
	// two-line title); the legend takes an entry's line per series.
	line := p.Legend.TextStyle.Height("Xg") + p.Legend.Padding
	frac := (vg.Length(n)*line + vg.Points(10)) / (2.6 * vg.Inch)
	frac = min(frac, 0.8)
	p.Y.Max = p.Y.Min + (p.Y.Max-p.Y.Min)/(1-float64(frac))
}

// captionStyle is the caption's font: the panel's, at 8 points.
func captionStyle(p *plot.Plot) text.Style {
	sty := p.X.Tick.Label
	sty.Font.Size = vg.Points(8)
	sty.Color = color.Gray{Y: 40}
	sty.XAlign, sty.YAlign = text.XLeft, text.YBottom
	sty.Rotation = 0
	return sty
}

// wrap splits s into lines no wider than w.
func wrap(sty text.Style, s string, w vg.Length) []string {
	var lines []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, word := range strings.Fields(para) {
			next := word
			if line != "" {
				next = line + " " + word
			}
			if line != "" && sty.Width(next) > w {
				lines = append(lines, line)
				next = word
			}
			line = next
		}
		if line != "" {
			lines = append(lines, line)
		}
	}
	return lines
}

// legendMarked is the legend padding of a panel headroom has adjusted.
const legendMarked = vg.Length(0.01)

// WriteAll builds every figure the store supports and writes each to
// dir/<name>.<format>. It returns the files written and, for figures that
// had no data, why they were skipped.
func WriteAll(s *results.Store, dir, format string) (files, skipped []string, err error) {
	if format == "" {
		format = "png"
	}
	if !validFormat(format) {
		return nil, nil, fmt.Errorf("plots: unknown format %q (want %s)", format, strings.Join(Formats, ", "))
	}
	figs, skipped, err := Build(s)
	if err != nil {
		return nil, skipped, err
	}
	for _, f := range figs {
		path := filepath.Join(dir, filepath.FromSlash(f.Name)+"."+format)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return files, skipped, fmt.Errorf("plots: %w", err)
		}
		out, err := os.Create(path)
		if err != nil {
			return files, skipped, fmt.Errorf("plots: %w", err)
		}
		err = f.Render(out, format)
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("plots: %s: %w", path, cerr)
		}
		if err != nil {
			return files, skipped, err
		}
		files = append(files, path)
	}
	return files, skipped, nil
}

func validFormat(f string) bool {
	for _, x := range Formats {
		if x == f {
			return true
		}
	}
	return false
}

// builder makes one ablation's figure from its runs.
type builder struct {
	ablation string
	name     string
	build    func(s *results.Store, runs []table.RunData) (*Figure, error)
	paper    string // where the paper's values are in the figure, or why it has none to draw
}

// noMLM is the caption of a chart of MLM accuracy whose paper table prints none.
func noMLM(tbl string) string {
	return tbl + " prints no MLM accuracy (only parameter counts and downstream scores), so the chart has no paper values."
}

// notTranscribed is the caption of a paper figure whose curves were not transcribed.
func notTranscribed(fig string) string {
	return "The paper's curves (" + fig + ") were not transcribed (results/paper/paper.toml): only ours are drawn."
}

var builders = []builder{
	{"xlarge", "v1-figure1-xlarge", xlargeFigure, notTranscribed("v1 Figure 1")},
	{"xlarge", "v1-table1-race", raceFigure, "Paper: v1 Table 1's RACE test accuracy (73.9 and 54.3), the first bar of each pair."},
	{"transitions", "v6-figure1-transitions", transitionsFigure, notTranscribed("v6 Figure 1")},
	{"embedding", "v6-table3-embedding", embeddingFigure, noMLM("v6 Table 3")},
	{"sharing", "v6-table4-sharing", sharingFigure, noMLM("v6 Table 4")},
	{"sentence", "v6-table5-sentence", sentenceFigure, "Paper: v6 Table 5's intrinsic accuracies (black triangles; ALBERT-base at 125k steps, on its own dev set)."},
	{"depth", "v6-table11-depth", func(_ *results.Store, r []table.RunData) (*Figure, error) {
		return axisFigure(r, "v6-table11-depth", "model.num_layers", "number of layers L (paper's value)",
			"MLM accuracy vs depth — cf. v6 Table 11 (ALBERT-large)")
	}, noMLM("v6 Table 11")},
	{"width", "v6-table12-width", func(_ *results.Store, r []table.RunData) (*Figure, error) {
		return axisFigure(r, "v6-table12-width", "model.hidden_size", "hidden size H (paper's value)",
			"MLM accuracy vs width — cf. v6 Table 12 (ALBERT-large, 3 layers)")
	}, noMLM("v6 Table 12")},
	{"dropout", "v6-figure2b-dropout", dropoutFigure, notTranscribed("v6 Figure 2 (b)")},
}

// ErrorBarNote is in the caption of every figure with means over seeds.
const ErrorBarNote = "Bars and points: mean over done seeds; error bars ± sample std, only where a point has at least 2 seeds."

// captioned sets a figure's caption: the paper's part, the error bars,
// the scale (each profile's factors) and the key to abbreviated scale
// groups.
func captioned(f *Figure, b builder, runs []table.RunData) {
	parts := []string{b.paper}
	switch b.name {
	case "v1-figure1-xlarge", "v6-figure1-transitions", "v6-figure2b-dropout":
		parts = append(parts, "One line per run (seed).")
	default:
		parts = append(parts, ErrorBarNote)
	}
	if k := scaleKey(table.ScaleGroups(runs)); k != "" {
		parts = append(parts, k)
	}
	f.Note = strings.Join(parts, " ")
	f.Caption = strings.Join(append([]string{f.Note}, table.ScaleNotes(runs)...), " ")
	seen := map[string]bool{}
	for _, r := range runs {
		if !seen[r.Profile] {
			seen[r.Profile] = true
			f.Profiles = append(f.Profiles, r.Profile)
		}
	}
	sort.Strings(f.Profiles)
}

// Names lists the stable names of the ablation figures, in order.
func Names() []string {
	var out []string
	for _, b := range builders {
		out = append(out, b.name)
	}
	return out
}

// ForAblation makes the figures of one ablation the store has data for,
// with their captions: none (no error) when it has no runs.
func ForAblation(s *results.Store, ablation string) ([]*Figure, error) {
	var figs []*Figure
	for _, b := range builders {
		if b.ablation != ablation {
			continue
		}
		runs, err := table.LoadRuns(s, b.ablation)
		if errors.Is(err, table.ErrNoRuns) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		f, err := b.build(s, runs)
		if err != nil {
			return nil, err
		}
		if f != nil {
			f.Ablation = b.ablation
			captioned(f, b, runs)
			figs = append(figs, f)
		}
	}
	return figs, nil
}

// Build makes every figure the store has data for: the ablation figures,
// then one learning-curve figure per run with curves ("runs/run-0007").
func Build(s *results.Store) (figs []*Figure, skipped []string, err error) {
	for _, b := range builders {
		runs, err := table.LoadRuns(s, b.ablation)
		if errors.Is(err, table.ErrNoRuns) {
			skipped = append(skipped, fmt.Sprintf("%s: no runs of experiment %q", b.name, b.ablation))
			continue
		}
		if err != nil {
			return nil, skipped, err
		}
		f, err := b.build(s, runs)
		if err != nil {
			return nil, skipped, err
		}
		if f == nil {
			skipped = append(skipped, fmt.Sprintf("%s: runs of %q have no data for it yet", b.name, b.ablation))
			continue
		}
		f.Ablation = b.ablation
		captioned(f, b, runs)
		figs = append(figs, f)
	}
	all, err := s.Runs(results.RunFilter{})
	if err != nil {
		return nil, skipped, fmt.Errorf("plots: %w", err)
	}
	for _, r := range all {
		f, err := RunCurves(s, r)
		if err != nil {
			return nil, skipped, err
		}
		if f != nil {
			figs = append(figs, f)
		}
	}
	if len(figs) == 0 {
		return nil, skipped, fmt.Errorf("plots: %s: %w (no finished runs with evals, curves or transitions)", s.Path(), ErrNothingToPlot)
	}
	return figs, skipped, nil
}

// evalCurve reads a held-out curve, whichever split name the trainer used.
func evalCurve(s *results.Store, id int64, name string) ([]results.Point, error) {
	for _, split := range []string{"eval", "heldout"} {
		c, err := s.Curve(id, split, name)
		if err != nil || len(c) > 0 {
			return c, err
		}
	}
	return nil, nil
}

func xys(pts []results.Point, scale float64) plotter.XYs {
	var out plotter.XYs
	for _, p := range pts {
		if math.IsNaN(p.Value) || math.IsInf(p.Value, 0) {
			continue
		}
		out = append(out, plotter.XY{X: float64(p.Step), Y: p.Value * scale})
	}
	return out
}

// pctScale is 100 for accuracies stored as fractions, else 1.
func pctScale(vals ...float64) float64 {
	for _, v := range vals {
		if v > 1 {
			return 1
		}
	}
	return 100
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Add(plotter.NewGrid())
	return p
}

// addLine adds a line with points; it reports whether anything was added.
func addLine(p *plot.Plot, i int, label string, pts plotter.XYs) (bool, error) {
	if len(pts) == 0 {
		return false, nil
	}
	l, s, err := plotter.NewLinePoints(pts)
	if err != nil {
		return false, fmt.Errorf("plots: %s: %w", label, err)
	}
	l.Color, s.Color = plotutil.Color(i), plotutil.Color(i)
	l.Dashes = plotutil.Dashes(i)
	s.Shape = plotutil.Shape(i)
	p.Add(l, s)
	p.Legend.Add(label, l, s)
	return true, nil
}

// runLabel names a run in a legend: the paper's series, seed, and its
// scale group when the figure has more than one (the caption names the
// scale of a figure with one).
func runLabel(series string, r table.RunData, scales map[string]string) string {
	l := fmt.Sprintf("%s (seed %d", series, r.Seed)
	if len(distinct(scales)) > 1 {
		l += ", " + scales[r.ConfigKey()]
	}
	return l + ")"
}

// scaleLabels maps each run's configuration to its scale group's tag.
func scaleLabels(runs []table.RunData) map[string]string {
	out := map[string]string{}
	for i, g := range table.ScaleGroups(runs) {
		for _, r := range g.Runs {
			out[r.ConfigKey()] = scaleTag(i, g.Label)
		}
	}
	return out
}

// maxTag is the longest scale-group label a legend shows as it is; a
// longer one is "scale k", which the caption spells out.
const maxTag = 32

// scaleTag names scale group i (of ScaleGroups' order) in a legend.
func scaleTag(i int, label string) string {
	if len(label) <= maxTag {
		return label
	}
	return fmt.Sprintf("scale %d", i+1)
}

// scaleKey is the caption's key to the tags that abbreviate a label.
func scaleKey(gs []table.ScaleGroup) string {
	if len(gs) < 2 {
		return ""
	}
	var parts []string
	for i, g := range gs {
		if t := scaleTag(i, g.Label); t != g.Label {
			parts = append(parts, t+" = "+g.Label)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "Scale groups: " + strings.Join(parts, "; ") + "."
}

func distinct(m map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, v := range m {
		out[v] = true
	}
	return out
}

// groupSuffix is how a series names scale group i of n: nothing when the
// figure has one group (its title names it), else " [tag]" (scaleTag).
func groupSuffix(i int, g table.ScaleGroup, n int) string {
	if n == 1 {
		return ""
	}
	return " [" + scaleTag(i, g.Label) + "]"
}

// titled adds the scale to a title: the one group's label, or "by scale".
func titled(title string, gs []table.ScaleGroup) string {
	if len(gs) == 1 {
		return title + " — " + gs[0].Label
	}
	return title + " — by scale"
}

// seriesRuns pairs a figure's paper series with the done runs that draw it.
func seriesRuns(fig *paper.Figure, runs []table.RunData) (labels []string, groups [][]table.RunData) {
	for _, s := range fig.Series {
		var g []table.RunData
		for _, r := range runs {
			if r.Status == results.StatusDone || r.Status == results.StatusDiverged {
				if r.Matches(s.Match) {
					g = append(g, r)
				}
			}
		}
		labels, groups = append(labels, s.Label), append(groups, g)
	}
	return labels, groups
}

func xlargeFigure(s *results.Store, runs []table.RunData) (*Figure, error) {
	fig := paper.MustLoad().FigureFor("xlarge")
	left := newPlot("Training loss", "step", "training loss")
	right := newPlot("Held-out MLM accuracy", "step", "MLM accuracy (%)")
	f := &Figure{Name: "v1-figure1-xlarge", Title: fig.Title() + ": BERT-large vs BERT-xlarge", Panels: []*plot.Plot{left, right}, Series: []int{0, 0}}
	labels, groups := seriesRuns(fig, runs)
	scales := scaleLabels(runs)
	i := 0
	for k, g := range groups {
		for _, r := range g {
			tr, err := s.Curve(r.ID, "train", "loss")
			if err != nil {
				return nil, err
			}
			ev, err := evalCurve(s, r.ID, "mlm_acc")
			if err != nil {
				return nil, err
			}
			var vals []float64
			for _, p := range ev {
				vals = append(vals, p.Value)
			}
			lbl := runLabel(labels[k], r, scales)
			if ok, err := addLine(left, i, lbl, xys(tr, 1)); err != nil {
				return nil, err
			} else if ok {
				f.Series[0]++
			}
			if ok, err := addLine(right, i, lbl, xys(ev, pctScale(vals...))); err != nil {
				return nil, err
			} else if ok {
				f.Series[1]++
			}
			i++
		}
	}
	if f.Series[0]+f.Series[1] == 0 {
		return nil, nil
	}
	left.Title.Text = "v1 Figure 1 (left): training loss, BERT-large vs BERT-xlarge"
	right.Title.Text = "v1 Figure 1 (right): held-out MLM accuracy"
	return f, nil
}

func transitionsFigure(s *results.Store, runs []table.RunData) (*Figure, error) {
	fig := paper.MustLoad().FigureFor("transitions")
	left := newPlot("v6 Figure 1 (left): L2 distance", "layer", "L2 distance")
	right := newPlot("v6 Figure 1 (right): cosine similarity", "layer", "cosine similarity (degree)")
	f := &Figure{Name: "v6-figure1-transitions", Title: fig.Title() + ": layer transitions, BERT vs ALBERT", Panels: []*plot.Plot{left, right}, Series: []int{0, 0}}
	labels, groups := seriesRuns(fig, runs)
	scales := scaleLabels(runs)
	i := 0
	for k, g := range groups {
		for _, r := range g {
			if len(r.Trans) == 0 {
				continue
			}
			var l2, cs plotter.XYs
			for j, t := range r.Trans {
				x := float64(t.Layer)
				if r.Trans[0].Layer == 0 { // 0-based storage: draw 1-based like the paper
					x = float64(j + 1)
				}
				if !math.IsNaN(t.L2) {
					l2 = append(l2, plotter.XY{X: x, Y: t.L2})
				}
				if !math.IsNaN(t.CosineDeg) {
					cs = append(cs, plotter.XY{X: x, Y: t.CosineDeg})
				}
			}
			lbl := runLabel(labels[k], r, scales)
			if ok, err := addLine(left, i, lbl, l2); err != nil {
				return nil, err
			} else if ok {
				f.Series[0]++
			}
			if ok, err := addLine(right, i, lbl, cs); err != nil {
				return nil, err
			} else if ok {
				f.Series[1]++
			}
			i++
		}
	}
	if f.Series[0]+f.Series[1] == 0 {
		return nil, nil
	}
	return f, nil
}

// accSample is the done runs' final accuracy of name in %, over seeds. The
// runs must be of one configuration (one scale group at one grid point):
// runs of another configuration than the first are left out, never pooled.
func accSample(runs []table.RunData, name string, scale float64) table.Sample {
	if len(runs) > 0 {
		key := runs[0].ConfigKey()
		var one []table.RunData
		for _, r := range runs {
			if r.ConfigKey() == key {
				one = append(one, r)
			}
		}
		runs = one
	}
	var v []float64
	for _, r := range runs {
		if r.Status != results.StatusDone {
			continue
		}
		if x, ok := r.Evals[name]; ok {
			v = append(v, x*scale)
		}
	}
	return table.NewSample("", v...)
}

func evalScale(runs []table.RunData, names ...string) float64 {
	var vals []float64
	for _, r := range runs {
		for _, n := range names {
			if v, ok := r.Evals[n]; ok {
				vals = append(vals, v)
			}
		}
	}
	return pctScale(vals...)
}

func filter(runs []table.RunData, match map[string]any) []table.RunData {
	var out []table.RunData
	for _, r := range runs {
		if r.Matches(match) {
			out = append(out, r)
		}
	}
	return out
}

// meanErr is points with error bars (sample std over seeds).
type meanErr struct {
	plotter.XYs
	plotter.YErrors
}

// addMeanErr draws means as a line with points and std error bars; a
// point of one seed has no spread to show and gets no bar.
func addMeanErr(p *plot.Plot, i int, label string, xs []float64, ss []table.Sample) (bool, error) {
	var pts plotter.XYs
	for j, s := range ss {
		if s.N() > 0 {
			pts = append(pts, plotter.XY{X: xs[j], Y: s.Mean()})
		}
	}
	d := errorBars(xs, ss)
	if len(pts) == 0 {
		return false, nil
	}
	if _, err := addLine(p, i, label, pts); err != nil {
		return false, err
	}
	return true, addErrBars(p, plotutil.Color(i), label, d)
}

// errorBars are the ± std bars of the samples at xs: only for samples of
// at least two seeds (one seed has no spread to show).
func errorBars(xs []float64, ss []table.Sample) meanErr {
	var d meanErr
	for j, s := range ss {
		if s.N() >= 2 {
			d.XYs = append(d.XYs, plotter.XY{X: xs[j], Y: s.Mean()})
			d.YErrors = append(d.YErrors, struct{ Low, High float64 }{s.Std(), s.Std()})
		}
	}
	return d
}

// addErrBars draws d's error bars (none when d is empty).
func addErrBars(p *plot.Plot, c color.Color, label string, d meanErr) error {
	if len(d.XYs) == 0 {
		return nil
	}
	eb, err := plotter.NewYErrorBars(d)
	if err != nil {
		return fmt.Errorf("plots: %s: %w", label, err)
	}
	eb.Color = c
	p.Add(eb)
	return nil
}

// paperMarks draws the paper's values as black diamonds with one legend
// entry; NaN values are skipped. It reports whether any was drawn.
func paperMarks(p *plot.Plot, label string, pts plotter.XYs) (bool, error) {
	var keep plotter.XYs
	for _, pt := range pts {
		if !math.IsNaN(pt.Y) {
			keep = append(keep, pt)
		}
	}
	if len(keep) == 0 {
		return false, nil
	}
	sc, err := plotter.NewScatter(keep)
	if err != nil {
		return false, fmt.Errorf("plots: %s: %w", label, err)
	}
	sc.GlyphStyle = draw.GlyphStyle{Color: color.Black, Radius: vg.Points(4.5), Shape: draw.PyramidGlyph{}}
	p.Add(sc)
	p.Legend.Add(label, sc)
	return true, nil
}

// paperValues lists the distinct paper values of axis over runs.
func paperValues(runs []table.RunData, axis string) []float64 {
	seen := map[float64]bool{}
	var out []float64
	for _, r := range runs {
		v, ok := r.PaperValue(axis)
		if x, isNum := v.(float64); ok && isNum && !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	sort.Float64s(out)
	return out
}

// mlmAlong is the MLM accuracy sample at each paper value of axis.
func mlmAlong(runs []table.RunData, axis string, scale float64) ([]float64, []table.Sample) {
	xs := paperValues(runs, axis)
	ss := make([]table.Sample, 0, len(xs))
	for _, x := range xs {
		ss = append(ss, accSample(atAxis(runs, axis, x), "mlm_acc", scale))
	}
	return xs, ss
}

func atAxis(runs []table.RunData, axis string, x float64) []table.RunData {
	return filter(runs, map[string]any{axis: x})
}

func embeddingFigure(_ *results.Store, runs []table.RunData) (*Figure, error) {
	sc := evalScale(runs, "mlm_acc")
	gs := table.ScaleGroups(runs)
	p := newPlot(titled("v6 Table 3: MLM accuracy vs embedding size E (ALBERT-base)", gs), "embedding size E (paper's value, log scale)", "MLM accuracy (%)")
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	f := &Figure{Name: "v6-table3-embedding", Title: "v6 Table 3 as a chart", Panels: []*plot.Plot{p}, Series: []int{0}}
	for gi, grp := range gs {
		for _, sh := range []struct{ key, label string }{{"all", "all-shared (ALBERT)"}, {"none", "not-shared (BERT)"}} {
			g := filter(grp.Runs, map[string]any{"model.sharing": sh.key})
			xs, ss := mlmAlong(g, "model.embedding_size", sc)
			ok, err := addMeanErr(p, f.Series[0], sh.label+groupSuffix(gi, grp, len(gs)), xs, ss)
			if err != nil {
				return nil, err
			}
			if ok {
				f.Series[0]++
			}
		}
	}
	if f.Series[0] == 0 {
		return nil, nil
	}
	return f, nil
}

func axisFigure(runs []table.RunData, name, axis, xlabel, title string) (*Figure, error) {
	sc := evalScale(runs, "mlm_acc")
	gs := table.ScaleGroups(runs)
	p := newPlot(titled(title, gs), xlabel, "MLM accuracy (%)")
	f := &Figure{Name: name, Title: title, Panels: []*plot.Plot{p}, Series: []int{0}}
	for gi, g := range gs {
		xs, ss := mlmAlong(g.Runs, axis, sc)
		ok, err := addMeanErr(p, f.Series[0], "ALBERT (ours, mean ± std over seeds)"+groupSuffix(gi, g, len(gs)), xs, ss)
		if err != nil {
			return nil, err
		}
		if ok {
			f.Series[0]++
		}
	}
	if f.Series[0] == 0 {
		return nil, nil
	}
	return f, nil
}

// bars is a grouped bar chart in data coordinates: group g, series k of K
// sits at x = g + (k − (K−1)/2)·w.
type bars struct {
	x, y, err []float64
	width     float64
	color     color.Color
}

func (b *bars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for i := range b.x {
		x0, x1 := trX(b.x[i]-b.width/2), trX(b.x[i]+b.width/2)
		y0, y1 := trY(0), trY(b.y[i])
		c.FillPolygon(b.color, c.ClipPolygonY([]vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}}))
	}
}

func (b *bars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax, ymin, ymax = math.Inf(1), math.Inf(-1), 0, 0
	for i := range b.x {
		xmin, xmax = math.Min(xmin, b.x[i]-b.width), math.Max(xmax, b.x[i]+b.width)
		ymax = math.Max(ymax, b.y[i]+b.err[i])
		ymin = math.Min(ymin, b.y[i]-b.err[i])
	}
	return
}

func (b *bars) Thumbnail(c *draw.Canvas) {
	pts := []vg.Point{{X: c.Min.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Min.X, Y: c.Max.Y}}
	c.FillPolygon(b.color, pts)
}

// groupedBars draws K series over G groups with std error bars where a
// bar has at least two seeds; samples is [series][group]. paper, when not
// nil, is the paper's value of each bar ([series][group], NaN where the
// paper prints none), drawn as a marker on the bar under paperLabel. It
// returns how many legend entries it added.
func groupedBars(p *plot.Plot, groups, series []string, samples [][]table.Sample, paper [][]float64, paperLabel string) (int, error) {
	K := len(series)
	w := 0.8 / float64(K)
	n := 0
	var marks plotter.XYs
	for k := range series {
		b := &bars{width: w * 0.9, color: plotutil.Color(k)}
		var xs []float64
		for g := range groups {
			x := float64(g) + (float64(k)-float64(K-1)/2)*w
			xs = append(xs, x)
			if paper != nil {
				marks = append(marks, plotter.XY{X: x, Y: paper[k][g]})
			}
			s := samples[k][g]
			if s.N() == 0 {
				continue
			}
			sd := 0.0
			if s.N() >= 2 {
				sd = s.Std()
			}
			b.x, b.y, b.err = append(b.x, x), append(b.y, s.Mean()), append(b.err, sd)
		}
		d := errorBars(xs, samples[k])
		if len(b.x) == 0 {
			continue
		}
		p.Add(b)
		if err := addErrBars(p, color.Black, series[k], d); err != nil {
			return n, err
		}
		p.Legend.Add(series[k], b)
		n++
	}
	if n > 0 && paper != nil {
		ok, err := paperMarks(p, paperLabel, marks)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	p.NominalX(groups...)
	return n, nil
}

// paperCell is the paper's value in column col of the table row whose
// match equals match; NaN when the paper prints none.
func paperCell(t *paper.Table, match map[string]any, col string) float64 {
	if t == nil {
		return math.NaN()
	}
	for _, r := range t.Rows {
		if len(r.Match) != len(match) {
			continue
		}
		same := true
		for k, v := range match {
			if fmt.Sprint(r.Match[k]) != fmt.Sprint(v) {
				same = false
			}
		}
		if v, ok := r.Values[col]; same && ok {
			return v
		}
	}
	return math.NaN()
}

// sharingData is v6 Table 4's bars: one series per sharing strategy and
// scale group, one group of bars per E (the table's order: 768, then 128).
func sharingData(runs []table.RunData) (groups, labels []string, samples [][]table.Sample) {
	sc := evalScale(runs, "mlm_acc")
	es := paperValues(runs, "model.embedding_size")
	sort.Sort(sort.Reverse(sort.Float64Slice(es)))
	for _, e := range es {
		groups = append(groups, fmt.Sprintf("E=%g", e))
	}
	modes := []struct{ key, label string }{{"all", "all-shared"}, {"attention", "shared-attention"}, {"ffn", "shared-FFN"}, {"none", "not-shared"}}
	gs := table.ScaleGroups(runs)
	for gi, g := range gs {
		for _, m := range modes {
			labels = append(labels, m.label+groupSuffix(gi, g, len(gs)))
			var row []table.Sample
			for _, e := range es {
				row = append(row, accSample(filter(g.Runs, map[string]any{"model.sharing": m.key, "model.embedding_size": e}), "mlm_acc", sc))
			}
			samples = append(samples, row)
		}
	}
	return groups, labels, samples
}

func sharingFigure(_ *results.Store, runs []table.RunData) (*Figure, error) {
	p := newPlot(titled("v6 Table 4: MLM accuracy by cross-layer sharing strategy (ALBERT-base)", table.ScaleGroups(runs)), "embedding size E (paper's value)", "MLM accuracy (%)")
	groups, labels, samples := sharingData(runs)
	n, err := groupedBars(p, groups, labels, samples, nil, "")
	if err != nil || n == 0 {
		return nil, err
	}
	return &Figure{Name: "v6-table4-sharing", Title: "v6 Table 4 as a chart", Panels: []*plot.Plot{p}, Series: []int{n}}, nil
}

func sentenceFigure(_ *results.Store, runs []table.RunData) (*Figure, error) {
	sc := evalScale(runs, "mlm_acc", "nsp_acc", "sop_acc")
	gs := table.ScaleGroups(runs)
	p := newPlot(titled("v6 Table 5: intrinsic accuracy by sentence objective (ALBERT-base)", gs), "training objective (SP task)", "accuracy (%)")
	objs := []struct{ key, label string }{{"none", "None"}, {"nsp", "NSP"}, {"sop", "SOP"}}
	accs := []struct{ key, label string }{{"mlm_acc", "MLM"}, {"nsp_acc", "NSP"}, {"sop_acc", "SOP"}}
	var groups, labels []string
	for _, o := range objs {
		groups = append(groups, o.label)
	}
	var samples [][]table.Sample
	var pv [][]float64
	tbl := paper.MustLoad().ForAblation("sentence")
	for gi, g := range gs {
		for _, a := range accs {
			labels = append(labels, a.label+" accuracy"+groupSuffix(gi, g, len(gs)))
			var row []table.Sample
			var prow []float64
			for _, o := range objs {
				row = append(row, accSample(filter(g.Runs, map[string]any{"objective": o.key}), a.key, sc))
				prow = append(prow, paperCell(tbl, map[string]any{"objective": o.key}, strings.TrimSuffix(a.key, "_acc")))
			}
			samples, pv = append(samples, row), append(pv, prow)
		}
	}
	n, err := groupedBars(p, groups, labels, samples, pv, "paper, v6 Table 5 (ALBERT-base, 125k steps)")
	if err != nil || n == 0 {
		return nil, err
	}
	return &Figure{Name: "v6-table5-sentence", Title: "v6 Table 5 as a chart", Panels: []*plot.Plot{p}, Series: []int{n}}, nil
}

func dropoutFigure(s *results.Store, runs []table.RunData) (*Figure, error) {
	fig := paper.MustLoad().FigureFor("dropout")
	p := newPlot("v6 Figure 2 (b): removing dropout — held-out MLM accuracy", "step", "MLM accuracy (%)")
	f := &Figure{Name: "v6-figure2b-dropout", Title: fig.Title(), Panels: []*plot.Plot{p}, Series: []int{0}}
	labels, groups := seriesRuns(fig, runs)
	scales := scaleLabels(runs)
	i := 0
	for k, g := range groups {
		for _, r := range g {
			ev, err := evalCurve(s, r.ID, "mlm_acc")
			if err != nil {
				return nil, err
			}
			var vals []float64
			for _, pt := range ev {
				vals = append(vals, pt.Value)
			}
			if ok, err := addLine(p, i, runLabel(labels[k], r, scales), xys(ev, pctScale(vals...))); err != nil {
				return nil, err
			} else if ok {
				f.Series[0]++
			}
			i++
		}
	}
	if f.Series[0] == 0 {
		return nil, nil
	}
	return f, nil
}

// runSeries is one line of a run's figure.
type runSeries struct {
	Label  string
	Metric string // split/name of the curve it draws, e.g. "eval/nsp_auc"
	XYs    plotter.XYs
	Ref    bool // a reference level (the unigram plateau, chance): dashed, no points
}

// runPanel is one panel of a run's figure, before drawing.
type runPanel struct {
	Title, X, Y string
	Series      []runSeries
}

// sentenceDiagnostics are the held-out sentence metrics the trainer stores
// beside nsp_acc and sop_acc (train.Evaluate); a run with any of them gets
// the sentence panels.
var sentenceDiagnostics = []string{"nsp_auc", "sop_auc", "nsp_majority", "sop_majority", "nsp_loss", "sop_loss",
	"nsp_acc_pos", "nsp_acc_neg_same", "nsp_acc_neg_other"}

// runPanels is the data of a run's learning-curve figure: training losses
// (with the held-out sentence losses when stored) and held-out accuracy
// (MLM, with the unigram plateau mlm_plateau dashed when stored) always;
// for runs with sentence diagnostics, held-out NSP/SOP accuracy, ROC AUC
// and majority-class fraction, and NSP accuracy by pair type. Accuracies,
// AUCs and fractions stored as fractions are drawn in %.
func runPanels(s *results.Store, r results.Run) ([]runPanel, error) {
	curves := map[string][]results.Point{}
	get := func(split, name string) ([]results.Point, error) {
		k := split + "/" + name
		if c, ok := curves[k]; ok {
			return c, nil
		}
		var c []results.Point
		var err error
		if split == "eval" {
			c, err = evalCurve(s, r.ID, name)
		} else {
			c, err = s.Curve(r.ID, split, name)
		}
		curves[k] = c
		return c, err
	}
	// add appends the curves of names to p, all in one unit: % when every
	// value is a fraction and pct is set.
	add := func(p *runPanel, split string, pct bool, names []string, labels []string) error {
		var vals []float64
		for _, n := range names {
			c, err := get(split, n)
			if err != nil {
				return err
			}
			for _, pt := range c {
				vals = append(vals, pt.Value)
			}
		}
		scale := 1.0
		if pct {
			scale = pctScale(vals...)
		}
		for i, n := range names {
			if pts := xys(curves[split+"/"+n], scale); len(pts) > 0 {
				p.Series = append(p.Series, runSeries{Label: labels[i], Metric: split + "/" + n, XYs: pts})
			}
		}
		return nil
	}
	diag := false
	for _, n := range sentenceDiagnostics {
		c, err := get("eval", n)
		if err != nil {
			return nil, err
		}
		diag = diag || len(c) > 0
	}

	losses := runPanel{Title: fmt.Sprintf("run %d: %s — training", r.ID, r.Name), X: "step", Y: "loss"}
	if err := add(&losses, "train", false, []string{"loss", "mlm_loss", "sentence_loss"},
		[]string{"train loss", "train mlm_loss", "train sentence_loss"}); err != nil {
		return nil, err
	}
	if err := add(&losses, "eval", false, []string{"nsp_loss", "sop_loss"}, []string{"held-out nsp_loss", "held-out sop_loss"}); err != nil {
		return nil, err
	}
	if diag {
		losses.Title = fmt.Sprintf("run %d: %s — losses", r.ID, r.Name)
	}

	acc := runPanel{Title: fmt.Sprintf("run %d (%s, %s): held-out", r.ID, r.Profile, r.Status), X: "step", Y: "accuracy (%)"}
	accNames := []string{"mlm_acc", "nsp_acc", "sop_acc"}
	if diag { // NSP and SOP accuracy go to the sentence panel
		accNames = accNames[:1]
		acc.Title = fmt.Sprintf("run %d (%s, %s): held-out MLM", r.ID, r.Profile, r.Status)
	}
	for _, n := range accNames {
		c, err := get("eval", n)
		if err != nil {
			return nil, err
		}
		var vals []float64
		for _, pt := range c {
			vals = append(vals, pt.Value)
		}
		if pts := xys(c, pctScale(vals...)); len(pts) > 0 {
			acc.Series = append(acc.Series, runSeries{Label: "held-out " + n, Metric: "eval/" + n, XYs: pts})
		}
		if n != "mlm_acc" {
			continue
		}
		// The unigram plateau, in the accuracy's unit.
		pl, err := get("eval", "mlm_plateau")
		if err != nil {
			return nil, err
		}
		for _, pt := range pl {
			vals = append(vals, pt.Value)
		}
		if pts := xys(pl, pctScale(vals...)); len(pts) > 0 && len(c) > 0 {
			acc.Series = append(acc.Series, runSeries{Label: "unigram plateau (mlm_plateau)", Metric: "eval/mlm_plateau", XYs: pts, Ref: true})
		}
	}
	panels := []runPanel{losses, acc}
	if !diag {
		return panels, nil
	}

	sent := runPanel{Title: fmt.Sprintf("run %d: held-out sentence pairs", r.ID), X: "step", Y: "accuracy, AUC, majority class (%)"}
	if err := add(&sent, "eval", true, []string{"nsp_acc", "sop_acc", "nsp_auc", "sop_auc", "nsp_majority", "sop_majority"},
		[]string{"NSP accuracy", "SOP accuracy", "NSP ROC AUC", "SOP ROC AUC", "NSP majority-class fraction", "SOP majority-class fraction"}); err != nil {
		return nil, err
	}
	if len(sent.Series) > 0 {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, sr := range sent.Series {
			for _, pt := range sr.XYs {
				lo, hi = math.Min(lo, pt.X), math.Max(hi, pt.X)
			}
		}
		// Every series is in % (fractions scaled, or stored in %): chance is 50.
		sent.Series = append(sent.Series, runSeries{Label: "chance (50%)", XYs: plotter.XYs{{X: lo, Y: 50}, {X: hi, Y: 50}}, Ref: true})
		panels = append(panels, sent)
	}
	kinds := runPanel{Title: fmt.Sprintf("run %d: held-out NSP accuracy by pair", r.ID), X: "step", Y: "NSP accuracy (%)"}
	if err := add(&kinds, "eval", true, []string{"nsp_acc_pos", "nsp_acc_neg_same", "nsp_acc_neg_other"},
		[]string{"true next segment", "random segment, same source", "random segment, other source"}); err != nil {
		return nil, err
	}
	if len(kinds.Series) > 0 {
		panels = append(panels, kinds)
	}
	return panels, nil
}

// RunCurves is one run's learning curves: losses, held-out accuracy with
// the unigram plateau, and for runs that store them the held-out sentence
// diagnostics (runPanels). Nil if the run has no curves.
func RunCurves(s *results.Store, r results.Run) (*Figure, error) {
	data, err := runPanels(s, r)
	if err != nil {
		return nil, err
	}
	f := &Figure{Name: fmt.Sprintf("runs/run-%04d", r.ID), Title: "learning curves of run " + r.Name, Profiles: []string{r.Profile}}
	f.Note = fmt.Sprintf("Run %d (%s, seed %d): %s at step %d of %d. Held-out curves are measured at every eval; the paper prints no learning curves for a single configuration.",
		r.ID, r.Name, r.Seed, r.Status, r.Step, r.TotalSteps)
	f.Caption = f.Note
	if rd, err := table.PlannedRunData(r.ConfigJSON, r.ScaleJSON); err == nil {
		rd.Run = r
		f.Caption = strings.Join(append([]string{f.Note}, table.ScaleNotes([]table.RunData{rd})...), " ")
	}
	drawn := 0
	for _, pd := range data {
		p := newPlot(pd.Title, pd.X, pd.Y)
		n, i := 0, 0
		for _, sr := range pd.Series {
			if sr.Ref {
				if err := addRef(p, sr.Label, sr.XYs); err != nil {
					return nil, err
				}
				n++
				continue
			}
			if ok, err := addLine(p, i, sr.Label, sr.XYs); err != nil {
				return nil, err
			} else if ok {
				n++
				drawn++
			}
			i++
		}
		f.Panels, f.Series = append(f.Panels, p), append(f.Series, n)
	}
	if drawn == 0 {
		return nil, nil
	}
	if len(f.Panels) > 3 {
		f.Rows = 2
	}
	return f, nil
}

// addRef draws a reference level: a grey dashed line without points.
func addRef(p *plot.Plot, label string, pts plotter.XYs) error {
	l, err := plotter.NewLine(pts)
	if err != nil {
		return fmt.Errorf("plots: %s: %w", label, err)
	}
	l.Color = color.Gray{Y: 96}
	l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
	p.Add(l)
	p.Legend.Add(label, l)
	return nil
}

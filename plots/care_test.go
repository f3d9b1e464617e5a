package plots

import (
	"bytes"
	"image/png"
	"math"
	"strings"
	"testing"

	"gonum.org/v1/plot/vg"

	"github.com/reproml/albert/results/paper"
	"github.com/reproml/albert/results/table"
)

// A point of one seed has no spread: it gets no error bar (a zero-length
// bar would read as "no variance"); two or more seeds get ± std.
func TestErrorBarsNeedTwoSeeds(t *testing.T) {
	xs := []float64{64, 128, 256}
	ss := []table.Sample{table.NewSample("", 40), table.NewSample("", 50, 52), table.NewSample("")}
	d := errorBars(xs, ss)
	if len(d.XYs) != 1 || d.XYs[0].X != 128 {
		t.Fatalf("error bars at %v, want only x=128 (the point with 2 seeds)", d.XYs)
	}
	if sd := ss[1].Std(); d.YErrors[0].Low != sd || d.YErrors[0].High != sd {
		t.Errorf("bar %v, want ± %v", d.YErrors[0], sd)
	}
}

// The sentence chart draws the paper's Table 5 accuracies beside ours: one
// marker per (accuracy, objective) the paper prints.
func TestSentencePaperValues(t *testing.T) {
	tbl := paper.MustLoad().ForAblation("sentence")
	for _, c := range []struct {
		obj, col string
		want     float64
	}{{"none", "mlm", 54.9}, {"nsp", "nsp", 90.5}, {"sop", "nsp", 78.9}, {"sop", "sop", 86.5}} {
		if got := paperCell(tbl, map[string]any{"objective": c.obj}, c.col); got != c.want {
			t.Errorf("paper %s of %s-trained: %v, want %v", c.col, c.obj, got, c.want)
		}
	}
	if got := paperCell(tbl, map[string]any{"objective": "nsp"}, "race_x"); !math.IsNaN(got) {
		t.Errorf("a column the paper lacks: %v, want NaN", got)
	}
	figs, err := ForAblation(fixtureStore(t), "sentence")
	if err != nil || len(figs) != 1 {
		t.Fatalf("sentence figures %v, %v", figs, err)
	}
	if figs[0].Series[0] != 4 { // MLM, NSP, SOP bars + the paper's markers
		t.Errorf("sentence chart: %d legend entries, want 4 (3 accuracies and the paper)", figs[0].Series[0])
	}
	if !strings.Contains(figs[0].Caption, "Paper: v6 Table 5") {
		t.Errorf("caption does not say where the paper's values are: %q", figs[0].Caption)
	}
}

// Every ablation figure says in its caption at which scale its runs were
// trained and whether the paper has values to draw; the caption is drawn
// under the panels (the PNG is taller with it).
func TestCaptionsNameScaleAndPaper(t *testing.T) {
	s := fixtureStore(t)
	n := 0
	for _, abl := range table.Ablations {
		figs, err := ForAblation(s, abl)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range figs {
			n++
			if f.Ablation != abl {
				t.Errorf("%s: ablation %q, want %q", f.Name, f.Ablation, abl)
			}
			if !strings.Contains(f.Caption, `Scale "`) {
				t.Errorf("%s: caption names no scale: %q", f.Name, f.Caption)
			}
			if !strings.Contains(f.Caption, "paper") && !strings.Contains(f.Caption, "Paper") {
				t.Errorf("%s: caption says nothing of the paper's values: %q", f.Name, f.Caption)
			}
		}
	}
	if n != len(wantSeries) {
		t.Errorf("%d ablation figures, want %d", n, len(wantSeries))
	}
	all, _, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		if strings.HasPrefix(f.Name, "runs/") && (!strings.Contains(f.Caption, `Scale "cpu"`) && !strings.Contains(f.Caption, `Scale "paper"`) || !strings.Contains(f.Caption, "seed")) {
			t.Errorf("%s: caption names no scale or seed: %q", f.Name, f.Caption)
		}
	}
	figs, _ := ForAblation(s, "sharing")
	height := func(caption string) int {
		f := *figs[0]
		f.Caption = caption
		var b bytes.Buffer
		if err := f.Render(&b, "png"); err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(&b)
		if err != nil {
			t.Fatal(err)
		}
		return img.Bounds().Dy()
	}
	if with, without := height(figs[0].Caption), height(""); with <= without {
		t.Errorf("caption not drawn: %d px with it, %d without", with, without)
	}
}

// After rendering, every panel's y range leaves a band at the top as tall
// as its legend (one line per entry), above the highest point or bar.
func TestLegendLeavesDataUncovered(t *testing.T) {
	figs, _, err := Build(fixtureStore(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range figs {
		var tops []float64
		for _, p := range f.Panels {
			tops = append(tops, p.Y.Max) // the data's top, before Render adds the headroom
		}
		if err := f.Render(&bytes.Buffer{}, "svg"); err != nil {
			t.Fatal(err)
		}
		for i, p := range f.Panels {
			if f.Series[i] == 0 || p.Y.Max <= p.Y.Min {
				continue
			}
			band := (p.Y.Max - tops[i]) / (p.Y.Max - p.Y.Min) // fraction of the data area above the data
			legend := float64(vg.Length(f.Series[i])*p.Legend.TextStyle.Height("Xg")) / float64(2.6*vg.Inch)
			if band < legend {
				t.Errorf("%s panel %d: %d legend entries need %.2f of the height, the data leaves %.2f", f.Name, i, f.Series[i], legend, band)
			}
		}
	}
}

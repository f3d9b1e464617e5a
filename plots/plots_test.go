package plots

import (
	"bytes"
	"errors"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/reproml/albert/results"
	"github.com/reproml/albert/results/table"
	"github.com/reproml/albert/results/table/fixture"
)

func fixtureStore(t *testing.T) *results.Store {
	t.Helper()
	s, err := fixture.Build(filepath.Join(t.TempDir(), "exp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The fixture's runs decide how many series each figure has.
var wantSeries = map[string][]int{
	"v1-figure1-xlarge":      {2, 2}, // BERT-large, BERT-xlarge: loss and MLM accuracy curves
	"v1-table1-race":         {2},    // paper and ours, BERT-large and BERT-xlarge
	"v6-figure1-transitions": {2, 2}, // BERT-large, ALBERT-large
	"v6-table3-embedding":    {2},    // all-shared, not-shared
	"v6-table4-sharing":      {4},    // the four strategies
	"v6-table5-sentence":     {4},    // MLM, NSP, SOP accuracy, and the paper's values (markers)
	"v6-table11-depth":       {1},
	"v6-table12-width":       {1},
	"v6-figure2b-dropout":    {2}, // with, without
}

func TestBuildSeries(t *testing.T) {
	figs, skipped, err := Build(fixtureStore(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 0 {
		t.Errorf("skipped %v", skipped)
	}
	got := map[string][]int{}
	runs, sentence := 0, 0
	for _, f := range figs {
		if strings.HasPrefix(f.Name, "runs/") {
			runs++
			// NSP- and SOP-trained runs store sentence diagnostics: two more panels.
			if n := len(f.Panels); n == 4 {
				sentence++
			} else if n != 2 {
				t.Errorf("%s: %d panels", f.Name, len(f.Panels))
			}
			continue
		}
		got[f.Name] = f.Series
	}
	for name, want := range wantSeries {
		if g := got[name]; !slices.Equal(g, want) {
			t.Errorf("%s: series %v, want %v", name, g, want)
		}
	}
	if len(got) != len(wantSeries) {
		t.Errorf("figures %v, want %d ablation figures", got, len(wantSeries))
	}
	if runs != 10 { // 6 sentence + 2 xlarge + 2 dropout runs have curves
		t.Errorf("%d learning-curve figures, want 10", runs)
	}
	if sentence != 4 {
		t.Errorf("%d learning-curve figures with sentence panels, want 4 (NSP and SOP, two seeds each)", sentence)
	}
}

// runByName is the fixture run of that name.
func runByName(t *testing.T, s *results.Store, name string) results.Run {
	t.Helper()
	all, err := s.Runs(results.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no run %q", name)
	return results.Run{}
}

// panelSeries maps each series of a run's panels to its last point's y, by
// "panel index/metric" (reference levels by "panel index/label").
func panelSeries(panels []runPanel) map[string]float64 {
	out := map[string]float64{}
	for i, p := range panels {
		for _, sr := range p.Series {
			k := sr.Metric
			if sr.Ref && k == "" {
				k = sr.Label
			}
			out[strconv.Itoa(i)+"/"+k] = sr.XYs[len(sr.XYs)-1].Y
		}
	}
	return out
}

// A run that stores the held-out sentence diagnostics gets them in its
// figure: NSP/SOP accuracy, AUC and majority fraction, NSP accuracy by pair
// type, the held-out sentence losses, and the unigram plateau beside MLM
// accuracy; a run without them keeps the two panels it had.
func TestRunCurvesSentenceDiagnostics(t *testing.T) {
	s := fixtureStore(t)
	panels, err := runPanels(s, runByName(t, s, "objective=nsp seed=1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(panels) != 4 {
		t.Fatalf("%d panels: %+v", len(panels), panels)
	}
	got := panelSeries(panels)
	// The fixture's NSP run, seed 1: final NSP 0.875, SOP 0.5, AUC +0.0625,
	// majority 0.625 / 0.5625, pairs by type 0.875 / 0.75 / 0.9375.
	want := map[string]float64{
		"0/train/loss": 5.25, "0/eval/nsp_loss": 0.5, "0/eval/sop_loss": 0.625,
		"1/eval/mlm_acc": 25, "1/eval/mlm_plateau": 7.05,
		"2/eval/nsp_acc": 87.5, "2/eval/sop_acc": 50, "2/eval/nsp_auc": 93.75, "2/eval/sop_auc": 56.25,
		"2/eval/nsp_majority": 62.5, "2/eval/sop_majority": 56.25, "2/chance (50%)": 50,
		"3/eval/nsp_acc_pos": 87.5, "3/eval/nsp_acc_neg_same": 75, "3/eval/nsp_acc_neg_other": 93.75,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || math.Abs(g-v) > 1e-9 {
			t.Errorf("%s: %v (present %v), want %v", k, g, ok, v)
		}
	}
	if len(got) != len(want)+1 { // and train mlm_loss
		t.Errorf("series %v", got)
	}
	for _, sr := range panels[1].Series {
		if sr.Metric == "eval/mlm_plateau" && !sr.Ref {
			t.Error("the plateau is not drawn as a reference line")
		}
	}
	f, err := RunCurves(s, runByName(t, s, "objective=nsp seed=1"))
	if err != nil || f == nil || f.Rows != 2 || !slices.Equal(f.Series, []int{4, 2, 7, 3}) {
		t.Errorf("figure: %v, %+v", err, f)
	}

	// Objective none: no sentence head, no sentence panels; the plateau stays.
	panels, err = runPanels(s, runByName(t, s, "objective=none seed=1"))
	if err != nil {
		t.Fatal(err)
	}
	got = panelSeries(panels)
	if len(panels) != 2 || math.Abs(got["1/eval/mlm_plateau"]-7.05) > 1e-9 || len(got) != 4 {
		t.Errorf("objective none: %d panels, series %v", len(panels), got)
	}
	// A run without diagnostics or plateau: the two panels as before.
	panels, err = runPanels(s, runByName(t, s, "H=1024 seed=1"))
	if err != nil {
		t.Fatal(err)
	}
	if got = panelSeries(panels); len(panels) != 2 || len(got) != 3 || got["1/eval/mlm_acc"] != 50 {
		t.Errorf("xlarge run: %d panels, series %v", len(panels), got)
	}
}

func TestWriteAllPNG(t *testing.T) {
	dir := t.TempDir()
	files, _, err := WriteAll(fixtureStore(t), dir, "png")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(wantSeries)+10 {
		t.Errorf("%d files, want %d", len(files), len(wantSeries)+10)
	}
	for _, name := range Names() {
		found := false
		for _, f := range files {
			found = found || f == filepath.Join(dir, name+".png")
		}
		if !found {
			t.Errorf("no %s.png among %v", name, files)
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: not a PNG: %v", f, err)
		}
		r := img.Bounds()
		if r.Dx() < 100 || r.Dy() < 100 {
			t.Errorf("%s: %v", f, r)
		}
		// Non-empty: more than one colour is drawn.
		first := img.At(r.Min.X, r.Min.Y)
		varied := false
		for y := r.Min.Y; y < r.Max.Y && !varied; y += 3 {
			for x := r.Min.X; x < r.Max.X; x += 3 {
				if img.At(x, y) != first {
					varied = true
					break
				}
			}
		}
		if !varied {
			t.Errorf("%s is blank", f)
		}
	}
}

func TestWriteAllSVG(t *testing.T) {
	dir := t.TempDir()
	files, _, err := WriteAll(fixtureStore(t), dir, "svg")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "v6-figure1-transitions.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("<svg")) || !bytes.Contains(b, []byte("ALBERT-large")) || !bytes.Contains(b, []byte("Figure 1")) {
		t.Errorf("svg lacks the legend or title (%d bytes)", len(b))
	}
	if len(files) != len(wantSeries)+10 {
		t.Errorf("%d svg files", len(files))
	}
	if _, _, err := WriteAll(fixtureStore(t), dir, "gif"); err == nil {
		t.Error("gif accepted")
	}
}

func TestEmptyStore(t *testing.T) {
	s, err := results.Open(filepath.Join(t.TempDir(), "empty.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	files, skipped, err := WriteAll(s, t.TempDir(), "png")
	if !errors.Is(err, ErrNothingToPlot) || len(files) != 0 {
		t.Errorf("empty store: files %v, err %v", files, err)
	}
	if len(skipped) != len(wantSeries) {
		t.Errorf("skipped %v", skipped)
	}
}

// The sharing ablation at train.steps=500 (one seed) and 3000 (three seeds)
// in one database: the figure draws each scale as its own series, never a
// bar over both (n = 2 or 4).
func TestScalesNeverPooled(t *testing.T) {
	for _, profiles := range [][2]string{{"cpu", "cpu"}, {"cpu", "paper"}} {
		s, err := results.Open(filepath.Join(t.TempDir(), "exp.db"))
		if err != nil {
			t.Fatal(err)
		}
		runs := fixture.TwoScales()
		for i := range runs {
			if runs[i].Steps == 3000 {
				runs[i].Profile = profiles[1]
			}
		}
		if err := fixture.Fill(s, runs); err != nil {
			t.Fatal(err)
		}
		loaded, err := table.LoadRuns(s, "sharing")
		if err != nil {
			t.Fatal(err)
		}
		groups, labels, samples := sharingData(loaded)
		if len(groups) != 2 || len(labels) != 8 {
			t.Fatalf("%v: groups %v, series %v", profiles, groups, labels)
		}
		for k := range labels {
			want := 1
			if strings.Contains(labels[k], "3000") || strings.Contains(labels[k], "[paper") {
				want = 3
			}
			for g := range groups {
				if n := samples[k][g].N(); n != want {
					t.Errorf("%v: %s at %s: n = %d, want %d", profiles, labels[k], groups[g], n, want)
				}
			}
		}
		want := "[cpu train.steps=500]"
		if profiles[1] == "paper" {
			want = "[cpu]" // the profile sets the scales apart
		}
		if !slices.ContainsFunc(labels, func(l string) bool { return strings.HasSuffix(l, want) }) {
			t.Errorf("%v: no series says its scale (%s): %v", profiles, want, labels)
		}
		figs, _, err := Build(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range figs {
			if f.Name == "v6-table4-sharing" && (f.Series[0] != 8 || !strings.Contains(f.Panels[0].Title.Text, "by scale")) {
				t.Errorf("%v: sharing figure: %d series, title %q", profiles, f.Series[0], f.Panels[0].Title.Text)
			}
		}
		s.Close()
	}
}

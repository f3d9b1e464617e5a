package table

import (
	"bytes"
	"encoding/csv"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/reproml/albert/results"
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

func render(t *testing.T, rep *Report, format string) string {
	t.Helper()
	var b bytes.Buffer
	if err := rep.Write(&b, format); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

const cpuScale = "cpu ×0.1667 H ×0.3333 L ×0.25 E ×0.2667 V ×0.25 seq ×0.003906 batch ×0.0016 steps"

func TestGoldenMarkdown(t *testing.T) {
	s := fixtureStore(t)
	sharing, err := Build(s, "sharing", Options{})
	if err != nil {
		t.Fatal(err)
	}
	md := render(t, sharing, "md")
	for _, want := range []string{
		"## sharing — v6 Table 4: The effect of cross-layer parameter-sharing strategies, ALBERT-base configuration.",
		"| Row | Scale | Runs | E paper | Params (M) paper | Params (M) ours | Params (M) Δ | Params (run) ours | MLM acc (%) ours | MLM loss ours | SOP acc (%) ours | SQuAD1.1 F1 paper | SQuAD1.1 EM paper | SQuAD2.0 F1 paper | SQuAD2.0 EM paper | MNLI paper | SST-2 paper | RACE paper | Avg paper | Downstream (ours) |",
		"| E=128 all-shared | " + cpuScale + " | 2/2 | 128 | 12 | 11.68 (n=1) | -0.32 | 228,003 | 51.56 ± 2.21 (n=2) | 3.938 ± 0.088 (n=2) | 62.50 ± 0.00 (n=2) | 89.3 | 82.3 | 80.0 | 77.1 | 82.0 | 90.3 | 64.0 | 80.1 | n/a |",
		"| E=768 shared-FFN | cpu ×0.1667 H ×0.3333 L ×0.1667 E ×0.2667 V ×0.25 seq ×0.003906 batch ×0.0016 steps | 1/2 (1 diverged) | 768 | 57 | 57.12 (n=1) | +0.12 | 868,003 | 40.62 (n=1) |",
		"- Downstream (ours): no fine-tuning: downstream data (SQuAD, MNLI, SST-2, RACE) not reachable offline.",
		"Inconsistency in the paper (albert-base-mnli)",
		"### Claims (profile cpu)",
		"- **held** — all-shared < not-shared (MLM accuracy): E=768: not-shared 53.12 (n=1) vs all-shared 43.75 (n=1): difference +9.38 [held]; E=128: not-shared 57.81 ± 2.21 (n=2) vs all-shared 51.56 ± 2.21 (n=2): difference +6.25, seed spread ±2.21 [held].",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("sharing md lacks\n%s\n--- got ---\n%s", want, md)
		}
	}

	sentence, err := Build(s, "sentence", Options{})
	if err != nil {
		t.Fatal(err)
	}
	md = render(t, sentence, "md")
	for _, want := range []string{
		"| SOP | " + cpuScale + " | 2/2 | 60,000 | 54.0 | 26.56 ± 2.21 (n=2) | -27.44 | 78.9 | 78.12 ± 4.42 (n=2) | -0.78 | 86.5 | 84.38 ± 4.42 (n=2) | -2.12 | 5.000 ± 0.000 (n=2) |",
		"| NSP | " + cpuScale + " | 2/2 | 60,000 | 54.5 | 25.00 ± 0.00 (n=2) | -29.50 | 90.5 | 90.62 ± 4.42 (n=2) | +0.12 | 52.0 | 51.56 ± 2.21 (n=2) | -0.44 |",
		"- **held** — SOP-trained model's NSP accuracy ≫ NSP-trained model's SOP accuracy (by > 10 points): SOP-trained on NSP 78.12 ± 4.42 (n=2) vs NSP-trained on SOP 51.56 ± 2.21 (n=2): difference +26.56 (needs > 10.0), seed spread ±3.49.",
		"- **held** — NSP-trained model's SOP accuracy is near chance (50 ± 5)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("sentence md lacks\n%s\n--- got ---\n%s", want, md)
		}
	}
}

func TestGoldenCSV(t *testing.T) {
	s := fixtureStore(t)
	recs := map[string][]string{}
	for _, a := range []string{"sharing", "sentence", "xlarge"} {
		rep, err := Build(s, a, Options{})
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(strings.NewReader(render(t, rep, "csv"))).ReadAll()
		if err != nil {
			t.Fatalf("%s: csv does not parse: %v", a, err)
		}
		if strings.Join(rows[0], ",") != strings.Join(CSVHeader, ",") {
			t.Fatalf("header %v", rows[0])
		}
		for _, r := range rows[1:] {
			if len(r) != len(CSVHeader) {
				t.Fatalf("record %v has %d fields", r, len(r))
			}
			recs[r[0]+"/"+r[2]+"/"+r[7]] = r
		}
	}
	f := func(s string) float64 {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("not a number: %q", s)
		}
		return v
	}
	cases := []struct {
		key                      string
		paper, mean, std, n, dlt string
		wantStd, wantDelta, eps  float64
	}{
		// ours (56.25, 59.375): mean 57.8125, std 3.125/√2
		{key: "sharing/E=128 not-shared/mlm_acc", mean: "57.8125", n: "2", wantStd: 2.2097086912079607, eps: 1e-12},
		// exact count of the paper config (11,683,584) vs the printed 12M
		{key: "sharing/E=128 all-shared/params", paper: "12", mean: "11.683584", n: "1", wantDelta: 11.683584 - 12, eps: 1e-12},
		{key: "sharing/E=128 all-shared/mnli", paper: "82", n: "0"},
		{key: "sentence/SOP/nsp_acc", paper: "78.9", mean: "78.125", n: "2", wantStd: 4.419417382415922, wantDelta: 78.125 - 78.9, eps: 1e-9},
		{key: "sentence/NSP/sop_acc", paper: "52", mean: "51.5625", n: "2", wantDelta: 51.5625 - 52, wantStd: 2.2097086912079607, eps: 1e-9},
		{key: "xlarge/BERT-xlarge (ours)/mlm_acc", mean: "37.5", n: "1"},
		{key: "xlarge/BERT-large (Devlin et al., 2019)/race", paper: "72", n: "0"},
	}
	for _, c := range cases {
		r, ok := recs[c.key]
		if !ok {
			t.Errorf("no csv record %s", c.key)
			continue
		}
		if r[9] != c.paper || (c.mean != "" && r[10] != c.mean) || r[12] != c.n {
			t.Errorf("%s: paper %q mean %q n %q, want %q %q %q", c.key, r[9], r[10], r[12], c.paper, c.mean, c.n)
		}
		if c.wantStd != 0 && abs(f(r[11])-c.wantStd) > c.eps {
			t.Errorf("%s: std %s, want %v", c.key, r[11], c.wantStd)
		}
		if c.wantDelta != 0 && abs(f(r[13])-c.wantDelta) > c.eps {
			t.Errorf("%s: delta %s, want %v", c.key, r[13], c.wantDelta)
		}
		if c.wantDelta == 0 && r[13] != "" {
			t.Errorf("%s: delta %q, want none", c.key, r[13])
		}
	}
	if r := recs["sharing/E=128 all-shared/downstream"]; len(r) == 0 || !strings.Contains(r[14], "no fine-tuning") {
		t.Errorf("downstream record %v should say why it is empty", r)
	}
	if r := recs["xlarge/BERT-large (ours)/mlm_acc"]; len(r) == 0 || r[4] != "paper (paper scale)" || r[3] != "paper" {
		t.Errorf("paper-profile run: scale %v", r)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestTeX(t *testing.T) {
	rep, err := Build(fixtureStore(t), "embedding", Options{})
	if err != nil {
		t.Fatal(err)
	}
	tex := render(t, rep, "tex")
	for _, want := range []string{`\begin{tabular}`, `all-shared E=128`, `51.56 $\pm$ 2.21 (n=2)`, `\textbf{held}`, `\end{table}`} {
		if !strings.Contains(tex, want) {
			t.Errorf("tex lacks %q:\n%s", want, tex)
		}
	}
	if strings.Contains(tex, "±") || strings.Contains(tex, "_acc") {
		t.Error("tex has unescaped characters")
	}
}

func TestNoRuns(t *testing.T) {
	s, err := results.Open(filepath.Join(t.TempDir(), "empty.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = Build(s, "sharing", Options{})
	if !errors.Is(err, ErrNoRuns) || !strings.Contains(err.Error(), `"sharing"`) {
		t.Errorf("empty DB: err = %v, want ErrNoRuns naming the experiment", err)
	}
	if _, err := s.EnsureExperiment("depth", "ablations/depth.toml", "h"); err != nil {
		t.Fatal(err)
	}
	if _, err = Build(s, "depth", Options{}); !errors.Is(err, ErrNoRuns) {
		t.Errorf("experiment without runs: err = %v, want ErrNoRuns", err)
	}
	if _, err = Build(s, "bogus", Options{}); err == nil || !strings.Contains(err.Error(), "unknown ablation") {
		t.Errorf("unknown ablation: err = %v", err)
	}
}

// A pending run is counted but gives no numbers; claims say so.
func TestPendingRunsNotEnough(t *testing.T) {
	s, err := results.Open(filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id, _ := s.EnsureExperiment("sentence", "ablations/sentence.toml", "h")
	if _, _, err := s.AddRun(id, results.RunSpec{ConfigHash: "a", Name: "objective=sop seed=1", ConfigJSON: `{"objective":"sop","model":{}}`,
		Profile: "cpu", ScaleJSON: `{"reference":"paper","point":{"objective":"sop"}}`, Params: 5}); err != nil {
		t.Fatal(err)
	}
	rep, err := Build(s, "sentence", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var sop Row
	for _, r := range rep.Rows {
		if r.Label == "SOP" {
			sop = r
		}
	}
	if sop.RunsCell() != "0/1 (1 pending)" || sop.Cells["mlm_acc"].Ours.N() != 0 || sop.Cells["mlm_acc"].HasDelta {
		t.Errorf("pending row: runs %q, cell %+v", sop.RunsCell(), sop.Cells["mlm_acc"])
	}
	for _, c := range rep.Claims[0].Claims {
		if c.Verdict != NotEnough {
			t.Errorf("claim %q: %s, want not enough runs", c.Claim, c.Verdict)
		}
	}
}

// A run shared with another experiment stores that experiment's scale; the
// Scales hook (the re-planned file) puts it at this experiment's point.
func TestScalesHook(t *testing.T) {
	s := fixtureStore(t)
	runs, err := LoadRuns(s, "embedding")
	if err != nil {
		t.Fatal(err)
	}
	var hash string
	for _, r := range runs {
		if r.Name == "E=64 sharing=all seed=1" {
			hash = r.ConfigHash
		}
	}
	rep, err := Build(s, "embedding", Options{Scales: func(exp, file string) (map[string]string, error) {
		if exp != "embedding" || file != "ablations/embedding.toml" {
			t.Errorf("Scales(%q, %q)", exp, file)
		}
		return map[string]string{hash: `{"reference":"paper","point":{"model.embedding_size":256,"model.sharing":"none"}}`}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Rows {
		if r.Label == "not-shared E=256" && (len(r.Runs) != 1 || r.Scale != "cpu (paper scale)") {
			t.Errorf("re-planned run: %+v", r)
		}
		if r.Label == "all-shared E=64" && len(r.Runs) != 0 {
			t.Errorf("all-shared E=64 still has runs %v", r.Runs)
		}
	}
	// ParamsOf replaces the recorded exact counts.
	rep, err = Build(s, "embedding", Options{ParamsOf: func(preset string) (int64, error) { return 1e6, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if c := rep.Rows[0].Cells["params"]; c.Ours.Mean() != 1 || c.Delta != 1-87 {
		t.Errorf("ParamsOf not used: %+v", c)
	}
}

func TestUnmatchedRunsGetTheirOwnRow(t *testing.T) {
	runs := []RunData{{Run: results.Run{ID: 9, Status: results.StatusDone, Profile: "cpu"},
		Config: map[string]any{"model": map[string]any{"num_layers": 2.0}},
		Scale:  Scale{Reference: "paper", Point: map[string]any{"model.num_layers": 2.0}}, Evals: map[string]float64{"mlm_acc": 0.5}}}
	rep, err := FromRuns("depth", runs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	last := rep.Rows[len(rep.Rows)-1]
	if last.Label != "L=2 (no paper row)" || last.Cells["mlm_acc"].Ours.Mean() != 50 || last.Paper != nil {
		t.Errorf("unmatched row: %+v", last)
	}
}

package table

import (
	"bytes"
	"database/sql"
	"encoding/csv"
	"errors"
	"os"
	"path/filepath"
	"regexp"
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

func TestGoldenMarkdown(t *testing.T) {
	s := fixtureStore(t)
	sharing, err := Build(s, "sharing", Options{})
	if err != nil {
		t.Fatal(err)
	}
	md := render(t, sharing, "md")
	for _, want := range []string{
		"## sharing — v6 Table 4: The effect of cross-layer parameter-sharing strategies, ALBERT-base configuration.",
		// Only the paper columns a row can be compared with; the scale column is the profile.
		"| Row | Scale | Runs | E paper | Params (M) paper | Params (M) ours | Params (M) Δ | Params (run) ours | MLM acc (%) ours | MLM loss ours | SOP acc (%) ours |\n",
		"| E=128 all-shared | cpu | 2/2 | 128 | 12 | 11.68 (n=1) | -0.32 | 228,003 | 51.56 ± 2.21 (n=2, eval size unknown) | 3.938 ± 0.088 (n=2) | 62.50 ± 0.00 (n=2, eval size unknown) |",
		"| E=768 shared-FFN | cpu | 1/2 (1 diverged at step 812) | 768 | 57 | 57.12 (n=1) | +0.12 | 868,003 | 40.62 (n=1, eval size unknown) |",
		"- Not shown: the paper's SQuAD1.1 F1, SQuAD1.1 EM, SQuAD2.0 F1, SQuAD2.0 EM, MNLI, SST-2, RACE, Avg columns, which no row of ours can be compared with: no pretraining run of these rows has finished fine-tuning on those official tasks in the store (fine-tune them with [downstream] in the experiment file and the official SQuAD, GLUE and RACE data under --data-dir, docs/FINETUNING.md; none is reachable offline here).",
		`- Scale "cpu": factors vs the paper's configuration at each row's point: ×0.25 seq, ×0.1667 H, ×0.3333 L, ×0.2667 V, ×0.003906 batch, ×0.0016 steps; varies by row: E.`,
		"Inconsistency in the paper (albert-base-mnli)",
		"- " + Rule + "\n",
		"- " + EvalSENote + "\n",
		"### Claims (cpu)",
		// One seed at E=768 and two at E=128: nothing is decided. Welch for
		// (56.25, 59.375) vs (50, 53.125): 6.25 ± t(0.975, 2)·2.2097 = 6.25 ± 9.51.
		"- **inconclusive: undecided at E=768, E=128** — all-shared < not-shared (MLM accuracy, at every E): E=768: not-shared 53.12 (n=1, eval size unknown) vs all-shared 43.75 (n=1, eval size unknown): difference +9.38 [inconclusive: fewer than 3 seeds (not-shared n=1, all-shared n=1)]; E=128: not-shared 57.81 ± 2.21 (n=2, eval size unknown) vs all-shared 51.56 ± 2.21 (n=2, eval size unknown): difference +6.25, 95% CI [-3.26, +15.76], Welch df 2.0 [inconclusive: fewer than 3 seeds (not-shared n=2, all-shared n=2)].",
		"shared-FFN 40.62 (n=1 done, 1 diverged at step 812, eval size unknown)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("sharing md lacks\n%s\n--- got ---\n%s", want, md)
		}
	}
	if strings.Contains(md, "SQuAD1.1 F1 paper") || strings.Contains(md, "Downstream (ours)") {
		t.Error("sharing md shows paper columns no row can be compared with")
	}

	sentence, err := Build(s, "sentence", Options{})
	if err != nil {
		t.Fatal(err)
	}
	md = render(t, sentence, "md")
	for _, want := range []string{
		// SE: p = 0.25 of 4096 masked tokens → 0.68; NSP p = 0.90625 of 1024 pairs → 0.91.
		"| NSP | cpu | 2/2 | 60,000 | 54.5 | 25.00 ± 0.00 (n=2, SE 0.68) | -29.50 | 90.5 | 90.62 ± 4.42 (n=2, SE 0.91) | +0.12 | 52.0 | 51.56 ± 2.21 (n=2, SE 1.56) | -0.44 |",
		"| SOP | cpu | 2/2 | 60,000 | 54.0 | 26.56 ± 2.21 (n=2, SE 0.69) | -27.44 | 78.9 | 78.12 ± 4.42 (n=2, SE 1.29) | -0.78 | 86.5 | 84.38 ± 4.42 (n=2, SE 1.13) | -2.12 | 5.000 ± 0.000 (n=2) |",
		"- **inconclusive: fewer than 3 seeds of the NSP-trained model (n=2); fewer than 3 seeds of the SOP-trained model (n=2)** — NSP-trained does not solve SOP while SOP-trained solves NSP",
		"- **inconclusive: fewer than 3 seeds of the NSP-trained model (n=2); fewer than 3 seeds of the SOP-trained model (n=2)** — NSP-trained model's SOP accuracy is near chance (50 ± 5)",
		"Needs: " + SentenceNeeds + ".",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("sentence md lacks\n%s\n--- got ---\n%s", want, md)
		}
	}
}

func TestGoldenCSV(t *testing.T) {
	s := fixtureStore(t)
	recs := map[string][]string{}
	var noteRecs []string
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
			if r[8] == "note" {
				noteRecs = append(noteRecs, r[14])
				continue
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
		{key: "sentence/SOP/nsp_acc", paper: "78.9", mean: "78.125", n: "2", wantStd: 4.419417382415922, wantDelta: 78.125 - 78.9, eps: 1e-9},
		{key: "sentence/NSP/sop_acc", paper: "52", mean: "51.5625", n: "2", wantDelta: 51.5625 - 52, wantStd: 2.2097086912079607, eps: 1e-9},
		{key: "xlarge/BERT-xlarge (ours)/mlm_acc", mean: "37.5", n: "1"},
		{key: "xlarge/BERT-large (Devlin et al., 2019)/hidden", paper: "1024", n: "0"},
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
	if r := recs["sharing/E=128 all-shared/mnli"]; r != nil {
		t.Errorf("a paper column no row can be compared with: %v", r)
	}
	if r := recs["sharing/E=128 all-shared/mlm_acc"]; len(r) == 0 || r[14] != "eval size unknown" || r[15] != "" {
		t.Errorf("accuracy without an eval size: %v", r)
	}
	if r := recs["sentence/NSP/nsp_acc"]; len(r) == 0 || r[16] != "1024" || abs(f(r[15])-0.9102) > 1e-3 {
		t.Errorf("eval SE of NSP accuracy (0.90625 of 1024 pairs): %v", r)
	}
	if r := recs["sharing/E=768 shared-FFN/mlm_acc"]; len(r) == 0 || r[17] != "diverged at step 812" {
		t.Errorf("diverged seed not named: %v", r)
	}
	if r := recs["xlarge/BERT-large (ours)/mlm_acc"]; len(r) == 0 || r[4] != "paper" || r[3] != "paper" {
		t.Errorf("paper-profile run: scale %v", r)
	}
	notes := strings.Join(noteRecs, "\n")
	for _, want := range []string{Rule, EvalSENote, "Not shown: the paper's SQuAD1.1 F1", `Scale "cpu"`} {
		if !strings.Contains(notes, want) {
			t.Errorf("csv notes lack %q", want)
		}
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
	for _, want := range []string{`\begin{tabular}`, `all-shared E=128`, `51.56 $\pm$ 2.21 (n=2, eval size unknown)`, `\textbf{inconclusive: undecided at E=64, E=256, E=768}`,
		`\textbf{not enough runs: no finished run of E=64}`, texEscape(Rule), texEscape(EvalSENote), `\end{table}`} {
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
		if r.Label == "not-shared E=256" && (len(r.Runs) != 1 || r.Profile != "cpu" || !strings.HasPrefix(r.Scale, "cpu")) {
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

func filled(t *testing.T, runs []fixture.Run) *results.Store {
	t.Helper()
	s, err := results.Open(filepath.Join(t.TempDir(), "exp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := fixture.Fill(s, runs); err != nil {
		t.Fatal(err)
	}
	return s
}

// On a database with one seed per row no claim reads held or did not hold.
func TestOneSeedDecidesNothing(t *testing.T) {
	var one []fixture.Run
	for _, r := range append(fixture.Runs(), fixture.TwoScales()...) {
		if r.Seed <= 1 {
			one = append(one, r)
		}
	}
	s := filled(t, one)
	checked := 0
	for _, a := range Ablations {
		rep, err := Build(s, a, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, cs := range rep.Claims {
			for _, c := range cs.Claims {
				checked++
				if c.Verdict == Held || c.Verdict == NotHeld {
					t.Errorf("%s (%s): %q is %s from one seed: %s", a, cs.Scale, c.Claim, c.Verdict, c.Detail)
				}
				if c.Verdict == Inconclusive && c.Why == "" {
					t.Errorf("%s: %q inconclusive without a reason", a, c.Claim)
				}
			}
		}
	}
	if checked < 15 {
		t.Errorf("only %d claims checked", checked)
	}
}

// The same sharing rows at train.steps=500 (one seed) and 3000 (three
// seeds): two rows per paper row, two claim sets, never n = 2 or 4.
func TestScalesNeverPooled(t *testing.T) {
	rep, err := Build(filled(t, fixture.TwoScales()), "sharing", Options{})
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]int{}
	for _, r := range rep.Rows {
		if len(r.Runs) == 0 {
			continue
		}
		labels[r.Label] = len(r.Runs)
		for k, c := range r.Cells {
			if n := c.Ours.N(); k != "params" && k != "params_run" && n != 0 && n != 1 && n != 3 {
				t.Errorf("row %q column %s pools %d runs", r.Label, k, n)
			}
		}
	}
	for label, n := range map[string]int{"E=128 all-shared (train.steps=500)": 1, "E=128 all-shared (train.steps=3000)": 3, "E=768 not-shared (train.steps=3000)": 3} {
		if labels[label] != n {
			t.Errorf("row %q has %d runs, want %d (rows %v)", label, labels[label], n, labels)
		}
	}
	if len(rep.Claims) != 2 || rep.Claims[0].Scale != "cpu train.steps=500" || rep.Claims[1].Scale != "cpu train.steps=3000" {
		t.Fatalf("claim sets %+v", rep.Claims)
	}
	for _, cs := range rep.Claims {
		for _, c := range cs.Claims {
			if strings.Contains(c.Detail, "n=2") || strings.Contains(c.Detail, "n=4") {
				t.Errorf("%s: %q pools scales: %s", cs.Scale, c.Claim, c.Detail)
			}
		}
	}
	wantVerdicts(t, "500 steps, one seed", rep.Claims[0].Claims, Inconclusive, Inconclusive)
	wantVerdicts(t, "3000 steps, three seeds", rep.Claims[1].Claims, Held, NotHeld)
	md := render(t, rep, "md")
	if !strings.Contains(md, "### Claims (cpu train.steps=3000)") || !strings.Contains(md, "| E=128 all-shared (train.steps=3000) | cpu | 3/3 |") {
		t.Errorf("md does not say which scale:\n%s", md)
	}
}

// MLM claims on runs that have not left the unigram plateau (within
// max(3 SE, 1 point) of mlm_plateau) are inconclusive, whatever the means.
func TestPlateauMakesMLMClaimsInconclusive(t *testing.T) {
	var runs []fixture.Run
	for _, r := range fixture.TwoScales() {
		if r.Steps == 3000 {
			r.Evals["mlm_plateau"] = r.Evals["mlm_acc"] - 0.005 // half a point above the plateau
			runs = append(runs, r)
		}
	}
	rep, err := Build(filled(t, runs), "sharing", Options{})
	if err != nil {
		t.Fatal(err)
	}
	cs := rep.Claims[0].Claims
	wantVerdicts(t, "on the plateau", cs, Inconclusive, Inconclusive)
	if !strings.Contains(cs[0].Detail, "still on the unigram plateau (not-shared: 3 of 3 runs") {
		t.Errorf("reason: %s", cs[0].Detail)
	}
}

func TestPlateauState(t *testing.T) {
	for _, c := range []struct {
		evals map[string]float64
		want  PlateauState
	}{
		{map[string]float64{"mlm_acc": 0.10, "mlm_plateau": 0.0705, "mlm_n": 20000}, PastPlateau}, // 2.95 points, 3 SE = 0.64
		{map[string]float64{"mlm_acc": 10, "mlm_plateau": 7.05, "mlm_n": 20000}, PastPlateau},     // stored in %
		{map[string]float64{"mlm_acc": 0.10, "mlm_plateau": 0.0705, "mlm_n": 100}, OnPlateau},     // 3 SE = 9 points
		{map[string]float64{"mlm_acc": 0.075, "mlm_plateau": 0.0705, "mlm_n": 1e6}, OnPlateau},    // under 1 point
		{map[string]float64{"mlm_acc": 0.075, "mlm_plateau": 0.0705}, OnPlateau},                  // under 1 point, size unknown
		{map[string]float64{"mlm_acc": 0.10, "mlm_plateau": 0.0705}, PlateauUnknown},              // size unknown
		{map[string]float64{"mlm_acc": 0.10}, PlateauUnknown},
	} {
		if got := (RunData{Evals: c.evals}).Plateau(); got != c.want {
			t.Errorf("%v: %d, want %d", c.evals, got, c.want)
		}
	}
}

// The sentence table prints the non-neural baselines stored for its runs'
// data (json_extract(config_json, '$.data') = baselines.data_config_json)
// in every format, and only those; without any it names the command.
func TestSentenceBaselines(t *testing.T) {
	rep, err := Build(fixtureStore(t), "sentence", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Baselines) != 1 || len(rep.Baselines[0].Baselines) != 3 || rep.Baselines[0].Data != fixture.SentenceData {
		t.Fatalf("baseline sets %+v", rep.Baselines)
	}
	// SE: sqrt(p(1−p)/1024) = 1.56, 1.51, 1.55 points.
	text := "Non-neural baselines on the same held-out pairs (cpu): NSP majority 50.0% ± 1.6 (n=1024), NSP tfidf-cosine 63.3% ± 1.5 (n=1024), SOP logreg-bow 56.2% ± 1.6 (n=1024)"
	md := render(t, rep, "md")
	if !strings.Contains(md, text) {
		t.Errorf("md lacks\n%s\n--- got ---\n%s", text, md)
	}
	if strings.Contains(md, "87.5%") {
		t.Error("md shows a baseline of another data configuration")
	}
	if tex := render(t, rep, "tex"); !strings.Contains(tex, texEscape(text)) {
		t.Errorf("tex lacks the baselines:\n%s", tex)
	}
	rows, err := csv.NewReader(strings.NewReader(render(t, rep, "csv"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows[1:] {
		if r[8] == "baseline" {
			got = append(got, strings.Join([]string{r[2], r[3], r[4], r[7], r[10], r[16]}, ","))
		}
	}
	want := []string{"majority,cpu,cpu,nsp_acc,50,1024", "tfidf-cosine,cpu,cpu,nsp_acc,63.28125,1024", "logreg-bow,cpu,cpu,sop_acc,56.25,1024"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("csv baseline records\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Only the sentence table has them.
	if sharing, err := Build(fixtureStore(t), "sharing", Options{}); err != nil || len(sharing.Baselines) != 0 ||
		strings.Contains(render(t, sharing, "md"), "baselines") {
		t.Errorf("sharing table: err %v, baselines %+v", err, sharing.Baselines)
	}

	// None stored: a note with the command that computes them.
	rep, err = Build(filled(t, fixture.Runs()), "sentence", Options{})
	if err != nil {
		t.Fatal(err)
	}
	note := "No non-neural baselines are stored for the held-out pairs of these runs (cpu): `exp check sentence-baseline --file ablations/sentence.toml --profile cpu` computes them"
	if md := render(t, rep, "md"); !strings.Contains(md, note) {
		t.Errorf("md lacks\n%s\n--- got ---\n%s", note, md)
	}
	if c := render(t, rep, "csv"); !strings.Contains(c, note) || strings.Contains(c, ",baseline,") {
		t.Errorf("csv lacks the note or has baseline records:\n%s", c)
	}
}

// Runs on two data configurations (here data.seq_len) get one set each;
// a set without baselines names the command with the --set of its data.
func TestBaselineSetsPerDataConfig(t *testing.T) {
	run := func(id int64, obj string, seq float64) RunData {
		return RunData{Run: results.Run{ID: id, Status: results.StatusDone, Profile: "cpu"},
			Config: map[string]any{"objective": obj, "data": map[string]any{"corpus": "default", "seq_len": seq}},
			Scale:  Scale{Reference: "paper", Point: map[string]any{"objective": obj}}}
	}
	bs := []results.Baseline{{Task: "nsp", Name: "tfidf-cosine", Accuracy: 0.625, N: 100, DataConfigHash: "h",
		DataConfigJSON: `{"seq_len": 64, "corpus": "default"}`}} // another key order: the same configuration
	split := func(sets []BaselineSet) (with, without BaselineSet) {
		t.Helper()
		if len(sets) != 2 {
			t.Fatalf("sets %+v", sets)
		}
		for _, s := range sets {
			if len(s.Baselines) > 0 {
				with = s
			} else {
				without = s
			}
		}
		return with, without
	}
	// seq_len varies at one grid point: two scale groups, one data each.
	with, without := split(baselineSets(ScaleGroups([]RunData{run(1, "nsp", 64), run(2, "sop", 64), run(3, "nsp", 128)}), bs, BaselineCommand))
	if with.Scale != "cpu data.seq_len=64" || with.Differs != "" ||
		!strings.Contains(with.Text(), "(cpu data.seq_len=64): NSP tfidf-cosine 62.5% ± 4.8 (n=100)") {
		t.Errorf("set with baselines: %+v: %s", with, with.Text())
	}
	if without.Command != "exp check sentence-baseline --profile cpu --set data.seq_len=128" {
		t.Errorf("set without: %+v", without)
	}
	// seq_len set with the objective: one scale group, two data configurations.
	with, without = split(baselineSets(ScaleGroups([]RunData{run(1, "nsp", 64), run(2, "sop", 128)}), bs, BaselineCommand))
	if with.Scale != "cpu" || with.Differs != "seq_len=64" || without.Differs != "seq_len=128" ||
		!strings.Contains(without.Text(), "(cpu, data seq_len=128): `exp check sentence-baseline --profile cpu --set data.seq_len=128`") {
		t.Errorf("sets %+v\n%+v\n%s", with, without, without.Text())
	}
}

// The baselines example of docs/SCHEMA.md matches baselines to runs as this
// package does: on the fixture, each done sentence run's NSP accuracy meets
// the two NSP baselines of its data, its SOP accuracy the one SOP baseline,
// and the baseline of other data never.
func TestSchemaDocBaselineQuery(t *testing.T) {
	doc, err := os.ReadFile("../../docs/SCHEMA.md")
	if err != nil {
		t.Fatal(err)
	}
	var q string
	for _, b := range regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		if strings.Contains(b[1], "JOIN baselines") {
			q = b[1]
		}
	}
	if q == "" {
		t.Fatal("no sql block of SCHEMA.md joins baselines")
	}
	path := filepath.Join(t.TempDir(), "exp.db")
	s, err := fixture.Build(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	count := map[string]int{}
	for rows.Next() {
		var baseline, metric, run sql.NullString
		var pct, runPct sql.NullFloat64
		var pairs sql.NullInt64
		var id int64
		var obj any
		if err := rows.Scan(&baseline, &pct, &pairs, &id, &run, &metric, &obj, &runPct); err != nil {
			t.Fatal(err)
		}
		count[metric.String+" "+baseline.String]++
		if baseline.String == "tfidf-cosine" && pct.Float64 != 63.3 {
			t.Errorf("%s: tfidf-cosine at %v%%: a baseline of other data", run.String, pct.Float64)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// 6 done sentence runs.
	want := map[string]int{"nsp_acc majority": 6, "nsp_acc tfidf-cosine": 6, "sop_acc logreg-bow": 6}
	if len(count) != len(want) {
		t.Errorf("rows %v, want %v", count, want)
	}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("rows %v, want %v", count, want)
			break
		}
	}
}

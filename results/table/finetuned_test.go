package table

import (
	"encoding/csv"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/reproml/albert/finetune/tasks"
	"github.com/reproml/albert/results"
	"github.com/reproml/albert/results/paper"
	"github.com/reproml/albert/results/table/fixture"
)

func rowOf(t *testing.T, rep *Report, label string) Row {
	t.Helper()
	for _, r := range rep.Rows {
		if r.Label == label {
			return r
		}
	}
	t.Fatalf("%s: no row %q", rep.Ablation, label)
	return Row{}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// The sharing table's downstream columns come from the fine-tuning runs of
// each row's pretraining runs: per pretraining run the median over its
// fine-tuning seeds, then mean ± std over pretraining seeds, Δ against the
// paper; Avg only for runs with every averaged task (not-shared has no
// RACE: no Avg, and the footnote says what is missing). The stand-in
// recorded as SST-2, the SST-2 run of another fine-tuning configuration and
// the failed run never reach a cell. Markdown, CSV and TeX show the same.
func TestPaperColumnsFromFinetuning(t *testing.T) {
	s := fixtureStore(t)
	if err := fixture.PaperFinetunes(s); err != nil {
		t.Fatal(err)
	}
	rep, err := Build(s, "sharing", Options{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]ColumnKind{}
	for _, c := range rep.Columns {
		kinds[c.Key] = c.Kind
	}
	for _, c := range []string{"squad11_f1", "squad11_em", "squad20_f1", "squad20_em", "mnli", "sst2", "race", "avg"} {
		if k, ok := kinds[c]; !ok || k != Compared {
			t.Errorf("column %s: kind %v (present %v), want compared", c, k, ok)
		}
	}
	// median of (base − 1/32, base, base + 1/2) = base, in %; seed 2 + 6.25.
	med := func(task, metric string, preSeed int) float64 {
		return 100 * (fixture.DownstreamBase[task][metric] + 0.0625*float64(preSeed-1))
	}
	all := rowOf(t, rep, "E=128 all-shared")
	for col, src := range dsSources {
		cell := all.Cells[col]
		want := []float64{med(src.Task, src.Metric, 1), med(src.Task, src.Metric, 2)}
		if cell.Ours.N() != 2 || !near(cell.Ours.Values[0], want[0]) || !near(cell.Ours.Values[1], want[1]) {
			t.Errorf("all-shared %s: %v (seeds %v), want %v", col, cell.Ours.Values, cell.Ours.Seeds, want)
		}
		if !cell.HasPaper || !cell.HasDelta || !near(cell.Delta, cell.Ours.Mean()-all.Paper.Values[col]) {
			t.Errorf("all-shared %s: paper %v (%v), Δ %v (%v)", col, cell.Paper, cell.HasPaper, cell.Delta, cell.HasDelta)
		}
	}
	if sst := all.Cells["sst2"].Ours; !near(sst.Mean(), 84.375) {
		t.Errorf("SST-2 mean %v, want 84.375: a stand-in, another configuration or a failed run leaked in", sst.Mean())
	}
	// Avg per pretraining run: ((75+62.5)/2 + (68.75+62.5)/2 + 68.75 + 81.25 + 56.25)/5 = 68.125, seed 2: 74.375.
	if avg := all.Cells["avg"].Ours; avg.N() != 2 || !near(avg.Values[0], 68.125) || !near(avg.Values[1], 74.375) {
		t.Errorf("all-shared Avg %v, want [68.125 74.375]", avg.Values)
	}
	none := rowOf(t, rep, "E=128 not-shared")
	if none.Cells["race"].Ours.N() != 0 || none.Cells["avg"].Ours.N() != 0 || none.Cells["sst2"].Ours.N() != 2 {
		t.Errorf("not-shared: race n=%d, avg n=%d, sst2 n=%d; want 0, 0, 2", none.Cells["race"].Ours.N(), none.Cells["avg"].Ours.N(), none.Cells["sst2"].Ours.N())
	}
	if c := rowOf(t, rep, "E=768 all-shared").Cells["sst2"]; c.Ours.N() != 0 || !c.HasPaper || c.Paper != 90.6 {
		t.Errorf("E=768 all-shared (no fine-tuning): %+v", c)
	}
	notes := strings.Join(rep.Notes, "\n")
	for _, want := range []string{"missing, with the number of fine-tuned pretraining runs that lack it: RACE (2).", "SST-2: the fine-tuning runs of 1 other fine-tuning configuration(s) are left out",
		"stand-in tasks never fill a paper column", "(3 per pretraining run here)"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, "Not shown") {
		t.Errorf("every downstream column is filled, yet: %s", notes)
	}

	md := render(t, rep, "md")
	pSST := all.Paper.Values["sst2"]
	for _, want := range []string{"| SST-2 paper | SST-2 ours | SST-2 Δ |", "| Avg paper | Avg ours | Avg Δ |",
		" | " + paper.FormatValue("sst2", pSST) + " | 84.38 ± 4.42 (n=2) | " + fmtDelta(84.375-pSST, 2) + " |", "71.25 ± 4.42 (n=2)"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	tex := render(t, rep, "tex")
	if !strings.Contains(tex, "SST-2 ours") || !strings.Contains(tex, `84.38 $\pm$ 4.42 (n=2)`) {
		t.Errorf("tex lacks the SST-2 column:\n%s", tex)
	}
	recs, err := csv.NewReader(strings.NewReader(render(t, rep, "csv"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range recs {
		if r[2] == "E=128 all-shared" && r[7] == "sst2" {
			found = true
			d, _ := strconv.ParseFloat(r[13], 64)
			if r[8] != "compared" || r[10] != "84.375" || r[12] != "2" || !near(d, 84.375-pSST) {
				t.Errorf("csv record %v", r)
			}
		}
	}
	if !found {
		t.Error("no csv record for E=128 all-shared / sst2")
	}
}

// A stand-in's result never lands in a paper column, even one recorded
// under an official task's name: stand_in decides. With only stand-ins the
// downstream columns stay hidden and the footnote says why.
func TestStandInNeverInPaperColumn(t *testing.T) {
	s := fixtureStore(t)
	runs, err := LoadRuns(s, "sharing")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, r := range runs {
		if r.Status != results.StatusDone {
			continue
		}
		for _, task := range []string{"SST-2", "RACE", "standin-reviews"} {
			for seed := int64(1); seed <= 3; seed++ {
				runs[i].Finetunes = append(runs[i].Finetunes, results.Finetune{
					Run: results.Run{ID: 1000 + int64(n), Seed: seed, Status: results.StatusDone, Profile: r.Profile, ConfigJSON: `{"finetune":{"steps":10}}`},
					FinetuneSpec: results.FinetuneSpec{PretrainRunID: r.ID, Init: results.InitPretrained, Task: task, StandIn: true,
						Metric: "accuracy", EvalSplit: "dev"},
					Best: map[string]float64{"dev/accuracy": 0.9},
				})
				n++
			}
		}
	}
	rep, err := FromRuns("sharing", runs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Columns {
		if paper.Downstream(c.Key) {
			t.Errorf("column %s shown from stand-ins", c.Key)
		}
	}
	md := render(t, rep, "md")
	if strings.Contains(md, "SST-2 ours") || strings.Contains(md, "90.00") || !strings.Contains(md, "Not shown: the paper's SQuAD1.1 F1") {
		t.Errorf("stand-ins reached the table:\n%s", md)
	}
	// The same runs as official: the columns appear.
	for i := range runs {
		for j := range runs[i].Finetunes {
			runs[i].Finetunes[j].StandIn = false
		}
	}
	rep, err = FromRuns("sharing", runs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c := rowOf(t, rep, "E=128 all-shared").Cells["sst2"]; c.Ours.N() != 2 || !near(c.Ours.Mean(), 90) {
		t.Errorf("official SST-2 not shown: %+v", c.Ours)
	}
}

// v1 Table 1's RACE column is the test accuracy at the dev-best evaluation
// (the fixture's xlarge fine-tuning: medians 72 and 57), and the RACE
// degradation is a claim decided by the rule (one pretraining seed a side:
// inconclusive).
func TestXlargeRACEColumn(t *testing.T) {
	rep, err := Build(fixtureStore(t), "xlarge", Options{})
	if err != nil {
		t.Fatal(err)
	}
	large, xl := rowOf(t, rep, "BERT-large (ours)").Cells["race"], rowOf(t, rep, "BERT-xlarge (ours)").Cells["race"]
	if large.Ours.N() != 1 || !near(large.Ours.Mean(), 72) || large.Paper != 73.9 || xl.Ours.N() != 1 || !near(xl.Ours.Mean(), 57) || xl.Paper != 54.3 {
		t.Errorf("RACE: large %v (paper %v), xlarge %v (paper %v); want 72 vs 73.9, 57 vs 54.3", large.Ours.Values, large.Paper, xl.Ours.Values, xl.Paper)
	}
	if c := rowOf(t, rep, "BERT-large (Devlin et al., 2019)").Cells["race"]; c.Ours.N() != 0 || c.Paper != 72.0 {
		t.Errorf("Devlin row: %+v", c)
	}
	var claim *Claim
	for _, cs := range rep.Claims {
		for i, c := range cs.Claims {
			if strings.Contains(c.Claim, "fine-tuned RACE accuracy") {
				claim = &cs.Claims[i]
			}
		}
	}
	if claim == nil || claim.Verdict != Inconclusive || !strings.Contains(claim.Detail, "BERT-large 72.00") {
		t.Errorf("RACE claim %+v", claim)
	}
}

// The paper columns are read from the tasks and metrics that package tasks
// says fill them.
func TestDownstreamSourcesMatchTasks(t *testing.T) {
	seen := map[string]bool{}
	for _, task := range tasks.All() {
		for metric, col := range task.PaperColumns {
			if task.StandIn {
				t.Errorf("stand-in %s fills %s", task.Name, col)
			}
			if got := dsSources[col]; got != (dsSource{task.Name, metric}) {
				t.Errorf("column %s: read from %+v, package tasks says %s %s", col, got, task.Name, metric)
			}
			seen[col] = true
		}
	}
	for col := range dsSources {
		if !seen[col] {
			t.Errorf("column %s: no task fills it", col)
		}
		if !paper.Downstream(col) {
			t.Errorf("column %s is not a paper downstream column", col)
		}
	}
}

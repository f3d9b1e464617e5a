package table

import (
	"fmt"
	"math"
	"strings"

	"github.com/reproml/albert/results"
	"github.com/reproml/albert/results/paper"
)

// The paper's downstream columns filled from our fine-tuning runs. A cell is
// the row's pretraining runs' fine-tuning on an official task (never a
// stand-in, finetunes.stand_in): per pretraining run the median over its
// fine-tuning seeds (the paper reports the median over fine-tuning runs), then
// over the row's pretraining seeds mean ± std with n, as every other cell;
// claims on it go through the verdict rule like the rest.

// dsSource is where a paper column's value is read: a task's best score of
// one metric. Split "" is the task's own evaluation split (finetunes.eval_split).
// The pairs mirror finetune/tasks' PaperColumns (a test checks them).
type dsSource struct{ Task, Metric string }

var dsSources = map[string]dsSource{
	"squad11_f1": {"SQuAD-1.1", "f1"},
	"squad11_em": {"SQuAD-1.1", "em"},
	"squad20_f1": {"SQuAD-2.0", "f1"},
	"squad20_em": {"SQuAD-2.0", "em"},
	"mnli":       {"MNLI", "accuracy"},
	"sst2":       {"SST-2", "accuracy"},
	"race":       {"RACE", "accuracy"},
}

// avgParts are the paper's Avg (§4.3): the mean of SQuAD1.1, SQuAD2.0 (each
// the mean of its F1 and EM), MNLI, SST-2 and RACE.
var avgParts = [][]string{{"squad11_f1", "squad11_em"}, {"squad20_f1", "squad20_em"}, {"mnli"}, {"sst2"}, {"race"}}

// dsSplit is the split a column is read on in a table: the task's
// evaluation split (dev; MNLI dev_matched), except v1 Table 1, whose RACE
// numbers are test accuracies (read at the dev-best evaluation).
func dsSplit(t *paper.Table, col string, f results.Finetune) string {
	if col == "race" && t != nil && t.ID == "v1-table1" {
		if _, ok := f.Best[results.BestKey("test", "accuracy")]; ok {
			return "test"
		}
	}
	return f.EvalSplit
}

// ftKey is a fine-tuning run's configuration without its seed: profile and
// the fine-tuning section of its config. Fine-tuning runs of two
// configurations are never pooled.
func ftKey(f results.Finetune) string { return f.Profile + "|" + ftConfigKey(f.ConfigJSON) }

// dsTable is the downstream values of a report's runs: for each paper
// column, the median over fine-tuning seeds per pretraining run, under the
// one fine-tuning configuration chosen for the column's task.
type dsTable struct {
	vals    map[string]map[int64]float64 // column → pretraining run → median (%)
	ftSeeds map[string]map[int64]int     // column → pretraining run → fine-tuning seeds behind the median
	notes   []string
}

// has reports whether any run has a value of col.
func (d dsTable) has(col string) bool { return len(d.vals[col]) > 0 }

// downstreamOf collects the paper columns' values from the runs' fine-tuning
// runs. For each task, the fine-tuning configuration (profile and fine-tuning
// keys) that covers the most pretraining runs is used, and the others are
// named in a note: one scale at a time, as everywhere in this package.
func downstreamOf(t *paper.Table, runs []RunData) dsTable {
	d := dsTable{vals: map[string]map[int64]float64{}, ftSeeds: map[string]map[int64]int{}}
	if t == nil {
		return d
	}
	byTask := map[string][]string{} // task → the table's columns it fills
	for _, c := range t.Columns {
		if src, ok := dsSources[c]; ok {
			byTask[src.Task] = append(byTask[src.Task], c)
		}
	}
	for _, task := range sortedKeys(byTask) {
		cols := byTask[task]
		// config → pretraining run → column → values
		type perRun map[int64]map[string][]float64
		byCfg := map[string]perRun{}
		for _, r := range runs {
			if r.Status != results.StatusDone {
				continue
			}
			for _, f := range r.Finetunes {
				if f.StandIn || f.Task != task || f.Init != results.InitPretrained || f.PretrainRunID != r.ID || f.Status != results.StatusDone {
					continue
				}
				for _, c := range cols {
					v, ok := f.Best[results.BestKey(dsSplit(t, c, f), dsSources[c].Metric)]
					if !ok || math.IsNaN(v) {
						continue
					}
					k := ftKey(f)
					if byCfg[k] == nil {
						byCfg[k] = perRun{}
					}
					if byCfg[k][r.ID] == nil {
						byCfg[k][r.ID] = map[string][]float64{}
					}
					byCfg[k][r.ID][c] = append(byCfg[k][r.ID][c], 100*v)
				}
			}
		}
		if len(byCfg) == 0 {
			continue
		}
		keys := sortedKeys(byCfg)
		best := keys[0]
		for _, k := range keys[1:] {
			if len(byCfg[k]) > len(byCfg[best]) {
				best = k
			}
		}
		if len(keys) > 1 {
			d.notes = append(d.notes, fmt.Sprintf("%s: the fine-tuning runs of %d other fine-tuning configuration(s) are left out; the columns show the configuration that covers the most pretraining runs (%d), %s.",
				task, len(keys)-1, len(byCfg[best]), strings.Replace(best, "|", " profile, ", 1)))
		}
		for id, byCol := range byCfg[best] {
			for c, vs := range byCol {
				if d.vals[c] == nil {
					d.vals[c], d.ftSeeds[c] = map[int64]float64{}, map[int64]int{}
				}
				d.vals[c][id] = Median(NewSample("", vs...))
				d.ftSeeds[c][id] = len(vs)
			}
		}
	}
	// Avg: only for a pretraining run with every averaged task.
	if hasCol(t, "avg") {
		missing := map[string]int{} // column label → runs with some downstream value but not this one
		for _, r := range runs {
			sum, ok, some := 0.0, true, false
			var lacks []string
			for _, part := range avgParts {
				s := 0.0
				for _, c := range part {
					v, has := d.vals[c][r.ID]
					if !has {
						ok = false
						lacks = append(lacks, paper.ColumnLabel(c))
					}
					some = some || has
					s += v
				}
				sum += s / float64(len(part))
			}
			if some {
				for _, l := range lacks {
					missing[l]++
				}
			}
			if ok {
				if d.vals["avg"] == nil {
					d.vals["avg"] = map[int64]float64{}
				}
				d.vals["avg"][r.ID] = sum / float64(len(avgParts))
			}
		}
		if d.anyDownstream() && len(missing) > 0 {
			var parts []string
			for _, l := range sortedKeys(missing) {
				parts = append(parts, fmt.Sprintf("%s (%d)", l, missing[l]))
			}
			d.notes = append(d.notes, "Avg (the paper's: SQuAD1.1 and SQuAD2.0 each the mean of F1 and EM, then the mean with MNLI, SST-2 and RACE) is ours only for a pretraining run fine-tuned on every one of them; "+
				"missing, with the number of fine-tuned pretraining runs that lack it: "+strings.Join(parts, ", ")+".")
		}
	}
	if d.anyDownstream() {
		lo, hi := math.MaxInt, 0
		for _, byRun := range d.ftSeeds {
			for _, n := range byRun {
				lo, hi = min(lo, n), max(hi, n)
			}
		}
		seeds := fmt.Sprint(lo)
		if hi != lo {
			seeds = fmt.Sprintf("%d to %d", lo, hi)
		}
		d.notes = append(d.notes, "Downstream columns (ours): each pretraining run's best dev score (the official model.ckpt-best; "+
			"v1 Table 1's RACE: test accuracy at the dev-best evaluation), the median over its fine-tuning seeds as the paper reports ("+seeds+" per pretraining run here), "+
			"then mean ± std over the row's pretraining seeds (n = pretraining runs); official tasks only — stand-in tasks never fill a paper column (exp table downstream shows them).")
	}
	return d
}

func (d dsTable) anyDownstream() bool {
	for c := range dsSources {
		if d.has(c) {
			return true
		}
	}
	return false
}

func hasCol(t *paper.Table, col string) bool {
	for _, c := range t.Columns {
		if c == col {
			return true
		}
	}
	return false
}

// sample is col's values over runs: one per pretraining run with a value,
// seeded by its pretraining seed.
func (d dsTable) sample(col string, runs []RunData) Sample {
	var seeds []int64
	var vals []float64
	for _, r := range runs {
		if v, ok := d.vals[col][r.ID]; ok {
			seeds, vals = append(seeds, r.Seed), append(vals, v)
		}
	}
	return Seeded("", seeds, vals)
}

// shownDownstream lists, in the table's order, the paper's downstream
// columns we fill (at least one run has a value) and those we do not.
func shownDownstream(t *paper.Table, d dsTable) (shown, hidden []string) {
	if t == nil {
		return nil, nil
	}
	for _, c := range t.Columns {
		if !paper.Downstream(c) {
			continue
		}
		if d.has(c) {
			shown = append(shown, c)
		} else {
			hidden = append(hidden, c)
		}
	}
	return shown, hidden
}

// XlargeRACEClaim is v1 Table 1's RACE result as a claim: BERT-xlarge's
// fine-tuned RACE accuracy is below BERT-large's. Each side is one value per
// pretraining run (the median over its fine-tuning seeds), decided over
// pretraining seeds by the rule.
func XlargeRACEClaim(large, xlarge Sample) Claim {
	large.Label, xlarge.Label = "BERT-large", "BERT-xlarge"
	return Greater("BERT-xlarge has lower fine-tuned RACE accuracy than BERT-large (per pretraining seed, the median over fine-tuning seeds)",
		"v1 Table 1: RACE 73.9 (BERT-large) vs 54.3 (BERT-xlarge)", large, xlarge, 0)
}

package table

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/reproml/albert/results"
)

// Downstream is the name of the fine-tuning table (`exp table downstream`).
const Downstream = "downstream"

// FinetuneGroup is the fine-tuning runs of one task from one architecture
// (pretraining model hash) at one profile and fine-tuning configuration,
// split by init: the runs a "pretrained beats random init" claim compares.
type FinetuneGroup struct {
	Task    string
	StandIn bool
	Metric  string // primary metric, read on Split
	Split   string
	Profile string
	Model   string // the pretraining runs' label (without the seed)
	// Variant names the fine-tuning settings that set this group apart from
	// the other groups of its task, profile and architecture (e.g.
	// "pooling=mean", "steps=900"); "" when it is the only one.
	Variant    string
	Pretrained []results.Finetune
	Random     []results.Finetune
}

// Sample is the group's primary metric (%) by fine-tuning seed for one init.
func (g FinetuneGroup) Sample(label string, runs []results.Finetune) Sample {
	var seeds []int64
	var vals []float64
	var lost []Lost
	for _, r := range runs {
		v, ok := r.Best[results.BestKey(g.Split, g.Metric)]
		if r.Status != results.StatusDone || !ok {
			lost = append(lost, lostOf(RunData{Run: r.Run}))
			continue
		}
		seeds, vals = append(seeds, r.Seed), append(vals, 100*v)
	}
	s := Seeded(label, seeds, vals)
	s.Lost = lost
	return s
}

// Median is the median of a sample's values (the paper reports the median
// over fine-tuning runs); NaN for none.
func Median(s Sample) float64 {
	v := append([]float64(nil), s.Values...)
	if len(v) == 0 {
		return math.NaN()
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// FinetuneGroups groups the fine-tuning runs of experiment ("" = every
// experiment) by task, profile, architecture and fine-tuning configuration.
// Pretrained runs of several pretraining seeds of one architecture are
// pooled by fine-tuning seed only when there is one pretraining run.
func FinetuneGroups(s *results.Store, experiment string) ([]FinetuneGroup, error) {
	fts, err := s.Finetunes(results.FinetuneFilter{Experiment: experiment})
	if err != nil {
		return nil, err
	}
	labels := map[int64]string{}
	idx := map[string]int{}
	var out []FinetuneGroup
	for _, f := range fts {
		cfg := ftConfigKey(f.ConfigJSON)
		key := strings.Join([]string{f.Task, f.Profile, f.ModelHash, cfg}, "|")
		if f.Init == results.InitPretrained {
			key += fmt.Sprintf("|pre%d", f.PretrainRunID)
		}
		i, ok := idx[key]
		if !ok {
			i = len(out)
			idx[key] = i
			model := ""
			if f.PretrainRunID != 0 {
				if _, ok := labels[f.PretrainRunID]; !ok {
					if pr, err := s.Run(f.PretrainRunID); err == nil {
						labels[f.PretrainRunID] = pr.Name
					}
				}
				model = labels[f.PretrainRunID]
			}
			out = append(out, FinetuneGroup{Task: f.Task, StandIn: f.StandIn, Metric: f.Metric, Split: f.EvalSplit, Profile: f.Profile, Model: model})
		}
		if f.Init == results.InitPretrained {
			out[i].Pretrained = append(out[i].Pretrained, f)
		} else {
			out[i].Random = append(out[i].Random, f)
		}
	}
	// Each random-init group joins the pretrained groups of its architecture.
	var merged []FinetuneGroup
	var randoms []FinetuneGroup
	for _, g := range out {
		if len(g.Pretrained) > 0 {
			merged = append(merged, g)
		} else {
			randoms = append(randoms, g)
		}
	}
	for _, r := range randoms {
		joined := false
		for i := range merged {
			m := &merged[i]
			if m.Task == r.Task && m.Profile == r.Profile && m.Pretrained[0].ModelHash == r.Random[0].ModelHash &&
				ftConfigKey(m.Pretrained[0].ConfigJSON) == ftConfigKey(r.Random[0].ConfigJSON) {
				m.Random = append(m.Random, r.Random...)
				joined = true
			}
		}
		if !joined {
			merged = append(merged, r)
		}
	}
	nameVariants(merged)
	sort.SliceStable(merged, func(a, b int) bool {
		if merged[a].StandIn != merged[b].StandIn {
			return !merged[a].StandIn
		}
		return merged[a].Task < merged[b].Task
	})
	return merged, nil
}

// nameVariants sets Variant on groups that share task, profile and
// architecture but differ in fine-tuning settings: the keys where a group's
// value is not the most common one among them, as key=value
// ("key=default" where its configuration leaves the key out). The group
// with the common settings has none, so no two such rows read alike.
func nameVariants(gs []FinetuneGroup) {
	family := func(g FinetuneGroup) string {
		return strings.Join([]string{g.Task, g.Profile, g.first().ModelHash}, "|")
	}
	byFamily := map[string][]int{}
	for i, g := range gs {
		byFamily[family(g)] = append(byFamily[family(g)], i)
	}
	for _, members := range byFamily {
		if len(members) < 2 {
			continue
		}
		cfgs := make([]map[string]string, len(members))
		keys := map[string]bool{}
		for j, i := range members {
			raw := map[string]any{}
			js := ftConfigKey(gs[i].first().ConfigJSON)
			if k := strings.Index(js, "{"); k >= 0 {
				_ = json.Unmarshal([]byte(js[k:]), &raw)
			}
			cfgs[j] = map[string]string{}
			for k, v := range raw {
				cfgs[j][k] = fmt.Sprint(v)
				keys[k] = true
			}
		}
		value := func(j int, k string) string {
			if v, ok := cfgs[j][k]; ok {
				return v
			}
			return "default"
		}
		var sorted []string
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		common := map[string]string{}
		for _, k := range sorted {
			count := map[string]int{}
			for j := range cfgs {
				count[value(j, k)]++
			}
			for j := range cfgs { // the first value reaching the highest count
				if v := value(j, k); count[v] > count[common[k]] {
					common[k] = v
				}
			}
		}
		for j, i := range members {
			var parts []string
			for _, k := range sorted {
				if v := value(j, k); v != common[k] {
					parts = append(parts, k+"="+v)
				}
			}
			gs[i].Variant = strings.Join(parts, " ")
		}
	}
}

// first is one run of the group (pretrained if any).
func (g FinetuneGroup) first() results.Finetune {
	if len(g.Pretrained) > 0 {
		return g.Pretrained[0]
	}
	return g.Random[0]
}

// ftConfigKey is the fine-tuning configuration part of a fine-tuning run's
// config JSON (what must be equal for runs to be compared).
func ftConfigKey(js string) string {
	i := strings.Index(js, `"finetune":{`)
	if i < 0 {
		return ""
	}
	j := strings.Index(js[i:], "}")
	return js[i : i+j+1]
}

// BuildDownstream is the fine-tuning table: per task and pretrained model,
// the best dev score (the task's primary metric, %) of the pretrained and
// the random-init runs over fine-tuning seeds (mean ± std and the median,
// which the paper reports), and for each the claim "pretrained beats random
// init" by the verdict rule (paired by fine-tuning seed). Stand-in tasks are
// listed after the official ones and named as stand-ins.
func BuildDownstream(s *results.Store) (*Report, error) {
	groups, err := FinetuneGroups(s, "")
	if err != nil {
		return nil, err
	}
	if len(groups) == 0 {
		return nil, fmt.Errorf("table: %s has %w of fine-tuning (exp run ablations/downstream.toml)", s.Path(), ErrNoRuns)
	}
	rep := &Report{Ablation: Downstream, Title: "fine-tuning: best dev score, pretrained vs random init",
		Columns: []Column{
			{Key: "score", Label: "best dev score (%)", Kind: OursOnly, Prec: 2},
			{Key: "median", Label: "median (%)", Kind: OursText},
		}}
	claims := map[string]*ClaimSet{}
	var order []string
	for _, g := range groups {
		task := g.Task
		if g.StandIn {
			task += " (stand-in)"
		}
		if g.Variant != "" {
			task += " [" + g.Variant + "]"
		}
		metric := g.Split + " " + g.Metric
		for _, side := range []struct {
			init string
			runs []results.Finetune
		}{{"pretrained", g.Pretrained}, {"random init", g.Random}} {
			if len(side.runs) == 0 {
				continue
			}
			smp := g.Sample(side.init, side.runs)
			row := Row{Label: fmt.Sprintf("%s, %s: %s", task, metric, side.init), Profile: g.Profile, Scale: g.Profile,
				Statuses: map[results.Status]int{}, Cells: map[string]Cell{}}
			if side.init == "pretrained" && g.Model != "" {
				row.Label += " (" + g.Model + ")"
			}
			for _, r := range side.runs {
				row.Runs = append(row.Runs, r.ID)
				row.Statuses[r.Status]++
			}
			row.Lost = smp.Lost
			row.Cells["score"] = Cell{Ours: smp}
			row.Cells["median"] = Cell{Text: fmtNum(Median(smp), 2)}
			rep.Rows = append(rep.Rows, row)
		}
		pre, rnd := g.Sample("pretrained", g.Pretrained), g.Sample("random init", g.Random)
		cs, ok := claims[g.Profile]
		if !ok {
			cs = &ClaimSet{Profile: g.Profile, Scale: g.Profile}
			claims[g.Profile] = cs
			order = append(order, g.Profile)
		}
		note := "the paper fine-tunes pretrained models only; pretraining is its premise"
		if g.StandIn {
			note = "a stand-in task (no paper value): the fine-tuning path works when pretraining helps"
		}
		cs.Claims = append(cs.Claims, Compare(fmt.Sprintf("pretrained beats random init on %s (%s)", task, metric), note, pre, rnd, 0))
	}
	for _, p := range order {
		rep.Claims = append(rep.Claims, *claims[p])
	}
	rep.Notes = append(rep.Notes,
		"Scores are each run's best dev evaluation (the official model.ckpt-best), in %; mean ± std over fine-tuning seeds, and the median the paper reports.",
		"Stand-in tasks are built from offline data in an official layout (docs/FINETUNING.md) and never fill a paper column.")
	for _, g := range groups {
		if g.Variant != "" {
			rep.Notes = append(rep.Notes, "A [bracket] after a task names a fine-tuning variant: the settings in which its runs differ from the most common ones among the runs of that task and model (the unbracketed rows).")
			break
		}
	}
	rep.Notes = append(rep.Notes, Rule)
	return rep, nil
}

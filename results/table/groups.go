package table

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/reproml/albert/results"
)

// One sample = one scale. Runs are pooled (averaged as seeds) only when
// their resolved configurations differ by the seed alone: ConfigKey. Claims
// compare configurations of one scale group: runs of one profile whose
// scaling against the paper (factors and changed keys outside the swept
// axes) and whose keys that vary within a grid point (e.g. train.steps set
// with --set) are the same — ScaleGroups.

// ConfigKey is the canonical JSON of the run's resolved configuration
// without its seed, prefixed by its profile: runs with one key differ by the
// seed alone.
func (r RunData) ConfigKey() string {
	c := map[string]any{}
	for k, v := range r.Config {
		if k != "seed" {
			c[k] = v
		}
	}
	b, _ := json.Marshal(c) // maps marshal with sorted keys: canonical
	return r.Profile + "|" + string(b)
}

// flatten lists a config's leaves by dotted path, each as JSON.
func flatten(cfg map[string]any) map[string]string {
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if m, ok := v.(map[string]any); ok {
			for k, x := range m {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, x)
			}
			return
		}
		b, _ := json.Marshal(v)
		out[prefix] = string(b)
	}
	walk("", cfg)
	delete(out, "seed")
	return out
}

// differing lists the config paths whose values differ between the first
// runs of the sets (a path missing from some counts as differing).
func differing(sets [][]RunData) []string {
	if len(sets) < 2 {
		return nil
	}
	var flat []map[string]string
	for _, s := range sets {
		flat = append(flat, flatten(s[0].Config))
	}
	return diffKeys(flat)
}

// diffKeys lists, sorted, the keys whose values are not the same in every
// map (a key missing from some counts as differing).
func diffKeys(ms []map[string]string) []string {
	keys := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			keys[k] = true
		}
	}
	var out []string
	for k := range keys {
		v, ok := ms[0][k]
		for _, m := range ms[1:] {
			if w, has := m[k]; has != ok || w != v {
				out = append(out, k)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// keyLabel is "k=v …" of the run's config at paths.
func keyLabel(r RunData, paths []string) string {
	f := flatten(r.Config)
	var parts []string
	for _, p := range paths {
		v, ok := f[p]
		if !ok {
			v = "unset"
		}
		parts = append(parts, p+"="+strings.Trim(v, `"`))
	}
	return strings.Join(parts, " ")
}

// byConfig splits runs into sets with one ConfigKey each, in first-seen order.
func byConfig(runs []RunData) [][]RunData {
	idx := map[string]int{}
	var out [][]RunData
	for _, r := range runs {
		k := r.ConfigKey()
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], r)
	}
	return out
}

func pointKey(r RunData) string {
	b, _ := json.Marshal(r.Scale.Point)
	return r.Profile + "|" + string(b)
}

// ScaleGroup is the runs of one profile and scale: the unit claims and
// figures are drawn over. Within a group each grid point has one
// configuration.
type ScaleGroup struct {
	Profile string
	Key     string // canonical; equal for runs of one group
	Label   string // the profile, plus "k=v" of the keys that set it apart from the profile's other groups
	Runs    []RunData
}

// ScaleGroups splits runs into scale groups, by profile then label.
func ScaleGroups(runs []RunData) []ScaleGroup {
	// Keys that vary within one grid point (the same paper row) are scale.
	atPoint := map[string][]RunData{}
	for _, r := range runs {
		atPoint[pointKey(r)] = append(atPoint[pointKey(r)], r)
	}
	within := map[string]bool{}
	for _, rs := range atPoint {
		for _, k := range differing(byConfig(rs)) {
			within[k] = true
		}
	}
	// A key scaled against the paper is identified by its factor, not its
	// value: a key that follows a swept one (BERT's heads H/64 and FFN 4H
	// beside H) has one value per row but one factor for the whole profile,
	// so the rows still pair in a claim. A value set with --set or by a
	// changed key without a ratio is identified by its value.
	factor := func(f float64) string { return "×" + strconv.FormatFloat(f, 'g', 4, 64) }
	parts := func(r RunData) map[string]string {
		f := flatten(r.Config)
		out := map[string]string{}
		add := func(k string) {
			if _, swept := r.Scale.Point[k]; swept {
				return
			}
			if x, ok := r.Scale.Factors[k]; ok && !within[k] {
				out[k] = factor(x)
				return
			}
			v, ok := f[k]
			if !ok {
				v = factor(r.Scale.Factors[k])
			}
			out[k] = v
		}
		for k := range r.Scale.Factors {
			add(k)
		}
		for _, k := range r.Scale.Changed {
			add(k)
		}
		for k := range within {
			add(k)
		}
		return out
	}
	idx := map[string]int{}
	var out []ScaleGroup
	for _, r := range runs {
		p := parts(r)
		b, _ := json.Marshal(p)
		key := r.Profile + "|" + string(b)
		i, ok := idx[key]
		if !ok {
			i = len(out)
			idx[key] = i
			out = append(out, ScaleGroup{Profile: r.Profile, Key: key})
		}
		out[i].Runs = append(out[i].Runs, r)
	}
	// Label each group by the scale keys that differ among its profile's groups.
	byProfile := map[string][]int{}
	for i, g := range out {
		byProfile[g.Profile] = append(byProfile[g.Profile], i)
	}
	for _, is := range byProfile {
		var ps []map[string]string
		for _, i := range is {
			ps = append(ps, parts(out[i].Runs[0]))
		}
		diff := diffKeys(ps)
		for j, i := range is {
			out[i].Label = out[i].Profile
			var kv []string
			for _, k := range diff {
				v, ok := ps[j][k]
				if !ok {
					v = "as the paper"
				}
				kv = append(kv, k+"="+strings.Trim(v, `"`))
			}
			if len(kv) > 0 {
				out[i].Label += " " + strings.Join(kv, " ")
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Profile != out[j].Profile {
			return out[i].Profile < out[j].Profile
		}
		return natLess(out[i].Label, out[j].Label)
	})
	return out
}

var numRun = regexp.MustCompile(`\d+(\.\d+)?`)

// natLess orders labels with their numbers compared as numbers
// ("steps=500" before "steps=3000").
func natLess(a, b string) bool {
	na, nb := numRun.FindAllString(a, -1), numRun.FindAllString(b, -1)
	sa, sb := numRun.ReplaceAllString(a, "#"), numRun.ReplaceAllString(b, "#")
	if sa != sb || len(na) != len(nb) {
		return a < b
	}
	for i := range na {
		x, _ := strconv.ParseFloat(na[i], 64)
		y, _ := strconv.ParseFloat(nb[i], 64)
		if x != y {
			return x < y
		}
	}
	return false
}

var atStep = regexp.MustCompile(`at step (\d+)`)

// lostOf describes a run that gave no value.
func lostOf(r RunData) Lost {
	l := Lost{Seed: r.Seed, Status: r.Status, Reason: r.Reason}
	if m := atStep.FindStringSubmatch(r.Reason); m != nil {
		l.Step, _ = strconv.Atoi(m[1])
	} else if r.Status == results.StatusDiverged || r.Status == results.StatusFailed {
		l.Step = r.Step
	}
	return l
}

// evalSizeKey is the eval metric holding the held-out size behind an accuracy.
var evalSizeKey = map[string]string{"mlm_acc": "mlm_n", "nsp_acc": "nsp_n", "sop_acc": "sop_n"}

// PlateauState is where a run stands against the unigram plateau.
type PlateauState int

const (
	PlateauUnknown PlateauState = iota // no mlm_plateau, or no mlm_n to size the margin
	OnPlateau                          // within max(3 SE, 1 point) of it
	PastPlateau                        // above it by more than 3 SE and at least 1 point
)

// Plateau places a done run's held-out MLM accuracy against the unigram
// plateau (eval mlm_plateau, the accuracy of always predicting the most
// frequent token): past it when above by more than 3 binomial standard
// errors sqrt(p(1−p)/mlm_n) and by at least 1 point.
func (r RunData) Plateau() PlateauState {
	acc, ok1 := r.Evals["mlm_acc"]
	pl, ok2 := r.Evals["mlm_plateau"]
	if !ok1 || !ok2 || math.IsNaN(acc) || math.IsNaN(pl) {
		return PlateauUnknown
	}
	if acc > 1 {
		acc /= 100
	}
	if pl > 1 {
		pl /= 100
	}
	gap := acc - pl
	if gap < 0.01 {
		return OnPlateau
	}
	n, ok := r.Evals["mlm_n"]
	if !ok || n <= 0 {
		return PlateauUnknown
	}
	if gap <= 3*math.Sqrt(acc*(1-acc)/n) {
		return OnPlateau
	}
	return PastPlateau
}

// sampleOf collects m over runs of one configuration: a value per done run
// (with its seed), the other runs as lost, and for an accuracy the eval
// set's size and how many runs are still on the unigram plateau.
func sampleOf(runs []RunData, m metric) Sample {
	var seeds []int64
	var vals []float64
	var lost []Lost
	var done []RunData
	for _, r := range runs {
		if r.Status == results.StatusDone {
			seeds, vals = append(seeds, r.Seed), append(vals, value(r, m))
			done = append(done, r)
		} else {
			lost = append(lost, lostOf(r))
		}
	}
	s := Seeded("", seeds, vals)
	s.Lost = lost
	if sk, ok := evalSizeKey[m.key]; ok {
		s.Acc = true
		total, k := 0.0, 0
		for _, r := range done {
			if n, ok := r.Evals[sk]; ok && n > 0 {
				total, k = total+n, k+1
			}
		}
		if k == len(done) && k > 0 {
			s.EvalN = total / float64(k)
		}
		if m.key == "mlm_acc" {
			for _, r := range done {
				if r.Plateau() == OnPlateau {
					s.OnPlateau++
				}
			}
		}
	}
	return s
}

// ScaleNotes lists each profile's factors once: the ones every row shares,
// and the keys whose factor varies by row (a table's scale notes, a
// figure's caption).
func ScaleNotes(runs []RunData) []string { return scaleNotes(runs) }

func scaleNotes(runs []RunData) []string {
	byProfile := map[string][]RunData{}
	var profiles []string
	for _, r := range runs {
		if _, ok := byProfile[r.Profile]; !ok {
			profiles = append(profiles, r.Profile)
		}
		byProfile[r.Profile] = append(byProfile[r.Profile], r)
	}
	sort.Strings(profiles)
	var out []string
	for _, p := range profiles {
		rs := byProfile[p]
		vals := map[string]map[float64]bool{}
		changed := map[string]bool{}
		for _, r := range rs {
			for k, f := range r.Scale.Factors {
				if vals[k] == nil {
					vals[k] = map[float64]bool{}
				}
				vals[k][f] = true
			}
			for _, k := range r.Scale.Changed {
				changed[k] = true
			}
		}
		var common, varies []string
		for _, k := range sortedKeys(vals) {
			name := shortName(k)
			if len(vals[k]) == 1 {
				for f := range vals[k] {
					common = append(common, fmt.Sprintf("×%s %s", trimFloat(f), name))
				}
			} else {
				varies = append(varies, name)
			}
		}
		s := fmt.Sprintf("Scale %q: ", p)
		if len(common) == 0 && len(varies) == 0 && len(changed) == 0 {
			s += "the paper's configuration"
		} else {
			s += "factors vs the paper's configuration at each row's point: " + strings.Join(common, ", ")
			if len(varies) > 0 {
				s += "; varies by row: " + strings.Join(varies, ", ")
			}
			if len(changed) > 0 {
				s += "; changed (no ratio): " + strings.Join(sortedKeys(changed), ", ")
			}
		}
		out = append(out, s+". Numbers at a reduced scale are not paper-scale numbers.")
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func shortName(k string) string {
	for _, a := range shortAxis {
		if a.key == k {
			return a.short
		}
	}
	return k
}

package table

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/reproml/albert/results"
)

// BaselineCommand computes the non-neural sentence baselines a sentence
// table shows beside its rows.
const BaselineCommand = "exp check sentence-baseline"

// BaselineSet is the non-neural NSP/SOP baselines (`exp check
// sentence-baseline`, table baselines) scored on the held-out pairs of one
// data configuration of one scale group of the sentence table: those whose
// data_config_json equals json_extract(runs.config_json, '$.data') of the
// group's runs.
type BaselineSet struct {
	Profile string
	Scale   string // the scale group's label, as in ClaimSet
	// Data is the canonical JSON of the runs' data configuration.
	Data string
	// Differs is "k=v …" of the data keys that set Data apart from the
	// group's other data configurations; "" when the group has one.
	Differs   string
	Baselines []results.Baseline // none stored: empty
	// Command is the command that computes them, for a set without any.
	Command string
}

// Text is the set as one sentence: "Non-neural baselines on the same
// held-out pairs (cpu): NSP tfidf-cosine 63.4% ± 1.5 (n=1024), …", or, when
// none is stored, which command computes them.
func (b BaselineSet) Text() string {
	where := b.Scale
	if b.Differs != "" {
		where = strings.TrimSpace(where + ", data " + b.Differs)
	}
	if where != "" {
		where = " (" + where + ")"
	}
	if len(b.Baselines) == 0 {
		return fmt.Sprintf("No non-neural baselines are stored for the held-out pairs of these runs%s: `%s` computes them (NSP/SOP majority, TF-IDF cosine, bag-of-words logistic regression) and saves them for this table.",
			where, b.Command)
	}
	var parts []string
	for _, x := range b.Baselines {
		parts = append(parts, fmt.Sprintf("%s %s %s%% ± %s (n=%d)", strings.ToUpper(x.Task), x.Name,
			fmtNum(100*x.Accuracy, 1), fmtNum(100*x.StdErr(), 1), x.N))
	}
	return "Non-neural baselines on the same held-out pairs" + where + ": " + strings.Join(parts, ", ") +
		" (accuracy ± binomial SE, from `" + BaselineCommand + "`)."
}

// canonicalJSON re-encodes a JSON value with sorted keys and numbers as
// written, so two encodings of one configuration compare equal.
func canonicalJSON(raw []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || v == nil {
		return "", false
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// dataConfig is the canonical JSON of a run's "data" object: what
// json_extract(config_json, '$.data') gives, re-encoded.
func dataConfig(r RunData) (string, bool) {
	var top map[string]json.RawMessage
	if r.ConfigJSON != "" {
		if err := json.Unmarshal([]byte(r.ConfigJSON), &top); err != nil {
			return "", false
		}
	} else if d, ok := r.Config["data"]; ok { // runs built in memory
		b, err := json.Marshal(d)
		if err != nil {
			return "", false
		}
		top = map[string]json.RawMessage{"data": b}
	}
	raw, ok := top["data"]
	if !ok {
		return "", false
	}
	return canonicalJSON(raw)
}

// baselineSets pairs each scale group's data configurations with the stored
// baselines scored on them. command is the command that computes missing
// ones (without the profile, which is added per group).
func baselineSets(groups []ScaleGroup, bs []results.Baseline, command string) []BaselineSet {
	byData := map[string][]results.Baseline{}
	for _, b := range bs {
		if k, ok := canonicalJSON([]byte(b.DataConfigJSON)); ok {
			byData[k] = append(byData[k], b)
		}
	}
	type pair struct {
		g    ScaleGroup
		data string
		flat map[string]string
	}
	var pairs []pair
	perGroup := map[string]int{}
	for _, g := range groups {
		seen := map[string]bool{}
		for _, r := range g.Runs {
			d, ok := dataConfig(r)
			if !ok || seen[d] {
				continue
			}
			seen[d] = true
			var m map[string]any
			_ = json.Unmarshal([]byte(d), &m)
			pairs = append(pairs, pair{g, d, flatten(m)})
			perGroup[g.Key]++
		}
	}
	// The data keys that differ among a profile's sets: within a group they
	// name each set; for the command they are --set.
	byProfile := map[string][]map[string]string{}
	for _, p := range pairs {
		byProfile[p.g.Profile] = append(byProfile[p.g.Profile], p.flat)
	}
	var out []BaselineSet
	for _, p := range pairs {
		diff := diffKeys(byProfile[p.g.Profile])
		var kv []string
		for _, k := range diff {
			kv = append(kv, k+"="+strings.Trim(p.flat[k], `"`))
		}
		set := BaselineSet{Profile: p.g.Profile, Scale: p.g.Label, Data: p.data, Baselines: byData[p.data]}
		if perGroup[p.g.Key] > 1 {
			set.Differs = strings.Join(kv, " ")
		}
		if len(set.Baselines) == 0 {
			set.Command = command
			if p.g.Profile != "" {
				set.Command += " --profile " + p.g.Profile
			}
			for _, x := range kv {
				set.Command += " --set data." + x
			}
		}
		out = append(out, set)
	}
	return out
}

// withBaselines adds the stored baselines of the report's data
// configurations (the sentence table only). file is the experiment file
// the command that computes missing ones reads.
func (rep *Report) withBaselines(s *results.Store, file string) error {
	if rep.Ablation != "sentence" {
		return nil
	}
	bs, err := s.Baselines()
	if err != nil {
		return fmt.Errorf("table: %w", err)
	}
	cmd := BaselineCommand
	if file != "" {
		cmd += " --file " + file
	}
	rep.Baselines = baselineSets(ScaleGroups(rep.Runs), bs, cmd)
	return nil
}

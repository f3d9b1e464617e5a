package baseline

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/reproml/albert/data"
)

// Report is one `exp check sentence-baseline`: the data configuration the
// pairs come from and every baseline's held-out score.
type Report struct {
	// DataConfigJSON is the canonical JSON of the data configuration (keys
	// sorted, no spaces): the same text as the "data" object of a run's
	// canonical config (experiments.RunConfig.CanonicalJSON), so it matches
	// json_extract(runs.config_json, '$.data') of runs on the same data.
	DataConfigJSON string `json:"data_config"`
	// DataConfigHash is the hex SHA-256 of DataConfigJSON.
	DataConfigHash string                 `json:"data_config_hash"`
	TrainPairs     map[data.Objective]int `json:"train_pairs"`
	Results        []Result               `json:"results"`
}

// ConfigKey returns the canonical JSON of cfg and its hex SHA-256.
func ConfigKey(cfg data.Config) (js, hash string, err error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", "", fmt.Errorf("baseline: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", "", fmt.Errorf("baseline: %w", err)
	}
	if b, err = json.Marshal(v); err != nil { // maps marshal with sorted keys
		return "", "", fmt.Errorf("baseline: %w", err)
	}
	sum := sha256.Sum256(b)
	return string(b), hex.EncodeToString(sum[:]), nil
}

// Run scores every baseline on d's held-out NSP and SOP pairs.
func Run(d *data.Dataset, opt Options) (Report, error) {
	js, hash, err := ConfigKey(d.Config())
	if err != nil {
		return Report{}, err
	}
	in, err := FromDataset(d, opt.Seed)
	if err != nil {
		return Report{}, err
	}
	res, err := Evaluate(in, opt)
	if err != nil {
		return Report{}, err
	}
	rep := Report{DataConfigJSON: js, DataConfigHash: hash, TrainPairs: map[data.Objective]int{}, Results: res}
	for obj, ps := range in.Train {
		rep.TrainPairs[obj] = len(ps)
	}
	return rep, nil
}

// WriteText prints the report as a table: task, baseline, held-out accuracy
// ± binomial standard error, pairs, accuracy on the training pairs, and for
// NSP the accuracy on negatives by the source of their random segment.
func (r Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "task\tbaseline\theld-out acc\t± s.e.\tn\ttrain acc\tnegatives by source (acc, n)")
	for _, x := range r.Results {
		var kinds []string
		for _, k := range slices.Sorted(maps.Keys(x.Negatives)) {
			s := x.Negatives[k]
			kinds = append(kinds, fmt.Sprintf("%s %s (%d)", k, pct(s.Accuracy), s.N))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", strings.ToUpper(string(x.Task)), x.Name,
			pct(x.Accuracy), pct(x.StdErr), x.N, pct(x.TrainAccuracy), strings.Join(kinds, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\ntraining pairs: NSP %d, SOP %d; data config %s\n%s\n",
		r.TrainPairs[data.ObjectiveNSP], r.TrainPairs[data.ObjectiveSOP], r.DataConfigHash[:12], r.DataConfigJSON)
	return err
}

func pct(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*x)
}

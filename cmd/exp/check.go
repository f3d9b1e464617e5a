package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/reproml/albert/data"
	"github.com/reproml/albert/data/baseline"
	"github.com/reproml/albert/experiments"
	"github.com/reproml/albert/results"
)

func init() {
	check := &cobra.Command{
		Use:   "check",
		Short: "Measurements that back what the README states (baselines, sanity checks)",
	}

	var (
		file, profile, db, cache string
		sets                     []string
		asJSON, noSave           bool
	)
	sb := &cobra.Command{
		Use:   "sentence-baseline",
		Short: "Non-neural NSP/SOP baselines on the held-out pairs the trainer scores (is the task learnable?)",
		Long: `sentence-baseline scores simple classifiers on the held-out NSP and SOP pairs of an experiment's
data configuration (the eval sets every run is scored on): the training majority label, the TF-IDF
cosine of the two segments (NSP; threshold fit on training pairs) and a logistic regression on hashed
segment-tagged bag-of-words features (NSP, SOP), trained on pairs built from the training documents.
It prints accuracy ± binomial standard error and stores the numbers in --db (table baselines), where
exp table shows them beside Table 5. Deterministic.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := experiments.Load(file)
			if err != nil {
				return err
			}
			plan, err := f.Plan(profile, sets)
			if err != nil {
				return err
			}
			cfg, err := onlyDataConfig(plan)
			if err != nil {
				return err
			}
			d, err := data.Prepare(cfg, data.ObjectiveNSP, cache)
			if err != nil {
				return err
			}
			rep, err := baseline.Run(d, baseline.DefaultOptions())
			if err != nil {
				return err
			}
			if !noSave {
				if err := saveBaselines(db, rep); err != nil {
					return err
				}
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "held-out sentence pairs of %s (profile %s)\n\n", file, plan.Profile)
			return rep.WriteText(cmd.OutOrStdout())
		},
	}
	fl := sb.Flags()
	fl.StringVar(&file, "file", "ablations/sentence.toml", "experiment file whose data configuration to use")
	fl.StringVar(&profile, "profile", "", "profile (default: the file's default_profile, else cpu)")
	fl.StringArrayVar(&sets, "set", nil, "override `key=value` after the profile, as exp run (e.g. data.seq_len=128)")
	fl.StringVar(&db, "db", experiments.DefaultDB, "results database")
	fl.StringVar(&cache, "cache", cacheRoot, "cache root (corpus/, spm/, prepared/)")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	fl.BoolVar(&noSave, "no-save", false, "do not write to the database")
	check.AddCommand(sb)
	root.AddCommand(check)
}

// onlyDataConfig is the one data configuration of a plan's runs.
func onlyDataConfig(p *experiments.Plan) (data.Config, error) {
	if len(p.Runs) == 0 {
		return data.Config{}, fmt.Errorf("check: %s (profile %s) plans no runs", p.File, p.Profile)
	}
	cfg := p.Runs[0].Data
	for _, r := range p.Runs[1:] {
		if r.Data != cfg {
			return data.Config{}, fmt.Errorf("check: %s (profile %s) has runs on different data configurations (%q vs %q): pick one with --set",
				p.File, p.Profile, p.Runs[0].Label, r.Label)
		}
	}
	return cfg, nil
}

func saveBaselines(db string, rep baseline.Report) error {
	s, err := results.Open(db)
	if err != nil {
		return err
	}
	defer s.Close()
	var rows []results.Baseline
	for _, r := range rep.Results {
		rows = append(rows, results.Baseline{Task: string(r.Task), Name: r.Name, Accuracy: r.Accuracy, N: r.N,
			DataConfigHash: rep.DataConfigHash, DataConfigJSON: rep.DataConfigJSON})
	}
	return s.PutBaselines(rows)
}

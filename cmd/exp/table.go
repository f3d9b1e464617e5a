package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/reproml/albert/experiments"
	"github.com/reproml/albert/model"
	"github.com/reproml/albert/results"
	"github.com/reproml/albert/results/table"
)

func init() {
	var dbPath, outDir, format string
	cmd := &cobra.Command{
		Use:   "table [NAME...]",
		Short: "Print the paper's tables next to ours, with claim verdicts (" + strings.Join(table.Ablations, ", ") + ", " + table.Downstream + ")",
		Long: `table lays out each ablation as the paper's table: per cell the paper's value, ours (mean ± std over
seeds, n, and for accuracies the eval set's binomial standard error) and Δ. A row pools only runs whose
configurations differ by the seed alone; a row measured at two scales is two rows. Then it checks the
paper's claims on each profile and scale separately, by one rule printed under every table: the 95%
interval of the difference over seeds (paired when both sides have the same >= 3 seeds, Welch otherwise)
gives held / did not hold / inconclusive (with the reason) / not enough runs. The sentence table also
shows, for each scale, the non-neural NSP/SOP baselines stored for the same held-out pairs (or the
exp check sentence-baseline command that computes them). The paper's SQuAD, MNLI, SST-2, RACE and Avg
columns show ours when the store has fine-tuning runs of a row's pretraining runs on those official
tasks (never a stand-in): per pretraining run the median over fine-tuning seeds, then mean ± std over
pretraining seeds. The downstream table is every fine-tuning
run's best dev score, pretrained beside random init, with the claim "pretrained beats random init"
per task by the same rule (docs/FINETUNING.md). Tables are printed and
written to --out/<name>.<format> (csv: also <name>-claims.csv). Without NAME, every ablation that has runs.`,
		RunE: func(cmd *cobra.Command, names []string) error {
			switch format {
			case "md", "csv", "tex", "html":
			default:
				return fmt.Errorf("table: --format %q: want md, csv, tex or html", format)
			}
			s, err := openExisting(dbPath)
			if err != nil {
				return err
			}
			defer s.Close()
			named := len(names) > 0
			if !named {
				names = append(append([]string(nil), table.Ablations...), table.Downstream)
			}
			opt := table.Options{ParamsOf: presetParams, Scales: replannedScales}
			var failed []string
			built := 0
			for _, name := range names {
				build := func() (*table.Report, error) { return table.Build(s, name, opt) }
				if name == table.Downstream {
					build = func() (*table.Report, error) { return table.BuildDownstream(s) }
				}
				rep, err := build()
				if err != nil {
					if !named && errors.Is(err, table.ErrNoRuns) {
						fmt.Fprintf(cmd.ErrOrStderr(), "exp table: skipping %s: no runs\n", name)
						continue
					}
					fmt.Fprintln(cmd.ErrOrStderr(), "exp", err)
					failed = append(failed, name)
					continue
				}
				if err := writeReport(cmd, rep, outDir, format); err != nil {
					return err
				}
				built++
			}
			if len(failed) > 0 {
				return fmt.Errorf("table: no table for %s", strings.Join(failed, ", "))
			}
			if built == 0 {
				return fmt.Errorf("table: %s has no runs of any ablation (%s); train some with `exp run ablations/<name>.toml`",
					dbPath, strings.Join(table.Ablations, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dbPath, "db", experiments.DefaultDB, "results database")
	cmd.Flags().StringVar(&outDir, "out", "out/tables", "folder the tables are written to")
	cmd.Flags().StringVar(&format, "format", "md", "md, csv, tex or html (an HTML fragment; exp report writes the whole page)")
	root.AddCommand(cmd)
}

// openExisting opens a results database that must already exist: reading
// tables or figures never creates one.
func openExisting(path string) (*results.Store, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no results database at %s (train with `exp run` first, or pass --db)", path)
		}
		return nil, err
	}
	return results.Open(path)
}

func writeReport(cmd *cobra.Command, rep *table.Report, outDir, format string) error {
	if err := rep.Write(cmd.OutOrStdout(), format); err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout())
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("table: %w", err)
	}
	write := func(path string, fn func(*os.File) error) error {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("table: %w", err)
		}
		err = fn(f)
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("table: %s: %w", path, cerr)
		}
		return err
	}
	path := filepath.Join(outDir, rep.Ablation+"."+format)
	if err := write(path, func(f *os.File) error { return rep.Write(f, format) }); err != nil {
		return err
	}
	if format == "csv" {
		claims := filepath.Join(outDir, rep.Ablation+"-claims.csv")
		if err := write(claims, func(f *os.File) error { return rep.WriteClaimsCSV(f) }); err != nil {
			return err
		}
	}
	return nil
}

// presetParams is the exact parameter count of a paper row's preset.
func presetParams(preset string) (int64, error) {
	p, err := model.LookupPreset(preset)
	if err != nil {
		return 0, err
	}
	return p.Config.Params().Model(), nil
}

// replannedScales re-plans an experiment file under each of its profiles and
// returns every run's scale by config hash, so a run shared with another
// experiment is placed at this experiment's paper point.
func replannedScales(_, file string) (map[string]string, error) {
	f, err := experiments.Load(file)
	if err != nil {
		return nil, err
	}
	profiles := f.Profiles()
	if len(profiles) == 0 {
		profiles = []string{""}
	}
	out := map[string]string{}
	for _, p := range profiles {
		plan, err := f.Plan(p, nil)
		if err != nil {
			return nil, err
		}
		for _, r := range plan.Runs {
			out[r.Hash] = r.Scale.JSON()
		}
	}
	return out, nil
}

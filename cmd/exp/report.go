package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/reproml/albert/experiments"
	"github.com/reproml/albert/report"
	"github.com/reproml/albert/report/browser"
	"github.com/reproml/albert/results"
	"github.com/reproml/albert/results/table"
)

func init() {
	var dbPath, outDir, shot string
	var shotHeight, shotScale float64
	cmd := &cobra.Command{
		Use:   "report [NAME...]",
		Short: "Write one self-contained HTML page of every table, claim, figure and run (" + strings.Join(table.Ablations, ", ") + ")",
		Long: `report writes --out/index.html: for every ablation in the database (or each NAME), in the paper's order,
the paper's table beside ours (the model exp table prints as md, csv and tex), the verdict of each claim
with its interval and n, the figures of exp plot inlined as PNG data URIs with the paper's values where it prints
them, the scale of the runs (profile and factors against the paper), the runs that diverged or failed;
after them the fine-tuning table (exp table downstream) when the database has fine-tuning runs;
then what was not run with the command that would run it, and the provenance of the numbers (commit,
dirty tree, versions, BLAS, device, threads, run times). The file needs no network and no JavaScript:
open it from disk in any browser. The database is only read (results.OpenUnchanged).

--screenshot PATH loads the written page in headless Chromium and saves a PNG of it (the top
--screenshot-height CSS pixels at --screenshot-scale; 0 = the whole page), failing if the page logged
an error, requested anything outside the file, or an image did not decode.`,
		RunE: func(cmd *cobra.Command, names []string) error {
			if _, err := os.Stat(dbPath); err != nil {
				return fmt.Errorf("report: no results database at %s (train with `exp run` first, or pass --db)", dbPath)
			}
			s, done, err := results.OpenUnchanged(dbPath)
			if err != nil {
				return err
			}
			defer done()
			page, err := report.Build(s, names, report.Options{
				Table: table.Options{ParamsOf: presetParams, Scales: replannedScales},
				Plan:  plannedRuns,
			})
			if err != nil {
				return err
			}
			if err := os.MkdirAll(outDir, 0o755); err != nil {
				return fmt.Errorf("report: %w", err)
			}
			path := filepath.Join(outDir, "index.html")
			tmp := path + ".tmp"
			f, err := os.Create(tmp)
			if err != nil {
				return fmt.Errorf("report: %w", err)
			}
			err = page.Write(f)
			if cerr := f.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("report: %s: %w", tmp, cerr)
			}
			if err == nil {
				err = os.Rename(tmp, path)
			}
			if err != nil {
				os.Remove(tmp)
				return err
			}
			for _, m := range page.Missing {
				fmt.Fprintf(cmd.ErrOrStderr(), "exp report: %s: no runs (listed under What was not run)\n", m)
			}
			fmt.Fprintln(cmd.OutOrStdout(), path)
			if shot == "" {
				return nil
			}
			res, err := browser.Load(cmd.Context(), path, browser.Options{ClipHeight: shotHeight, Scale: shotScale})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "chromium: page %dx%d CSS px, %d/%d images decoded, %d console errors, %d requests outside the file\n",
				res.Width, res.Height, res.Decoded(), len(res.Images), len(res.Errors), len(res.Requests))
			if len(res.Errors) > 0 || len(res.Requests) > 0 || res.Decoded() != len(res.Images) {
				return fmt.Errorf("report: %s did not render cleanly: errors %q, requests %q", path, res.Errors, res.Requests)
			}
			if err := os.WriteFile(shot, res.Screenshot, 0o644); err != nil {
				return fmt.Errorf("report: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), shot)
			return nil
		},
	}
	cmd.Flags().StringVar(&shot, "screenshot", "", "also load the page in headless Chromium and save a PNG screenshot here")
	cmd.Flags().Float64Var(&shotHeight, "screenshot-height", 0, "CSS pixels from the top the screenshot shows (0: the whole page)")
	cmd.Flags().Float64Var(&shotScale, "screenshot-scale", 1, "scale of the screenshot (0.5: half size)")
	cmd.Flags().StringVar(&dbPath, "db", experiments.DefaultDB, "results database (only read)")
	cmd.Flags().StringVar(&outDir, "out", "out/report", "folder index.html is written to")
	root.AddCommand(cmd)
}

// plannedRuns re-plans an experiment file under each of its profiles, the
// default first.
func plannedRuns(file string) ([]string, []report.PlannedRun, error) {
	f, err := experiments.Load(file)
	if err != nil {
		return nil, nil, err
	}
	def, err := f.ResolveProfile("")
	if err != nil {
		return nil, nil, err
	}
	profiles := []string{def}
	for _, p := range f.Profiles() {
		if p != def {
			profiles = append(profiles, p)
		}
	}
	var runs []report.PlannedRun
	for _, p := range profiles {
		plan, err := f.Plan(p, nil)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range plan.Runs {
			runs = append(runs, report.PlannedRun{Profile: plan.Profile, Hash: r.Hash, Label: r.Label, ConfigJSON: r.ConfigJSON, ScaleJSON: r.Scale.JSON()})
		}
	}
	return profiles, runs, nil
}

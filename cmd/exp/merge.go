package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/reproml/albert/experiments"
	"github.com/reproml/albert/results"
	"github.com/reproml/albert/slurm"
)

func init() {
	var db, slurmDir string
	cmd := &cobra.Command{
		Use:   "merge [SNAPSHOT...]",
		Short: "Fold the Slurm runs' databases into the main database (idempotent: safe to rerun)",
		Long: `Folds each run database snapshot that exp slurm's tasks publish (by default every
<slurm-dir>/db/*.snap.db) into --db, one transaction per snapshot: runs are matched by config
hash, each run's rows (metrics keyed by run, split, name and step; evals; transitions; provenance)
come from its furthest copy, and merging again leaves the same rows. Run it while tasks train
to see partial curves; run it again when they are done.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			srcs := args
			if len(srcs) == 0 {
				var err error
				if srcs, err = slurm.Snapshots(slurmDir); err != nil {
					return err
				}
				if len(srcs) == 0 {
					return fmt.Errorf("no snapshots under %s/db (submit with exp slurm first, or name the files)", slurmDir)
				}
			}
			st, err := results.Open(db)
			if err != nil {
				return err
			}
			defer st.Close()
			var total results.MergeStats
			for _, src := range srcs {
				m, err := st.Merge(src)
				if err != nil {
					return err
				}
				total.Added += m.Added
				total.Replaced += m.Replaced
				total.Kept += m.Kept
				total.Metrics += m.Metrics
			}
			fmt.Fprintf(cmd.OutOrStdout(), "merged %d databases into %s: %s\n", len(srcs), db, total)
			return nil
		},
	}
	cmd.Flags().StringVar(&db, "db", experiments.DefaultDB, "main results database")
	cmd.Flags().StringVar(&slurmDir, "slurm-dir", slurm.DefaultRoot, "where exp slurm keeps the runs' databases")
	root.AddCommand(cmd)
}

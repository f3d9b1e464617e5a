package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/reproml/albert/experiments"
	"github.com/reproml/albert/results/table"
)

func init() {
	var db, split, metrics string
	c := &cobra.Command{
		Use:   "curves EXPERIMENT",
		Short: "Print each run's metrics by step (held-out by default): the numbers behind a study's curves",
		Long: `Prints, for every run of EXPERIMENT, one row per recorded step with the named metrics
(accuracies in %). The studies under ablations/studies/ have no paper table; this is how the
README's study numbers are read back, e.g.

  exp curves study-sentence-scale --db out/study.db --metrics nsp_acc,nsp_auc,mlm_acc`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := experiments.OpenExisting(db)
			if err != nil {
				return err
			}
			defer st.Close()
			var names []string
			if metrics != "" {
				names = strings.Split(metrics, ",")
			}
			return table.Curves(cmd.OutOrStdout(), st, args[0], split, names)
		},
	}
	c.Flags().StringVar(&db, "db", experiments.DefaultDB, "results database")
	c.Flags().StringVar(&split, "split", "eval", "metric split: eval (held-out) or train")
	c.Flags().StringVar(&metrics, "metrics", "", "comma-separated metric names (default: "+strings.Join(table.DefaultCurveMetrics, ",")+")")
	root.AddCommand(c)
}

package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/reproml/albert/experiments"
	"github.com/reproml/albert/plots"
)

func init() {
	var dbPath, outDir, format string
	cmd := &cobra.Command{
		Use:   "plot",
		Short: "Draw the paper's figures and the ablation charts from the results database",
		Long: `plot regenerates every figure from the database alone, one file per figure with a stable name under
--out: v1-figure1-xlarge (BERT-large vs BERT-xlarge: training loss, held-out MLM accuracy),
v6-figure1-transitions (L2 distance and cosine angle per layer), v6-table3-embedding, v6-table4-sharing,
v6-table5-sentence, v6-table11-depth, v6-table12-width, v6-figure2b-dropout, and runs/run-NNNN (learning
curves of each run: losses, held-out MLM accuracy with the unigram plateau dashed, and for runs that store
them the held-out sentence diagnostics: NSP/SOP accuracy, ROC AUC and majority-class fraction, NSP accuracy
by pair type, held-out sentence losses). Figures whose experiment has no runs are skipped with a note.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openExisting(dbPath)
			if err != nil {
				return err
			}
			defer s.Close()
			files, skipped, err := plots.WriteAll(s, outDir, format)
			for _, sk := range skipped {
				fmt.Fprintln(cmd.ErrOrStderr(), "exp plot: skipped", sk)
			}
			for _, f := range files {
				fmt.Fprintln(cmd.OutOrStdout(), f)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&dbPath, "db", experiments.DefaultDB, "results database")
	cmd.Flags().StringVar(&outDir, "out", "out/figures", "folder the figures are written to")
	cmd.Flags().StringVar(&format, "format", "png", strings.Join(plots.Formats, ", "))
	root.AddCommand(cmd)
}

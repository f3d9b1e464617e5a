package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/reproml/albert/results/paper"
	"github.com/reproml/albert/results/table"
)

func init() {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "params",
		Short: "Exact parameter count of every model preset, next to the paper's printed number",
		Long: `Counts every preset's parameters from the shapes the model builds (each shared tensor once;
tests check that this equals a really built model). Convention: embeddings + E→H projection +
encoder + pooler, without the pretraining heads — the count of the released ALBERT checkpoints.
"rounds" means the paper's number is this count rounded to millions, "rounds w/o pooler" that it is
without the pooler (the paper's BERT and not-shared rows), "no convention" a known discrepancy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ref, err := paper.Load()
			if err != nil {
				return err
			}
			rows := table.Params(ref)
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(w, "preset\tparams\tembeddings\tprojection\tattention\tffn\tpooler\theads\tpaper\t\tmatch\t")
			for _, r := range rows {
				b := r.Breakdown
				pp, at := "–", ""
				if r.Paper != nil {
					pp, at = fmt.Sprintf("%gM", *r.Paper), r.PaperAt
				}
				fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t\n", r.Name, r.Params, b.Embeddings, b.Projection,
					b.Attention, b.FFN, b.Pooler, b.MLMHead+b.SentenceHead, pp, at, r.Match)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			for _, r := range rows {
				if r.Match == string(paper.ParamsNoConvention) && r.Note != "" {
					fmt.Printf("\n%s: %s", r.Name, r.Note)
				}
			}
			fmt.Println()
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: [{name, params, paper, breakdown, …}]")
	root.AddCommand(cmd)
}

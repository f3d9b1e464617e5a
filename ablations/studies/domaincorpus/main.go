// Command domaincorpus writes the pretraining corpus of the domain study in
// ablations/studies/finetune-cpu.toml: the default corpus followed by the
// text of the classification stand-ins' training splits (standin/reviews and
// standin/spam, one document an example; labels and dev splits left out), in
// the corpus layout, with its sources file. Run it after `exp data fetch` and
// one `exp run` of a file with stand-ins (which writes them), from the
// repository root:
//
//	go run ./ablations/studies/domaincorpus out/corpus-domain.txt
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/reproml/albert/data"
	"github.com/reproml/albert/data/corpus"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run ./ablations/studies/domaincorpus OUT.txt")
		os.Exit(2)
	}
	if err := run(os.Args[1], "out/cache", "out/data/standin"); err != nil {
		fmt.Fprintln(os.Stderr, "domaincorpus:", err)
		os.Exit(1)
	}
}

func run(out, cacheRoot, standinRoot string) error {
	base := data.CorpusPath(cacheRoot)
	docs, _, err := corpus.Read(base)
	if err != nil {
		return err
	}
	srcs, err := corpus.ReadSources(base, len(docs))
	if err != nil {
		return err
	}
	if srcs == nil {
		return fmt.Errorf("%s has no sources file: rebuild it with `exp data fetch`", base)
	}
	for _, task := range []string{"reviews", "spam"} {
		added, err := appendTrainText(filepath.Join(standinRoot, task, "train.tsv"), &docs)
		if err != nil {
			return err
		}
		for range added {
			srcs = append(srcs, "standin-"+task)
		}
		fmt.Printf("%s: %d documents\n", task, added)
	}
	if err := corpus.WriteFile(out, docs); err != nil {
		return err
	}
	return corpus.WriteSources(out, srcs)
}

// appendTrainText adds the sentence column of an SST-2-layout train.tsv (a
// header, then sentence<TAB>label) to docs as one document a row.
func appendTrainText(path string, docs *[]corpus.Document) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("%w (the stand-ins are written by `exp run ablations/downstream.toml`)", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	n, line := 0, 0
	for sc.Scan() {
		line++
		if line == 1 {
			continue
		}
		sentence, _, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			return n, fmt.Errorf("%s:%d: want sentence<TAB>label", path, line)
		}
		// SpamAssassin mails carry stray bytes; the corpus must be UTF-8.
		d, err := corpus.BuildDocument(strings.ToValidUTF8(sentence, " "))
		if err != nil {
			return n, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if len(d.Sentences) > 0 {
			*docs = append(*docs, d)
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

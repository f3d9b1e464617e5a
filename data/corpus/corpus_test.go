package corpus

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseLayout(t *testing.T) {
	docs, err := Parse(strings.NewReader("  a one.\nA two.\n\n\n\nB one.\r\n \t\nC one.\nC two."), "x")
	if err != nil {
		t.Fatal(err)
	}
	want := []Document{{[]string{"a one.", "A two."}}, {[]string{"B one."}}, {[]string{"C one.", "C two."}}}
	if !reflect.DeepEqual(docs, want) {
		t.Fatalf("got %q", docs)
	}
	var b strings.Builder
	if err := Write(&b, docs); err != nil {
		t.Fatal(err)
	}
	again, _ := Parse(strings.NewReader(b.String()), "y")
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("round trip: %q", again)
	}
}

func TestParseErrors(t *testing.T) {
	for text, want := range map[string]string{
		"":                    "no documents",
		"\n \n\t\n":           "no documents",
		"ok.\n\nbad \xc3\x28": "f:3: invalid UTF-8",
	} {
		_, err := Parse(strings.NewReader(text), "f")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
	if _, _, err := Read(filepath.Join(t.TempDir(), "missing.txt")); err == nil {
		t.Error("Read of a missing file succeeded")
	}
}

func TestNormalizeAndSplit(t *testing.T) {
	paras := Normalize("CHAPTER 1. Loomings.\r\n\r\nCall me _Ishmael_.  Some years\nago—never mind how long—I went to sea.\n   \nMr. Smith paid $1.50 to Dr. Jones. He left.")
	want := []string{"CHAPTER 1. Loomings.", "Call me Ishmael. Some years ago—never mind how long—I went to sea.", "Mr. Smith paid $1.50 to Dr. Jones. He left."}
	if !reflect.DeepEqual(paras, want) {
		t.Fatalf("paragraphs %q", paras)
	}
	ss, err := SplitSentences(paras[2])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ss, []string{"Mr. Smith paid $1.50 to Dr. Jones.", "He left."}) {
		t.Fatalf("sentences %q", ss)
	}
	d, _ := BuildDocument("One. Two!\n\nThree?")
	if len(d.Sentences) != 3 {
		t.Fatalf("document %q", d.Sentences)
	}
}

func TestBuildRejectsChangedTarball(t *testing.T) {
	dir := t.TempDir()
	for _, s := range DefaultSources {
		os.WriteFile(filepath.Join(dir, s.File), []byte("not the pinned tarball"), 0o644)
	}
	if _, _, err := Build(dir); err == nil || !strings.Contains(err.Error(), "pinned") {
		t.Fatalf("Build on a changed tarball: %v", err)
	}
	if _, _, err := Build(t.TempDir()); err == nil {
		t.Fatal("Build without tarballs succeeded")
	}
}

// TestDefaultCorpus rebuilds the default corpus with Fetch from copies of
// the tarballs that `exp data fetch` left in out/cache/corpus: no network,
// no npm (PATH is emptied), and a second Fetch finds it up to date.
func TestDefaultCorpus(t *testing.T) {
	src := "../../out/cache/corpus"
	for _, s := range DefaultSources {
		if _, err := os.Stat(filepath.Join(src, s.File)); err != nil {
			t.Skip("pinned tarballs not fetched: run `exp data fetch`")
		}
	}
	dir := t.TempDir()
	for _, s := range DefaultSources {
		b, err := os.ReadFile(filepath.Join(src, s.File))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, s.File), b, 0o644)
	}
	t.Setenv("PATH", "")
	var log []string
	logf := func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) }
	path, err := Fetch(dir, logf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(dir, logf); err != nil || !strings.Contains(log[len(log)-1], "up to date") {
		t.Fatalf("second Fetch: %v, log %q", err, log)
	}
	// A corpus built before the sources file (builder version 1, no
	// sidecar) is rebuilt, with the same bytes, and gains its sources file.
	before, _ := os.ReadFile(path)
	os.Remove(SourcesPath(path))
	man, _ := os.ReadFile(filepath.Join(dir, "corpus.json"))
	os.WriteFile(filepath.Join(dir, "corpus.json"), []byte(strings.Replace(string(man), `"builder_version": 2`, `"builder_version": 1`, 1)), 0o644)
	if _, err := Fetch(dir, logf); err != nil || !strings.Contains(log[len(log)-1], "built") {
		t.Fatalf("Fetch of a version-1 corpus: %v, log %q", err, log)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("rebuilding changed corpus.txt")
	}
	docs, _, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range docs {
		n += len(d.Sentences)
	}
	if len(docs) != 371 || n < 70000 {
		t.Fatalf("%d documents, %d sentences; want 371 (233 addresses + 138 Moby-Dick parts)", len(docs), n)
	}
	sources, err := ReadSources(path, len(docs))
	if err != nil || len(sources) != len(docs) {
		t.Fatalf("sources file: %d names, %v", len(sources), err)
	}
	if sources[0] != SourceSOTU || sources[232] != SourceSOTU || sources[233] != SourceMobyDick || sources[len(sources)-1] != SourceMobyDick {
		t.Errorf("sources %q … %q", sources[230:236], sources[len(sources)-1])
	}
	if got := docs[233].Sentences[0]; !strings.HasPrefix(got, "ETYMOLOGY") {
		t.Errorf("first Moby-Dick document starts %q", got)
	}
	if got := docs[235].Sentences[0]; got != "Call me Ishmael." {
		t.Errorf("chapter 1 starts %q (heading not dropped?)", got)
	}
	for _, d := range docs {
		for _, s := range d.Sentences {
			if strings.Contains(s, "_") || strings.Contains(s, "\n") {
				t.Fatalf("sentence %q keeps underscores or newlines", s)
			}
		}
	}
}

package tasks

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/reproml/albert/data/corpus"
)

func TestMailText(t *testing.T) {
	plain := "From someone  Tue Aug  6 11:51:02 2002\nSubject: hi\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\nCaf=C3=A9 is =\nopen.\n"
	if got := strings.TrimSpace(MailText([]byte(plain))); got != "Café is open." {
		t.Errorf("quoted-printable: %q", got)
	}
	multi := "Subject: x\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"B\"\n\n--B\nContent-Type: text/html\n\n<p>html <b>only</b></p>\n--B\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\naGVsbG8g\nd29ybGQ=\n--B--\n"
	if got := strings.TrimSpace(MailText([]byte(multi))); got != "hello world" {
		t.Errorf("multipart plain part: %q", got)
	}
	htmlOnly := "Content-Type: text/html\n\n<html><style>p{}</style><p>Buy &amp; save</p><!-- x --></html>\n"
	if got := strings.Join(strings.Fields(MailText([]byte(htmlOnly))), " "); got != "Buy & save" {
		t.Errorf("html: %q", got)
	}
	if got := oneLine("a\tb\n c  "+strings.Repeat("word ", 10), 12); got != "a b c word" {
		t.Errorf("oneLine: %q", got)
	}
}

// xdr builds an R XDR serialization for tests.
type xdr struct{ bytes.Buffer }

func (x *xdr) i(v int32) { binary.Write(&x.Buffer, binary.BigEndian, v) }
func (x *xdr) char(s string) {
	x.i(9)
	x.i(int32(len(s)))
	x.WriteString(s)
}
func (x *xdr) strs(attr bool, ss ...string) {
	f := int32(16)
	if attr {
		f |= 1 << 9
	}
	x.i(f)
	x.i(int32(len(ss)))
	for _, s := range ss {
		x.char(s)
	}
}
func (x *xdr) header() {
	x.WriteString("X\n")
	x.i(3)
	x.i(0x40100)
	x.i(0x30500)
	x.i(5)
	x.WriteString("UTF-8")
}

// dataFrame serializes data.frame(review = reviews, score = factor(scores)).
func dataFrame(reviews []string, score []int32) []byte {
	var x xdr
	x.header()
	x.i(19 | 1<<9 | 1<<8)
	x.i(2)
	x.strs(false, reviews...)
	x.i(13 | 1<<9 | 1<<8) // factor: INTSXP with levels and class
	x.i(int32(len(score)))
	for _, s := range score {
		x.i(s)
	}
	x.i(2 | 1<<10)
	x.i(1)
	x.char("levels")
	x.strs(false, "great", "other")
	x.i(2 | 1<<10)
	x.i(1)
	x.char("class")
	x.strs(false, "factor")
	x.i(254)
	// data frame attributes: names, then class (the "class" symbol as a reference: 2nd symbol made).
	x.i(2 | 1<<10)
	x.i(1)
	x.char("names")
	x.strs(false, "review", "score")
	x.i(2 | 1<<10)
	x.i(2<<8 | 255) // REFSXP to symbol 2, "class"
	x.strs(false, "data.frame")
	x.i(254)
	return x.Bytes()
}

func TestLazyLoadDataFrame(t *testing.T) {
	obj := dataFrame([]string{"Tasty<br />snack", "Meh"}, []int32{1, 2})
	entry := func(kind byte, payload []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(obj)))
		return append(append(b, kind), payload...)
	}
	rdb := entry('0', obj)
	var second []byte
	if _, err := exec.LookPath("xz"); err == nil {
		cmd := exec.Command("xz", "--compress", "--stdout", "--format=raw", "--lzma2=preset=9")
		cmd.Stdin = bytes.NewReader(obj)
		packed, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		second = entry('Z', packed)
	}
	// Index: list(variables = list(a = c(0, n), b = c(n, m))).
	var x xdr
	x.header()
	x.i(19 | 1<<9)
	x.i(1)
	x.i(19 | 1<<9)
	x.i(2)
	for _, pos := range [][2]int{{0, len(rdb)}, {len(rdb), len(second)}} {
		x.i(13)
		x.i(2)
		x.i(int32(pos[0]))
		x.i(int32(pos[1]))
	}
	x.i(2 | 1<<10)
	x.i(1)
	x.char("names")
	x.strs(false, "stored", "xz")
	x.i(254)
	x.i(2 | 1<<10)
	x.i(1<<8 | 255) // REFSXP to symbol 1, "names"
	x.strs(false, "variables")
	x.i(254)
	var rdx bytes.Buffer
	gz := gzip.NewWriter(&rdx)
	gz.Write(x.Bytes())
	gz.Close()
	db := append(rdb, second...)
	names := []string{"stored"}
	if second != nil {
		names = append(names, "xz")
	}
	for _, name := range names {
		df, err := lazyLoad(rdx.Bytes(), db, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rev, err := df.column("review")
		if err != nil || !reflect.DeepEqual(rev, []string{"Tasty<br />snack", "Meh"}) {
			t.Errorf("%s: reviews %q, %v", name, rev, err)
		}
		sc, err := df.column("score")
		if err != nil || !reflect.DeepEqual(sc, []string{"great", "other"}) {
			t.Errorf("%s: scores %q, %v", name, sc, err)
		}
		if _, err := df.column("product"); err == nil {
			t.Errorf("%s: a missing column was found", name)
		}
	}
	if _, err := lazyLoad(rdx.Bytes(), db, "absent"); err == nil {
		t.Error("an absent object was found")
	}
	if _, err := unserialize([]byte("X\n\x00\x00")); err == nil {
		t.Error("truncated serialization accepted")
	}
}

func TestWriteSST2BalancedAndReadable(t *testing.T) {
	var train, dev []labelled
	for i := range 40 {
		train = append(train, labelled{key: fmt.Sprint("t", i), text: fmt.Sprint("text ", i%30), label: i % 3 % 2})
	}
	for i := range 10 {
		dev = append(dev, labelled{key: fmt.Sprint("d", i), text: fmt.Sprint("dev ", i), label: i % 2})
	}
	root := t.TempDir()
	task, _ := Lookup(StandInSpam)
	dir := filepath.Join(root, task.Dir)
	os.MkdirAll(dir, 0o755)
	o := StandInOptions{Train: 10, Dev: 4, Seed: 3}
	if err := writeSST2(dir, train, dev, o); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range []Split{Train, Dev} {
		set := mustRead(t, root, StandInSpam, s)
		n := [2]int{}
		for _, ex := range set.Examples {
			n[ex.Label]++
			if seen[ex.TextA] {
				t.Errorf("%s: text %q used twice", s, ex.TextA)
			}
			seen[ex.TextA] = true
		}
		want := map[Split]int{Train: 5, Dev: 2}[s]
		if n[0] != want || n[1] != want {
			t.Errorf("%s: classes %v, want %d each", s, n, want)
		}
	}
	if err := writeSST2(dir, train, dev, StandInOptions{Train: 10, Dev: 30, Seed: 3}); err == nil {
		t.Error("a dev split larger than its pool was accepted")
	}
}

func clozeDocs(n int) []corpus.Document {
	var docs []corpus.Document
	for d := range n {
		var s []string
		for k := range 12 {
			s = append(s, fmt.Sprintf("Document %d says sentence number %d here.", d, k))
		}
		docs = append(docs, corpus.Document{Sentences: s})
	}
	return docs
}

func TestMakeCloze(t *testing.T) {
	docs := clozeDocs(3)
	items, err := MakeCloze(docs, 20, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	answers := [4]int{}
	for _, it := range items {
		var d, k int
		if _, err := fmt.Sscanf(it.Options[it.Answer], "Document %d says sentence number %d here.", &d, &k); err != nil {
			t.Fatal(err)
		}
		want := strings.Join(docs[d].Sentences[k-ClozeContext:k], " ")
		if it.Article != want {
			t.Errorf("article %q does not end right before its answer %q", it.Article, it.Options[it.Answer])
		}
		for j, o := range it.Options {
			if j != it.Answer && strings.HasPrefix(o, fmt.Sprintf("Document %d ", d)) {
				t.Errorf("distractor %q from the passage's own document", o)
			}
		}
		answers[it.Answer]++
	}
	for i, n := range answers {
		if n == 0 {
			t.Errorf("answer %c never used in 20 items: %v", 'A'+i, answers)
		}
	}
	again, _ := MakeCloze(docs, 20, rand.New(rand.NewPCG(1, 2)))
	if !reflect.DeepEqual(items, again) {
		t.Error("same seed, different items")
	}
	if _, err := MakeCloze(docs, 1000, rand.New(rand.NewPCG(1, 2))); err == nil {
		t.Error("more items than passages accepted")
	}
}

// TestBuildClozeReadBack builds the cloze stand-in from a small corpus and
// reads it back with the RACE reader.
func TestBuildClozeReadBack(t *testing.T) {
	cache, root := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(cache, "corpus"), 0o755)
	if err := corpus.WriteFile(filepath.Join(cache, "corpus", corpus.FileName), clozeDocs(30)); err != nil {
		t.Fatal(err)
	}
	o := StandInOptions{Train: 40, Dev: 10, Seed: 5, HeldOutDocs: 8}
	if err := BuildCloze(root, cache, o); err != nil {
		t.Fatal(err)
	}
	train := mustRead(t, root, StandInCloze, Train).Examples
	dev := mustRead(t, root, StandInCloze, Dev).Examples
	if len(train) != 40 || len(dev) != 10 {
		t.Fatalf("%d train, %d dev questions", len(train), len(dev))
	}
	docOf := func(s string) string { return strings.SplitN(s, " says", 2)[0] }
	trainDocs := map[string]bool{}
	for _, ex := range train {
		trainDocs[docOf(ex.Article)] = true
		if ex.Question != ClozeQuestion || len(ex.Options) != 4 || ex.Subset != SubsetHigh {
			t.Fatalf("%+v", ex)
		}
	}
	for _, ex := range dev {
		if trainDocs[docOf(ex.Article)] {
			t.Errorf("dev passage from a training document: %q", ex.Article)
		}
	}
	// A second build with the same inputs is a no-op.
	stamp := filepath.Join(root, "standin", "cloze", "train", "high", "1.txt")
	os.WriteFile(stamp, []byte("marker"), 0o644)
	if err := BuildCloze(root, cache, o); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(stamp); string(b) != "marker" {
		t.Error("an up-to-date stand-in was rebuilt")
	}
	if err := BuildCloze(root, t.TempDir(), o); err == nil || !strings.Contains(err.Error(), "exp data fetch") {
		t.Errorf("missing corpus: %v", err)
	}
}

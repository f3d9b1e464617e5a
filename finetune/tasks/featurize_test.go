package tasks

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/reproml/albert/data/tokenizer"
)

func TestPairFeatureLayoutAndTruncation(t *testing.T) {
	v := testVocab(t, "a", "b", "c", "d", "e", "x", "y")
	// ids: a=5 b=6 c=7 d=8 e=9 x=10 y=11; [CLS]=2 [SEP]=3 <pad>=0
	task := mustTask(t, RTE)
	ex := []Example{{TextA: "a b c d e", TextB: "x y", Label: 1}}
	fs, err := Featurize(task, ex, v, Options{MaxSeqLen: 8})
	if err != nil {
		t.Fatal(err)
	}
	// 5 budget tokens: A loses from its end until it is not longer than B
	// (a b c, then 3 > 2 pops again: a b), then B is popped on ties: 5 = a b c + x y.
	f := fs[0]
	if got, want := f.IDs[0], []int64{2, 5, 6, 7, 3, 10, 11, 3}; !reflect.DeepEqual(got, want) {
		t.Errorf("ids %v (%s), want %v", got, pieces(v, got), want)
	}
	if got, want := f.Segments[0], []int64{0, 0, 0, 0, 0, 1, 1, 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("segments %v, want %v", got, want)
	}
	if f.Label != 1 || len(f.IDs) != 1 {
		t.Errorf("label %d, %d choices", f.Label, len(f.IDs))
	}
	// Single sentence, padded.
	fs, err = Featurize(mustTask(t, SST2), []Example{{TextA: "A B", Label: 0}}, v, Options{MaxSeqLen: 6})
	if err != nil {
		t.Fatal(err)
	}
	f = fs[0]
	if !reflect.DeepEqual(f.IDs[0], []int64{2, 5, 6, 3, 0, 0}) || !reflect.DeepEqual(f.Mask[0], []int64{1, 1, 1, 1, 0, 0}) || !reflect.DeepEqual(f.Segments[0], []int64{0, 0, 0, 0, 0, 0}) {
		t.Errorf("single: ids %v mask %v seg %v", f.IDs[0], f.Mask[0], f.Segments[0])
	}
	// Regression target.
	fs, err = Featurize(mustTask(t, STSB), []Example{{TextA: "a", TextB: "b", Score: 3.8}}, v, Options{MaxSeqLen: 6})
	if err != nil || fs[0].Target != float32(3.8) {
		t.Errorf("STS-B target %v, %v", fs[0].Target, err)
	}
	// A label outside the task's labels is an error naming the example.
	if _, err := Featurize(task, []Example{{ID: "x1", TextA: "a", Label: 2}}, v, Options{MaxSeqLen: 6}); err == nil || !strings.Contains(err.Error(), "x1") {
		t.Errorf("bad label: %v", err)
	}
}

func TestTruncatePairLongestFirst(t *testing.T) {
	a, b := truncatePair([]int64{1, 2, 3, 4, 5, 6}, []int64{7, 8}, 5)
	if !reflect.DeepEqual(a, []int64{1, 2, 3}) || !reflect.DeepEqual(b, []int64{7, 8}) {
		t.Errorf("a %v b %v", a, b)
	}
	a, b = truncatePair([]int64{1, 2}, []int64{3, 4}, 3)
	if !reflect.DeepEqual(a, []int64{1, 2}) || !reflect.DeepEqual(b, []int64{3}) {
		t.Errorf("tie: a %v b %v (B pops on ties)", a, b)
	}
}

func TestRACEFeature(t *testing.T) {
	words := strings.Fields("the sky was blue he saw four dogs is today red green black")
	v := testVocab(t, words...)
	id := func(w string) int64 { i, _ := v.Model.ID("\u2581" + w); return int64(i) }
	ex := Example{Article: "the sky was blue he saw four dogs", Question: "the sky is _ today",
		Options: []string{"red", "blue", "green", "black"}, Label: 1}
	// MaxQALen 3 keeps the LAST three tokens of "the sky is blue today":
	// "is blue today"; the article keeps 12-3-3 = 6 tokens.
	fs, err := Featurize(mustTask(t, RACE), []Example{ex}, v, Options{MaxSeqLen: 12, MaxQALen: 3})
	if err != nil {
		t.Fatal(err)
	}
	f := fs[0]
	if len(f.IDs) != 4 || len(f.IDs[0]) != 12 || f.Label != 1 {
		t.Fatalf("shape %d×%d, label %d", len(f.IDs), len(f.IDs[0]), f.Label)
	}
	want := []int64{2, id("the"), id("sky"), id("was"), id("blue"), id("he"), id("saw"), 3, id("is"), id("blue"), id("today"), 3}
	if !reflect.DeepEqual(f.IDs[1], want) {
		t.Errorf("option B:\n got  %s\n want %s", pieces(v, f.IDs[1]), pieces(v, want))
	}
	if got := f.Segments[1]; !reflect.DeepEqual(got, []int64{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1}) {
		t.Errorf("segments %v", got)
	}
	// Without a blank the option is appended.
	if got := QAText("how many dogs", "four"); got != "how many dogs four" {
		t.Errorf("QAText appended: %q", got)
	}
	if got := QAText("pick _ and _ .", "x"); got != "pick x and x ." {
		t.Errorf("QAText blanks: %q", got)
	}
	// Short inputs are padded, not truncated.
	fs, err = Featurize(mustTask(t, RACE), []Example{ex}, v, Options{MaxSeqLen: 20, MaxQALen: 128 - 111})
	if err != nil {
		t.Fatal(err)
	}
	if n := realLen(fs[0].Mask[3]); n != 1+8+1+5+1 {
		t.Errorf("untruncated option D: %d real tokens, want 16", n)
	}
	if _, err := Featurize(mustTask(t, RACE), []Example{ex}, v, Options{MaxSeqLen: 12, MaxQALen: 10}); err == nil {
		t.Error("MaxQALen > MaxSeqLen-3 accepted")
	}
}

// TestSQuADWindows checks squad_utils' sliding windows by hand: 10 context
// tokens, a 1-token question, MaxSeqLen 8 (4 context tokens per window),
// stride 2 → windows [0,4) [2,6) [4,8) [6,10).
func TestSQuADWindows(t *testing.T) {
	words := strings.Fields("one two three four five six seven eight nine ten what")
	v := testVocab(t, words...)
	ctx := "one two three four five six seven eight nine ten"
	ex := Example{ID: "q", Question: "what", Context: ctx,
		Answers: []Answer{{Text: "six seven", Start: strings.Index(ctx, "six")}}}
	fs, err := Featurize(mustTask(t, SQuAD11), []Example{ex}, v, Options{MaxSeqLen: 8, MaxQueryLen: 64, DocStride: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 4 {
		t.Fatalf("%d windows, want 4", len(fs))
	}
	type win struct{ start, end, windowStart int }
	want := []win{{0, 0, 0}, {0, 0, 2}, {4, 5, 4}, {0, 0, 6}}
	for w, f := range fs {
		got := win{f.Start, f.End, f.WindowStart}
		if got != want[w] || f.Window != w || f.ContextStart != 3 || f.ContextLen != 4 {
			t.Errorf("window %d: start/end/windowStart %v, window %d, context %d+%d; want %v, context 3+4", w, got, f.Window, f.ContextStart, f.ContextLen, want[w])
		}
		if f.Impossible != (f.Start == 0) {
			t.Errorf("window %d: impossible %v with start %d", w, f.Impossible, f.Start)
		}
	}
	// Window 2 = [CLS] what [SEP] five six seven eight [SEP].
	f := fs[2]
	if got := pieces(v, f.IDs[0]); got != "[CLS] ▁what [SEP] ▁five ▁six ▁seven ▁eight [SEP]" {
		t.Errorf("window 2 tokens %s", got)
	}
	if !reflect.DeepEqual(f.Segments[0], []int64{0, 0, 0, 1, 1, 1, 1, 1}) {
		t.Errorf("segments %v", f.Segments[0])
	}
	// Byte spans map back to the words.
	for pos, w := range map[int]string{3: "five", 4: "six", 5: "seven", 6: "eight"} {
		if got := ctx[f.CharStart[pos]:f.CharEnd[pos]]; got != w {
			t.Errorf("position %d covers %q, want %q", pos, got, w)
		}
	}
	if f.CharStart[0] != -1 || f.CharStart[1] != -1 || f.CharStart[7] != -1 {
		t.Errorf("non-context positions mapped: %v", f.CharStart)
	}
	// Max context: token 4 ("five") is best in window 1 (2 left, 1 right)
	// and token 5 ("six") in window 2 (1 left, 2 right).
	if fs[1].MaxContext[3+2] != true || fs[2].MaxContext[3+0] != false {
		t.Errorf("token 4: max context in window 1 %v, window 2 %v; want true, false", fs[1].MaxContext[5], fs[2].MaxContext[3])
	}
	if fs[1].MaxContext[3+3] != false || fs[2].MaxContext[3+1] != true {
		t.Errorf("token 5: max context in window 1 %v, window 2 %v; want false, true", fs[1].MaxContext[6], fs[2].MaxContext[4])
	}
	// The question keeps its first MaxQueryLen tokens.
	ex.Question = "what one two"
	fs, err = Featurize(mustTask(t, SQuAD11), []Example{ex}, v, Options{MaxSeqLen: 8, MaxQueryLen: 2, DocStride: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := pieces(v, fs[0].IDs[0][:4]); got != "[CLS] ▁what ▁one [SEP]" || fs[0].ContextLen != 3 {
		t.Errorf("truncated query: %s, context %d", got, fs[0].ContextLen)
	}
}

func TestSQuADSubwordSpansAndImpossible(t *testing.T) {
	v := testVocab(t, "costs", "two", "euros", "what", "au", "lait")
	ctx := "Café au lait costs two euros."
	ex := []Example{
		{ID: "a1", Question: "What costs two euros?", Context: ctx, Answers: []Answer{{"Café au lait", 0}}},
		{ID: "a2", Question: "What?", Context: ctx, IsImpossible: true},
	}
	fs, err := Featurize(mustTask(t, SQuAD20), ex, v, DefaultOptions(40))
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 || fs[0].ExampleIndex != 0 || fs[1].ExampleIndex != 1 {
		t.Fatalf("%d features", len(fs))
	}
	f := fs[0]
	// "Café" has no piece: ▁ c a f é, one token per character with its own
	// bytes of the original (C, é two bytes); "euros." is ▁euros and ".".
	var spans []string
	for p := f.ContextStart; p < f.ContextStart+f.ContextLen; p++ {
		spans = append(spans, ctx[f.CharStart[p]:f.CharEnd[p]])
	}
	if got := strings.Join(spans, "|"); got != "|C|a|f|é|au|lait|costs|two|euros|." {
		t.Errorf("token spans %q", got)
	}
	if got := ctx[f.CharStart[f.Start]:f.CharEnd[f.End]]; got != "Café au lait" || f.Impossible {
		t.Errorf("answer tokens %d..%d cover %q (impossible %v)", f.Start, f.End, got, f.Impossible)
	}
	if fs[1].Start != 0 || fs[1].End != 0 || !fs[1].Impossible {
		t.Errorf("unanswerable: %d/%d impossible %v", fs[1].Start, fs[1].End, fs[1].Impossible)
	}
}

// TestContextTokensMatchWholeText checks, with a real SentencePiece model,
// that encoding a context word by word gives the ids of encoding it whole.
func TestContextTokensMatchWholeText(t *testing.T) {
	if _, err := exec.LookPath("spm_train"); err != nil {
		t.Skip("spm_train not installed (apt-get install sentencepiece)")
	}
	r := rand.New(rand.NewPCG(7, 8))
	words := strings.Fields("the whale ship captain sea ahab (white) \"call me\" ishmael. years-ago; never mind how long precisely, having little or no money £5 €3 – 1851")
	var lines []string
	for range 2000 {
		var b strings.Builder
		for k := range 4 + r.IntN(12) {
			if k > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[r.IntN(len(words))])
		}
		lines = append(lines, b.String())
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	if err := writeLines(in, lines); err != nil {
		t.Fatal(err)
	}
	m, err := tokenizer.Train(in, filepath.Join(dir, "spm"), 200)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVocab(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range append(lines[:200], "Call me  Ishmael.\tSome years ago—never mind", "ＦＵＬＬ width ﬁsh") {
		var got []int64
		for _, tk := range tokenizeContext(v, line) {
			got = append(got, tk.id)
			if tk.start < 0 || tk.end > len(line) || tk.start > tk.end {
				t.Fatalf("%q: span %d..%d", line, tk.start, tk.end)
			}
		}
		if want := v.Encode(line); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%q:\n words %v\n whole %v", line, got, want)
		}
	}
}

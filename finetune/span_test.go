package finetune

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reproml/albert/finetune/tasks"
)

// Span toy layout: [CLS] q [SEP] then spanContext context tokens, [SEP],
// padding to spanSeqLen. An answer is a marked span: token 7 ("alpha"), 0–2
// noise tokens, token 8 ("omega"). A v2 question without an answer has no
// markers.
const (
	spanSeqLen   = 16
	spanCtxStart = 3
	spanContext  = 11
	tokBegin     = 7
	tokEnd       = 8
)

func spanWord(id int64) string {
	switch id {
	case tokBegin:
		return "alpha"
	case tokEnd:
		return "omega"
	}
	return fmt.Sprintf("w%d", id)
}

// spanExample is the k-th toy question: its example (context text, gold
// answer) and its one feature (the window is the whole context).
func spanExample(k, index int, impossible bool) (tasks.Example, tasks.Feature) {
	ctx := make([]int64, spanContext)
	for i := range ctx {
		ctx[i] = int64(10 + (k*7+i*5)%30)
	}
	gap := k % 3
	a := (k * 3) % (spanContext - gap - 1)
	if !impossible {
		ctx[a], ctx[a+gap+1] = tokBegin, tokEnd
	}
	f := tasks.Feature{ExampleIndex: index, ContextStart: spanCtxStart, ContextLen: spanContext, Impossible: impossible}
	ids := make([]int64, spanSeqLen)
	seg := make([]int64, spanSeqLen)
	mask := make([]int64, spanSeqLen)
	f.CharStart, f.CharEnd, f.MaxContext = make([]int, spanSeqLen), make([]int, spanSeqLen), make([]bool, spanSeqLen)
	copy(ids, []int64{2, 4, 3})
	var words []string
	off := 0
	for i := 0; i < spanSeqLen; i++ {
		f.CharStart[i], f.CharEnd[i] = -1, -1
	}
	for i, id := range ctx {
		p := spanCtxStart + i
		ids[p], seg[p] = id, 1
		w := spanWord(id)
		f.CharStart[p], f.CharEnd[p], f.MaxContext[p] = off, off+len(w), true
		words = append(words, w)
		off += len(w) + 1
	}
	ids[spanCtxStart+spanContext], seg[spanCtxStart+spanContext] = 3, 1
	for i := 0; i <= spanCtxStart+spanContext; i++ {
		mask[i] = 1
	}
	f.IDs, f.Segments, f.Mask = [][]int64{ids}, [][]int64{seg}, [][]int64{mask}
	ex := tasks.Example{ID: fmt.Sprintf("q%04d", k), Question: "w4", Context: strings.Join(words, " "), IsImpossible: impossible, Label: -1}
	if !impossible {
		f.Start, f.End = spanCtxStart+a, spanCtxStart+a+gap+1
		ex.Answers = []tasks.Answer{{Text: strings.Join(words[a:a+gap+2], " "), Start: f.CharStart[f.Start]}}
	}
	return ex, f
}

// spanData is a toy SQuAD task: n training and dev questions (v2: every
// third one unanswerable).
func spanData(version, n, dev int) *Data {
	task, _ := tasks.Lookup(tasks.SQuAD11)
	if version == 2 {
		task, _ = tasks.Lookup(tasks.SQuAD20)
	}
	split := func(n, off int) ([]tasks.Example, []tasks.Feature) {
		var exs []tasks.Example
		var fs []tasks.Feature
		for i := 0; i < n; i++ {
			ex, f := spanExample(off+i, i, version == 2 && (off+i)%3 == 0)
			exs, fs = append(exs, ex), append(fs, f)
		}
		return exs, fs
	}
	d := &Data{Task: task}
	_, d.Train = split(n, 0)
	ex, fs := split(dev, 1000)
	d.Evals = []EvalSet{{Split: tasks.Dev, Examples: ex, Features: fs}}
	return d
}

// The span head learns to find a marked span from a random init: the answer
// is the text from the token-7 word to the token-8 word, 2 to 4 tokens, at a
// varying place in the context. Dev EM and F1 are scored by the official
// rules from the predicted positions mapped back to the context's text, and
// each evaluation writes predictions.json (every dev id → its answer; v2
// also null_odds.json) beside the run.
func TestSpanHeadLearnsMarkedSpans(t *testing.T) {
	defer lockThread()()
	for _, version := range []int{1, 2} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			st := openStore(t)
			c := tinyConfig(150)
			c.MaxSeqLen, c.MaxAnswerLen, c.EvalEvery = spanSeqLen, 30, 50
			d := spanData(version, 120, 45)
			dir := t.TempDir()
			job := Job{RunID: testRun(t, st, fmt.Sprintf("span%d", version)), Name: "span", Seed: 1, Encoder: tinyEncoder(), Config: c,
				Data: d, Dir: dir, Device: "cpu", Store: st}
			res, err := Run(context.Background(), job)
			if err != nil {
				t.Fatal(err)
			}
			em, f1 := bestValue(res, tasks.MetricEM), bestValue(res, tasks.MetricF1)
			t.Logf("v%d: best dev EM %.3f F1 %.3f at step %d", version, em, f1, res.BestStep)
			want := 0.9
			if version == 2 {
				want = 0.8 // the null answer needs the absence of the markers, seen from [CLS]
			}
			if !(em >= want && f1 >= em) {
				t.Errorf("v%d: dev EM %.3f, F1 %.3f; want EM >= %.2f and F1 >= EM", version, em, f1, want)
			}
			if version == 2 {
				// evaluate-v2.0's split by kind: 30 answerable and 15 unanswerable dev questions.
				has, no := bestValue(res, tasks.MetricHasAnsEM), bestValue(res, tasks.MetricNoAnsAcc)
				if math.Abs((30*has+15*no)/45-em) > 1e-9 || math.IsNaN(bestValue(res, tasks.MetricHasAnsF1)) {
					t.Errorf("HasAns EM %.3f, NoAns %.3f do not make EM %.3f", has, no, em)
				}
			}
			pdir := predictionsDir(dir, tasks.Dev, res.BestStep)
			var preds map[string]string
			b, err := os.ReadFile(filepath.Join(pdir, "predictions.json"))
			if err != nil || json.Unmarshal(b, &preds) != nil {
				t.Fatalf("predictions.json: %v\n%s", err, b)
			}
			right := 0
			for _, ex := range d.Evals[0].Examples {
				got, ok := preds[ex.ID]
				if !ok {
					t.Fatalf("predictions.json lacks %s", ex.ID)
				}
				gold := ""
				if len(ex.Answers) > 0 {
					gold = ex.Answers[0].Text
				}
				if got == gold {
					right++
				}
			}
			if len(preds) != len(d.Evals[0].Examples) || math.Abs(float64(right)/float64(len(preds))-em) > 1e-9 {
				t.Errorf("predictions.json: %d answers, %d exactly right; the stored EM is %.3f of %d", len(preds), right, em, len(d.Evals[0].Examples))
			}
			_, err = os.Stat(filepath.Join(pdir, "null_odds.json"))
			if (version == 2) != (err == nil) {
				t.Errorf("v%d: null_odds.json: %v", version, err)
			}
		})
	}
}

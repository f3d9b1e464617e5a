package score

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/reproml/albert/finetune/tasks"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestClassificationMetrics(t *testing.T) {
	gold := []int{1, 1, 0, 0, 1}
	pred := []int{1, 0, 0, 1, 1} // tp 2, fn 1, tn 1, fp 1
	if v, _ := Accuracy(gold, pred); !near(v, 0.6) {
		t.Errorf("accuracy %v, want 0.6", v)
	}
	if v, _ := MCC(gold, pred); !near(v, 1.0/6) { // (2·1 − 1·1)/√(3·3·2·2)
		t.Errorf("MCC %v, want 1/6", v)
	}
	if v, _ := F1(gold, pred); !near(v, 2.0/3) { // 2·2/(2·2+1+1)
		t.Errorf("F1 %v, want 2/3", v)
	}
	if v, err := MCC(gold, []int{0, 0, 0, 0, 0}); err != nil || v != 0 {
		t.Errorf("MCC of a constant prediction %v, %v; want 0", v, err)
	}
	if v, _ := F1(gold, []int{0, 0, 0, 0, 0}); v != 0 {
		t.Errorf("F1 without positives %v", v)
	}
	if _, err := MCC([]int{0, 2}, []int{0, 1}); err == nil {
		t.Error("MCC accepted label 2")
	}
	if _, err := Accuracy([]int{1}, []int{1, 0}); err == nil {
		t.Error("length mismatch accepted")
	}
	m, err := Classification(mustTask(t, tasks.MRPC), gold, pred)
	if err != nil || len(m) != 2 || !near(m[tasks.MetricF1], 2.0/3) || !near(m[tasks.MetricAccuracy], 0.6) {
		t.Errorf("MRPC metrics %v, %v", m, err)
	}
}

func mustTask(t *testing.T, name string) tasks.Task {
	task, ok := tasks.Lookup(name)
	if !ok {
		t.Fatalf("no task %s", name)
	}
	return task
}

func TestCorrelations(t *testing.T) {
	// Pearson of (1,2,3) and (2,4,7): cov 5, |dx| √2, |dy| √114/3 → 15/√228.
	if v, err := Pearson([]float64{1, 2, 3}, []float64{2, 4, 7}); err != nil || !near(v, 15/math.Sqrt(228)) {
		t.Errorf("Pearson %v, %v", v, err)
	}
	// Spearman with a tie: ranks (1, 2.5, 2.5, 4) and (1, 3, 2, 4) → 4.5/√22.5.
	if v, err := Spearman([]float64{1, 2, 2, 3}, []float64{1, 3, 2, 4}); err != nil || !near(v, 4.5/math.Sqrt(22.5)) {
		t.Errorf("Spearman %v, %v", v, err)
	}
	if v, err := Pearson([]float64{1, 2, 3}, []float64{4, 4, 4}); !errors.Is(err, ErrUndefined) || !math.IsNaN(v) {
		t.Errorf("constant prediction: %v, %v", v, err)
	}
	m, err := Regression([]float64{1, 2, 2, 3}, []float64{1, 3, 2, 4})
	if err != nil || len(m) != 2 || !near(m[tasks.MetricSpearman], 4.5/math.Sqrt(22.5)) {
		t.Errorf("regression metrics %v, %v", m, err)
	}
}

func TestMultipleChoice(t *testing.T) {
	ex := []tasks.Example{
		{Label: 0, Subset: tasks.SubsetMiddle}, {Label: 1, Subset: tasks.SubsetMiddle},
		{Label: 2, Subset: tasks.SubsetHigh}, {Label: 3, Subset: tasks.SubsetHigh}, {Label: 3, Subset: tasks.SubsetHigh},
	}
	m, err := MultipleChoice(ex, []int{0, 0, 2, 3, 1})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{tasks.MetricAccuracy: 3.0 / 5, tasks.MetricAccMid: 0.5, tasks.MetricAccHigh: 2.0 / 3}
	for k, v := range want {
		if !near(m[k], v) {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"The Cat!":                    "cat",
		"  Multiple   spaces\there ":  "multiple spaces here",
		"An apple, an orange, a pear": "apple orange pear",
		"the":                         "",
		"A.":                          "",
		"(the) [an]":                  "",
		"theater anthem tea":          "theater anthem tea",
		"the-end":                     "theend", // punctuation goes first, so no article is left
		"a_b":                         "ab",
		"café the élan a":             "café élan",
		"théa the":                    "théa", // "é" is a word character: no article inside "théa"
		"1,000 a.m.":                  "1000 am",
		"a a a b":                     "b",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEMAndF1(t *testing.T) {
	if !ExactMatch("The Eiffel Tower.", "eiffel tower") || ExactMatch("Eiffel", "Eiffel Tower") {
		t.Error("exact match")
	}
	// (cat sat) vs (cat sat down): p 1, r 2/3 → 0.8.
	if v := F1V1("the cat sat", "a cat sat down"); !near(v, 0.8) {
		t.Errorf("F1 %v, want 0.8", v)
	}
	// Repeated tokens count once per gold occurrence (Counter &):
	// {yes:3, no:1} & {yes:1, no:2} = 2 shared; p 2/4, r 2/3 → 4/7.
	if v := F1V1("yes yes yes no", "yes no no"); !near(v, 4.0/7) {
		t.Errorf("F1 with repeats %v, want 4/7", v)
	}
	// Articles/punctuation only: both normalise to "". v1: EM 1 but F1 0;
	// v2: F1 1 when both are empty, 0 when only one is.
	if !ExactMatch("the", "a.") || F1V1("the", "a.") != 0 || F1V2("the", "a.") != 1 {
		t.Errorf("empty answers: EM %v, F1 v1 %v, v2 %v", ExactMatch("the", "a."), F1V1("the", "a."), F1V2("the", "a."))
	}
	if F1V2("", "cat") != 0 || F1V2("cat", "") != 0 {
		t.Error("v2: one empty side must score 0")
	}
}

func TestEvaluateV1(t *testing.T) {
	ex := []tasks.Example{
		{ID: "q1", Answers: []tasks.Answer{{Text: "Paris", Start: 47}, {Text: "in Paris", Start: 44}, {Text: "Paris.", Start: 47}}},
		{ID: "q2", Answers: []tasks.Answer{{Text: "Paris", Start: 47}, {Text: "in Paris", Start: 44}}},
		{ID: "q3", Answers: []tasks.Answer{{Text: "a dog", Start: 0}}},
	}
	// q1: "in paris" matches a gold exactly. q2: "Paris, France" — F1 vs
	// "Paris" 2/3, vs "in Paris" 1/2: max 2/3, EM 0. q3: no prediction → 0.
	res, err := EvaluateV1(ex, map[string]string{"q1": "in paris", "q2": "Paris, France"})
	if err != nil {
		t.Fatal(err)
	}
	if !near(res.ExactMatch, 1.0/3) || !near(res.F1, (1+2.0/3)/3) || res.Total != 3 || res.Missing != 1 {
		t.Errorf("%+v", res)
	}
}

// v2Examples: A, B answerable; C, D not; E answerable but its only gold
// answer normalises to nothing, so its gold becomes "".
func v2Examples() []tasks.Example {
	return []tasks.Example{
		{ID: "A", Answers: []tasks.Answer{{Text: "blue whale", Start: 0}}},
		{ID: "B", Answers: []tasks.Answer{{Text: "red fox", Start: 0}}},
		{ID: "C", IsImpossible: true},
		{ID: "D", IsImpossible: true},
	}
}

func TestEvaluateV2(t *testing.T) {
	ex := v2Examples()
	preds := map[string]string{"A": "blue whale", "B": "fox", "C": "cat", "D": ""}
	na := map[string]float64{"A": 0.1, "B": 0.5, "C": 0.3, "D": 0.9}
	res, err := EvaluateV2(ex, preds, na, 1.0)
	if err != nil {
		t.Fatal(err)
	}
	// Raw: A 1/1, B 0/(2/3), C 0/0, D 1/1.
	// Best F1: start 2 (two unanswerable); A +1 → 3 at 0.1; C −1; B +2/3; D 0.
	want := V2Result{Exact: 0.5, F1: (1 + 2.0/3 + 0 + 1) / 4, Total: 4,
		HasAnsExact: 0.5, HasAnsF1: (1 + 2.0/3) / 2, HasAnsTotal: 2,
		NoAnsExact: 0.5, NoAnsF1: 0.5, NoAnsTotal: 2,
		BestExact: 0.75, BestExactThresh: 0.1, BestF1: 0.75, BestF1Thresh: 0.1}
	if !v2Near(res, want) {
		t.Errorf("\n got  %+v\n want %+v", res, want)
	}
	// Threshold 0.4: B (0.5) and D (0.9) count as "no answer": B scores 0, D 1.
	res, _ = EvaluateV2(ex, preds, na, 0.4)
	if !near(res.Exact, 0.5) || !near(res.F1, 0.5) {
		t.Errorf("thresholded: %+v", res)
	}
	// A gold answer that normalises to "" leaves the gold "": an empty or
	// article-only prediction is then right, though the question has answers.
	ex2 := []tasks.Example{{ID: "E", Answers: []tasks.Answer{{Text: "The", Start: 0}}}}
	for pred, want := range map[string]float64{"": 1, "the": 1, "cat": 0} {
		res, _ := EvaluateV2(ex2, map[string]string{"E": pred}, nil, 1.0)
		if res.Exact != want || res.F1 != want || res.HasAnsTotal != 1 {
			t.Errorf("E with %q: %+v", pred, res)
		}
	}
	if _, err := EvaluateV2(ex, map[string]string{"A": ""}, nil, 1.0); err == nil {
		t.Error("missing v2 predictions accepted")
	}
}

func v2Near(a, b V2Result) bool {
	fa := []float64{a.Exact, a.F1, a.HasAnsExact, a.HasAnsF1, a.NoAnsExact, a.NoAnsF1, a.BestExact, a.BestExactThresh, a.BestF1, a.BestF1Thresh}
	fb := []float64{b.Exact, b.F1, b.HasAnsExact, b.HasAnsF1, b.NoAnsExact, b.NoAnsF1, b.BestExact, b.BestExactThresh, b.BestF1, b.BestF1Thresh}
	for i := range fa {
		if !near(fa[i], fb[i]) {
			return false
		}
	}
	return a.Total == b.Total && a.HasAnsTotal == b.HasAnsTotal && a.NoAnsTotal == b.NoAnsTotal
}

func TestTuneV2(t *testing.T) {
	ex := v2Examples()
	preds := []Prediction{{ID: "A", Text: "blue whale"}, {ID: "B", Text: "fox"}, {ID: "C", Text: "cat"}, {ID: "D", Text: "dog"}}
	odds := []float64{-2, 0.5, 0.3, 0.9}
	// Untuned: start 2; A(−2) +1 → 3, best at −2; C(0.3) −1; B(0.5) +2/3; D(0.9) −1.
	// Threshold −2; squad_utils answers "" where odds ≥ threshold: every question.
	res, err := TuneV2(ex, preds, odds)
	if err != nil {
		t.Fatal(err)
	}
	if res.Threshold != -2 {
		t.Errorf("threshold %v, want -2", res.Threshold)
	}
	if want := map[string]string{"A": "", "B": "", "C": "", "D": ""}; !reflect.DeepEqual(res.Answers, want) {
		t.Errorf("answers %v", res.Answers)
	}
	// With A's odds below the others it stays answered when C and D are more
	// likely unanswerable than A and B: odds A −2, B −1, C 1, D 2.
	res, _ = TuneV2(ex, preds, []float64{-2, -1, 1, 2})
	// Untuned: 2; A +1 → 3 (−2); B +2/3 → 3.67 (−1); C −1; D −1. Threshold −1:
	// A answered, B, C, D "" → A 1, B 0, C 1, D 1.
	if res.Threshold != -1 || res.Answers["A"] != "blue whale" || res.Answers["B"] != "" || !near(res.Result.Exact, 0.75) || !near(res.Result.F1, 0.75) {
		t.Errorf("%+v", res)
	}
}

func TestTopCandidatesAndPredict(t *testing.T) {
	c := TopCandidates([]float32{0, 3, 1, 3}, []float32{5, 0, 0, 1}, 2)
	want := []Candidate{{1, 0, 3, 5}, {1, 3, 3, 1}, {3, 0, 3, 5}, {3, 3, 3, 1}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("candidates %v", c)
	}

	ctx := "The quick brown fox jumps."
	// Context words at positions 3..7 of a 9-token window:
	// [CLS] q q [SEP] The quick brown fox jumps. [SEP]
	spans := [][2]int{{0, 3}, {4, 9}, {10, 15}, {16, 19}, {20, 26}}
	mkFeature := func(maxCtx []bool) tasks.Feature {
		f := tasks.Feature{ContextStart: 3, ContextLen: 5, CharStart: make([]int, 9), CharEnd: make([]int, 9), MaxContext: make([]bool, 9)}
		for i := range f.CharStart {
			f.CharStart[i], f.CharEnd[i] = -1, -1
		}
		for k, s := range spans {
			f.CharStart[3+k], f.CharEnd[3+k] = s[0], s[1]
			f.MaxContext[3+k] = maxCtx[k]
		}
		return f
	}
	all := []bool{true, true, true, true, true}
	f1 := mkFeature(all)
	f2 := mkFeature([]bool{true, false, true, true, true}) // "quick" is not max-context here
	ex := []tasks.Example{{ID: "q", Context: ctx}, {ID: "none", Context: ctx}}
	f2.ExampleIndex = 0
	f3 := mkFeature(all)
	f3.ExampleIndex = 1
	cands := [][]Candidate{
		{
			{5, 4, 10, 10}, // end before start
			{1, 2, 9, 9},   // in the question
			{3, 7, 8, 8},   // 5 tokens > max answer length 3
			{4, 5, 5, 4},   // "quick brown" (9)
			{6, 7, 3, 3},   // "fox jumps." (6)
			{8, 8, 7, 7},   // [SEP], outside the context
		},
		{
			{4, 5, 6, 6}, // start not max-context here
			{5, 5, 4, 4}, // "brown" (8)
			{3, 3, 4, 4}, // "The" (8)
		},
		{{0, 0, 1, 1}},
	}
	o := ExtractOptions{NBest: 3, MaxAnswerLen: 3, Version: 1}
	preds, err := Predict(ex, []tasks.Feature{f1, f2, f3}, cands, o)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, e := range preds[0].NBest {
		texts = append(texts, e.Text)
	}
	if preds[0].Text != "quick brown" || !reflect.DeepEqual(texts, []string{"quick brown", "brown", "The"}) {
		t.Errorf("n-best %v", texts)
	}
	// Softmax over summed scores 9, 8, 8.
	z := 1 + 2*math.Exp(-1)
	if p := preds[0].NBest[0].Probability; !near(p, 1/z) {
		t.Errorf("probability %v, want %v", p, 1/z)
	}
	// No valid span: v1 answers "empty", v2 "".
	if preds[1].Text != "empty" {
		t.Errorf("v1 fallback %q", preds[1].Text)
	}
	o.Version = 2
	preds, _ = Predict(ex, []tasks.Feature{f1, f2, f3}, cands, o)
	if preds[1].Text != "" || preds[1].NBest[0].StartScore != -1e6 {
		t.Errorf("v2 fallback %+v", preds[1])
	}

	odds, err := NullOdds(ex, []tasks.Feature{f1, f2, f3}, []float64{0.5, -1, 2})
	if err != nil || !reflect.DeepEqual(odds, []float64{-1, 2}) {
		t.Errorf("null odds %v, %v", odds, err)
	}
}

func TestWriters(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "predictions.json")
	err := WritePredictions(p, []string{"q2", "q1"}, map[string]string{"q1": "a <b> & \"c\"", "q2": ""})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if want := "{\n    \"q2\": \"\",\n    \"q1\": \"a <b> & \\\"c\\\"\"\n}\n"; string(b) != want {
		t.Errorf("predictions.json:\n%s\nwant\n%s", b, want)
	}
	p = filepath.Join(dir, "null_odds.json")
	if err := WriteNullOdds(p, []string{"q1", "q2"}, []float64{0.5, -3.25}); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(p)
	if want := "{\n    \"q1\": 0.5,\n    \"q2\": -3.25\n}\n"; string(b) != want {
		t.Errorf("null_odds.json:\n%s", b)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := WriteNullOdds(bad, []string{"q"}, []float64{math.NaN()}); err == nil {
		t.Error("NaN written")
	}
	if err := WritePredictions(bad, []string{"q"}, map[string]string{}); err == nil {
		t.Error("missing answer accepted")
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Error("a failed write left a file")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%d files in the folder, want 2 (no temporaries)", len(entries))
	}
}

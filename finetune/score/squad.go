package score

import (
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/reproml/albert/finetune/tasks"
)

// pyPunct is Python's string.punctuation, the characters normalize_answer
// removes.
const pyPunct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// Normalize is the official normalize_answer: lower-case, remove ASCII
// punctuation, replace the articles a/an/the (whole words, as the regexp
// \b(a|an|the)\b with Python's Unicode word characters) by a space, and
// collapse whitespace.
func Normalize(s string) string {
	s = strings.ToLower(s)
	s = strings.Map(func(r rune) rune {
		if r < utf8.RuneSelf && strings.ContainsRune(pyPunct, r) {
			return -1
		}
		return r
	}, s)
	s = removeArticles(s)
	return strings.Join(pyFields(s), " ")
}

// isWord is Python re's \w for str patterns: letters, numbers, underscore.
func isWord(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r)
}

func removeArticles(s string) string {
	var b strings.Builder
	prevWord := false // the rune before position i is a word character
	for i := 0; i < len(s); {
		if !prevWord {
			if n := articleAt(s[i:]); n > 0 {
				b.WriteByte(' ')
				i += n
				prevWord = true // an article ends in a letter
				continue
			}
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		b.WriteString(s[i : i+n])
		prevWord = isWord(r)
		i += n
	}
	return b.String()
}

// articleAt returns the length of an article at the start of s that is
// followed by a non-word character or the end (the regexp's alternation
// order a|an|the, backtracking when \b fails).
func articleAt(s string) int {
	for _, a := range []string{"a", "an", "the"} {
		if !strings.HasPrefix(s, a) {
			continue
		}
		r, _ := utf8.DecodeRuneInString(s[len(a):])
		if len(s) == len(a) || !isWord(r) {
			return len(a)
		}
	}
	return 0
}

// pyFields is Python's str.split(): split on Unicode whitespace, which also
// counts the separators U+001C–U+001F.
func pyFields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
	})
}

// ExactMatch is the official exact_match_score: normalised strings equal.
func ExactMatch(pred, gold string) bool { return Normalize(pred) == Normalize(gold) }

// tokenF1 is the F1 of the normalised tokens' multiset intersection
// (collections.Counter's &); 0 when nothing is shared.
func tokenF1(pred, gold []string) float64 {
	counts := map[string]int{}
	for _, t := range gold {
		counts[t]++
	}
	same := 0
	for _, t := range pred {
		if counts[t] > 0 {
			counts[t]--
			same++
		}
	}
	if same == 0 {
		return 0
	}
	p := float64(same) / float64(len(pred))
	r := float64(same) / float64(len(gold))
	return 2 * p * r / (p + r)
}

// F1V1 is evaluate-v1.1's f1_score: token F1 of the normalised answers, 0
// when either normalises to nothing.
func F1V1(pred, gold string) float64 {
	return tokenF1(strings.Fields(Normalize(pred)), strings.Fields(Normalize(gold)))
}

// F1V2 is evaluate-v2.0's compute_f1: as F1V1, except that when either side
// has no tokens the score is 1 if both have none and 0 otherwise (a correct
// "no answer").
func F1V2(pred, gold string) float64 {
	p, g := strings.Fields(Normalize(pred)), strings.Fields(Normalize(gold))
	if len(p) == 0 || len(g) == 0 {
		if len(p) == len(g) {
			return 1
		}
		return 0
	}
	return tokenF1(p, g)
}

// V1Result is evaluate-v1.1's output, as fractions.
type V1Result struct {
	ExactMatch, F1 float64
	Total          int
	Missing        int // questions without a prediction (scored 0, as the script does)
}

// EvaluateV1 scores predictions (question id → answer text) against the gold
// answers of SQuAD 1.1 examples: EM and F1 take the maximum over the gold
// answers and are averaged over all questions.
func EvaluateV1(examples []tasks.Example, preds map[string]string) (V1Result, error) {
	var res V1Result
	if len(examples) == 0 {
		return res, fmt.Errorf("score: no SQuAD examples")
	}
	var em, f1 float64
	for _, ex := range examples {
		res.Total++
		p, ok := preds[ex.ID]
		if !ok {
			res.Missing++
			continue
		}
		if len(ex.Answers) == 0 {
			return res, fmt.Errorf("score: question %s has no gold answer (SQuAD 1.1 needs one)", ex.ID)
		}
		bestEM, bestF1 := 0.0, 0.0
		for _, a := range ex.Answers {
			if ExactMatch(p, a.Text) {
				bestEM = 1
			}
			bestF1 = max(bestF1, F1V1(p, a.Text))
		}
		em += bestEM
		f1 += bestF1
	}
	res.ExactMatch = em / float64(res.Total)
	res.F1 = f1 / float64(res.Total)
	return res, nil
}

// V2Result is evaluate-v2.0's output, as fractions: overall, for answerable
// (HasAns) and unanswerable (NoAns) questions, and the best scores over
// no-answer thresholds with the thresholds that reach them.
type V2Result struct {
	Exact, F1                  float64
	Total                      int
	HasAnsExact, HasAnsF1      float64
	HasAnsTotal                int
	NoAnsExact, NoAnsF1        float64
	NoAnsTotal                 int
	BestExact, BestExactThresh float64
	BestF1, BestF1Thresh       float64
}

// EvaluateV2 is evaluate-v2.0's main: raw EM/F1 per question (gold answers
// that normalise to nothing are dropped; a question with none left has the
// single gold ""), a question whose naProbs value exceeds naThresh counts as
// answered "no answer" (the script's default threshold is 1.0; nil naProbs
// means 0 for every question), and the best EM/F1 over thresholds
// (find_best_thresh, questions visited in example order, stably sorted by
// naProbs). Every question needs a prediction: the official script fails
// without one.
func EvaluateV2(examples []tasks.Example, preds map[string]string, naProbs map[string]float64, naThresh float64) (V2Result, error) {
	var res V2Result
	if len(examples) == 0 {
		return res, fmt.Errorf("score: no SQuAD examples")
	}
	n := len(examples)
	exact, f1 := make([]float64, n), make([]float64, n)
	hasAns := make([]bool, n)
	na := make([]float64, n)
	for i, ex := range examples {
		p, ok := preds[ex.ID]
		if !ok {
			return res, fmt.Errorf("score: no prediction for question %s", ex.ID)
		}
		hasAns[i] = len(ex.Answers) > 0
		na[i] = naProbs[ex.ID]
		var golds []string
		for _, a := range ex.Answers {
			if Normalize(a.Text) != "" {
				golds = append(golds, a.Text)
			}
		}
		if len(golds) == 0 {
			golds = []string{""}
		}
		for _, g := range golds {
			if ExactMatch(p, g) {
				exact[i] = 1
			}
			f1[i] = max(f1[i], F1V2(p, g))
		}
	}
	// apply_no_ans_threshold, then make_eval_dict overall and per kind.
	var sumE, sumF, hasE, hasF, noE, noF float64
	for i := range examples {
		e, f := exact[i], f1[i]
		if na[i] > naThresh {
			e = b2f(!hasAns[i])
			f = e
		}
		sumE += e
		sumF += f
		if hasAns[i] {
			res.HasAnsTotal++
			hasE += e
			hasF += f
		} else {
			res.NoAnsTotal++
			noE += e
			noF += f
		}
	}
	res.Total = n
	res.Exact, res.F1 = sumE/float64(n), sumF/float64(n)
	if res.HasAnsTotal > 0 {
		res.HasAnsExact, res.HasAnsF1 = hasE/float64(res.HasAnsTotal), hasF/float64(res.HasAnsTotal)
	}
	if res.NoAnsTotal > 0 {
		res.NoAnsExact, res.NoAnsF1 = noE/float64(res.NoAnsTotal), noF/float64(res.NoAnsTotal)
	}
	nonEmpty := make([]bool, n)
	for i, ex := range examples {
		nonEmpty[i] = preds[ex.ID] != ""
	}
	res.BestExact, res.BestExactThresh = bestThresh(exact, na, hasAns, nonEmpty)
	res.BestF1, res.BestF1Thresh = bestThresh(f1, na, hasAns, nonEmpty)
	return res, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// bestThresh is find_best_thresh: start from predicting "no answer" for all
// (score = number of unanswerable questions), then answer questions in
// increasing no-answer score, keeping the best running score and the score
// value where it was reached.
func bestThresh(scores, na []float64, hasAns, nonEmpty []bool) (float64, float64) {
	cur := 0.0
	for _, h := range hasAns {
		if !h {
			cur++
		}
	}
	best, thresh := cur, 0.0
	order := make([]int, len(na))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return na[order[a]] < na[order[b]] })
	for _, i := range order {
		var diff float64
		switch {
		case hasAns[i]:
			diff = scores[i]
		case nonEmpty[i]:
			diff = -1
		}
		cur += diff
		if cur > best {
			best, thresh = cur, na[i]
		}
	}
	return best / float64(len(scores)), thresh
}

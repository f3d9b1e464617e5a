package table

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"gonum.org/v1/gonum/stat/distuv"
)

// Rule is the verdict rule, printed under every table (markdown, CSV and
// TeX alike). Every claim checker of this package decides through it:
//
//   - A claim is decided over seeds at one scale: runs are pooled only when
//     their resolved configurations differ by the seed alone, and a claim
//     compares runs of one profile and scale group.
//   - For "a beats b" (by a margin m, 0 unless stated) the 95% confidence
//     interval of mean(a) − mean(b) is a t interval on the per-seed
//     differences when both sides have the same seeds, at least 3 (paired),
//     and Welch's t interval otherwise (no value is left out to pair). A one-sided claim on one quantity
//     ("above chance", "near chance") uses the t interval of its mean.
//   - held: the interval lies wholly on the claimed side of m (of the
//     tolerance band, for "near"); did not hold: wholly on the other side;
//     inconclusive: it touches or contains m, a side has fewer than 3 done
//     seeds, or a precondition failed — always with the reason; not enough
//     runs: a side has no finished run. Ties are never a win.
const Rule = "Verdict rule: a claim is decided over seeds at one scale (runs are pooled only when their configurations differ by the seed alone). " +
	"The 95% confidence interval of the difference of means is a t interval on per-seed differences when both sides have the same seeds, at least 3 (paired), Welch's t interval otherwise; " +
	"a claim about one quantity (above chance, near chance) uses the t interval of its mean. " +
	"held: the interval lies wholly on the claimed side of 0 (of the margin; inside the tolerance for \"near\"); did not hold: wholly on the other side; " +
	"inconclusive: it touches or contains it, a side has fewer than 3 done seeds, or a precondition failed (the reason is given); not enough runs: a side has no finished run. Ties are never a win."

// EvalSENote explains the accuracy cells, next to Rule.
const EvalSENote = "Accuracies: mean ± sample std over seeds (n = done seeds, with diverged or failed seeds named), and the held-out set's binomial standard error SE = sqrt(p(1−p)/N) " +
	"(N = scored masked tokens or sentence pairs, eval metrics mlm_n / nsp_n / sop_n; \"eval size unknown\" when not stored): two rows closer than about 3 SE cannot be told apart by the held-out set. " +
	"An MLM accuracy within max(3 SE, 1 point) of the unigram plateau (eval metric mlm_plateau: always predicting the most frequent token) is \"still on the unigram plateau\", and claims on it are inconclusive."

// Inconclusive is the verdict when the interval contains the claimed
// bound, a side has fewer than MinSeeds seeds, or a precondition failed.
const Inconclusive Verdict = "inconclusive"

// MinSeeds is the fewest done seeds per side that can decide a claim.
const MinSeeds = 3

// Level is the confidence of every interval.
const Level = 0.95

// Interval is a confidence interval of a mean or a difference of means.
type Interval struct {
	Est, Lo, Hi float64
	Paired      bool    // t interval on per-seed differences
	Welch       bool    // Welch's two-sample interval
	N           int     // paired: shared seeds; one-sample: values
	DF          float64 // degrees of freedom
}

func (iv Interval) String() string {
	s := fmt.Sprintf("95%% CI [%+.2f, %+.2f]", iv.Lo, iv.Hi)
	switch {
	case iv.Paired:
		s += fmt.Sprintf(", paired over %d seeds", iv.N)
	case iv.Welch:
		s += fmt.Sprintf(", Welch df %.1f", iv.DF)
	}
	return s
}

// tQuantile is the two-sided Level quantile of Student's t with df degrees
// of freedom.
func tQuantile(df float64) float64 {
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile(1 - (1-Level)/2)
}

func meanStd(v []float64) (float64, float64) {
	s := Sample{Values: v}
	return s.Mean(), s.Std()
}

// MeanInterval is the t interval of mean(a); false for fewer than 2 values.
func MeanInterval(a Sample) (Interval, bool) {
	n := a.N()
	if n < 2 {
		return Interval{}, false
	}
	m, sd := meanStd(a.Values)
	h := tQuantile(float64(n-1)) * sd / math.Sqrt(float64(n))
	return Interval{Est: m, Lo: m - h, Hi: m + h, N: n, DF: float64(n - 1)}, true
}

// sameSeeds pairs the values of a and b by seed (sorted by seed) when both
// have the same set of seeds; nil otherwise.
func sameSeeds(a, b Sample) (da []float64, seeds []int64) {
	if a.Seeds == nil || b.Seeds == nil || len(a.Seeds) != len(a.Values) || len(b.Seeds) != len(b.Values) || len(a.Seeds) != len(b.Seeds) {
		return nil, nil
	}
	bv := map[int64]float64{}
	for i, s := range b.Seeds {
		bv[s] = b.Values[i]
	}
	type pair struct {
		seed int64
		d    float64
	}
	var ps []pair
	for i, s := range a.Seeds {
		if v, ok := bv[s]; ok {
			ps = append(ps, pair{s, a.Values[i] - v})
		}
	}
	if len(ps) != len(a.Seeds) || len(bv) != len(b.Seeds) {
		return nil, nil // a seed repeated or unmatched
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].seed < ps[j].seed })
	for _, p := range ps {
		da, seeds = append(da, p.d), append(seeds, p.seed)
	}
	return da, seeds
}

// DiffInterval is the interval of mean(a) − mean(b): paired by seed when
// the sides have the same seeds, at least MinSeeds, else Welch's (which
// needs two values a side); false when neither can be computed.
func DiffInterval(a, b Sample) (Interval, bool) {
	if d, seeds := sameSeeds(a, b); len(seeds) >= MinSeeds {
		iv, _ := MeanInterval(Sample{Values: d})
		iv.Paired = true
		return iv, true
	}
	na, nb := float64(a.N()), float64(b.N())
	if na < 2 || nb < 2 {
		return Interval{}, false
	}
	ma, sa := meanStd(a.Values)
	mb, sb := meanStd(b.Values)
	va, vb := sa*sa/na, sb*sb/nb
	se := math.Sqrt(va + vb)
	df := na + nb - 2
	if se > 0 {
		df = (va + vb) * (va + vb) / (va*va/(na-1) + vb*vb/(nb-1))
	}
	d := ma - mb
	h := tQuantile(df) * se
	return Interval{Est: d, Lo: d - h, Hi: d + h, Welch: true, DF: df}, true
}

// side places [lo, hi] against bound: held when wholly above it (strictly:
// a tie is never a win), did not hold when wholly below, else
// inconclusive.
func side(lo, hi, bound float64) Verdict {
	switch {
	case lo > bound:
		return Held
	case hi < bound:
		return NotHeld
	}
	return Inconclusive
}

// precheck is the part of the rule before any interval: a side without a
// finished run is not enough runs; fewer than MinSeeds seeds or an MLM
// accuracy still on the unigram plateau is inconclusive.
func precheck(ss ...Sample) (Verdict, string) {
	var missing, few, plateau []string
	for _, s := range ss {
		name := s.Label
		if name == "" {
			name = "a side"
		}
		switch {
		case s.N() == 0:
			why := "no finished run of " + name
			if len(s.Lost) > 0 {
				why += " (" + lostText(s.Lost) + ")"
			}
			missing = append(missing, why)
		case s.N() < MinSeeds:
			few = append(few, fmt.Sprintf("%s n=%d", name, s.N()))
		}
		if s.OnPlateau > 0 {
			plateau = append(plateau, fmt.Sprintf("%s: %d of %d runs", name, s.OnPlateau, s.N()))
		}
	}
	if len(missing) > 0 {
		return NotEnough, strings.Join(missing, "; ")
	}
	var why []string
	if len(plateau) > 0 {
		why = append(why, "still on the unigram plateau ("+strings.Join(plateau, "; ")+")")
	}
	if len(few) > 0 {
		why = append(why, fmt.Sprintf("fewer than %d seeds (%s)", MinSeeds, strings.Join(few, ", ")))
	}
	if len(why) > 0 {
		return Inconclusive, strings.Join(why, "; ")
	}
	return "", ""
}

// decided fills c's verdict from the rule: pre is precheck's outcome, v the
// interval's, with the reason for an inconclusive one.
func decided(c Claim, pre Verdict, preWhy string, v Verdict, why string) Claim {
	if pre != "" {
		c.Verdict, c.Why = pre, preWhy
		return c
	}
	c.Verdict = v
	if v == Inconclusive {
		c.Why = why
	}
	return c
}

// Compare decides "mean(a) − mean(b) > margin" by the rule.
func Compare(claim, paperNote string, a, b Sample, margin float64) Claim {
	c := Claim{Claim: claim, Paper: paperNote}
	c.Detail = fmt.Sprintf("%s vs %s", a.named(), b.named())
	pre, preWhy := precheck(a, b)
	if pre == NotEnough {
		return decided(c, pre, preWhy, "", "")
	}
	c.Detail += fmt.Sprintf(": difference %+.2f", a.Mean()-b.Mean())
	iv, ok := DiffInterval(a, b)
	if ok {
		c.Detail += ", " + iv.String()
	}
	bound := "0"
	if margin != 0 {
		bound = fmt.Sprintf("the margin %+.1f", margin)
		c.Detail += fmt.Sprintf(" (claimed > %+.1f)", margin)
	}
	if !ok {
		return decided(c, pre, preWhy, Inconclusive, "no interval")
	}
	return decided(c, pre, preWhy, side(iv.Lo, iv.Hi, margin), "the interval contains "+bound)
}

// Above decides "mean(a) > bound" by the rule (one-sample t interval).
func Above(claim, paperNote string, a Sample, bound float64) Claim {
	c := Claim{Claim: claim, Paper: paperNote}
	c.Detail = a.named()
	pre, preWhy := precheck(a)
	if pre == NotEnough {
		return decided(c, pre, preWhy, "", "")
	}
	iv, ok := MeanInterval(a)
	if ok {
		c.Detail += fmt.Sprintf(": mean %.2f, %s (claimed > %g)", iv.Est, iv.String(), bound)
	}
	if !ok {
		return decided(c, pre, preWhy, Inconclusive, "no interval")
	}
	return decided(c, pre, preWhy, side(iv.Lo, iv.Hi, bound), fmt.Sprintf("the interval contains %g", bound))
}

// Near decides |mean(a) − target| <= tol ("a is at chance"): held only when
// the whole interval lies within target ± tol, did not hold when it lies
// wholly outside, inconclusive otherwise.
func Near(claim, paperNote string, a Sample, target, tol float64) Claim {
	c := Claim{Claim: claim, Paper: paperNote}
	c.Detail = a.named()
	pre, preWhy := precheck(a)
	if pre == NotEnough {
		return decided(c, pre, preWhy, "", "")
	}
	lo, hi := target-tol, target+tol
	c.Detail += fmt.Sprintf(": %+.2f from %g", a.Mean()-target, target)
	iv, ok := MeanInterval(a)
	if ok {
		c.Detail += fmt.Sprintf(", %s", iv.String())
	}
	c.Detail += fmt.Sprintf(" (claimed within [%g, %g])", lo, hi)
	if !ok {
		return decided(c, pre, preWhy, Inconclusive, "no interval")
	}
	v := Inconclusive
	switch {
	case iv.Lo >= lo && iv.Hi <= hi:
		v = Held
	case iv.Hi < lo || iv.Lo > hi:
		v = NotHeld
	}
	return decided(c, pre, preWhy, v, fmt.Sprintf("the interval crosses the edge of [%g, %g]", lo, hi))
}

// Combine is a claim that holds only when every part holds (a conjunction,
// e.g. one claim at every E): did not hold if any part did not hold, else
// not enough runs if any part lacks runs (naming it), else inconclusive if
// any part is (with its reason), else held. No parts: not enough runs.
func Combine(claim, paperNote string, parts []Claim, labels []string) Claim {
	c := Claim{Claim: claim, Paper: paperNote, Verdict: NotEnough, Why: "nothing to check"}
	if len(parts) == 0 {
		return c
	}
	var details []string
	by := map[Verdict][]string{}
	for i, p := range parts {
		l := labels[i]
		d := fmt.Sprintf("%s: %s [%s", l, p.Detail, p.Verdict)
		if p.Why != "" {
			d += ": " + p.Why
		}
		details = append(details, d+"]")
		by[p.Verdict] = append(by[p.Verdict], l)
	}
	c.Detail = strings.Join(details, "; ")
	c.Why = ""
	switch {
	case len(by[NotHeld]) > 0:
		c.Verdict = NotHeld
	case len(by[NotEnough]) > 0:
		c.Verdict, c.Why = NotEnough, "no runs for "+strings.Join(by[NotEnough], ", ")
	case len(by[Inconclusive]) > 0:
		c.Verdict, c.Why = Inconclusive, "undecided at "+strings.Join(by[Inconclusive], ", ")
	default:
		c.Verdict = Held
	}
	return c
}

// requires turns a decided claim inconclusive when a precondition failed
// (why); a claim without runs stays not enough runs.
func requires(c Claim, ok bool, why string) Claim {
	if ok || c.Verdict == NotEnough {
		return c
	}
	c.Verdict, c.Why = Inconclusive, why
	return c
}

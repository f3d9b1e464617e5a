package table

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/reproml/albert/results"
)

// Verdict is the outcome of checking one of the paper's claims on our runs
// (see Rule).
type Verdict string

const (
	Held      Verdict = "held"
	NotHeld   Verdict = "did not hold"
	NotEnough Verdict = "not enough runs"
)

// Lost is a run of a sample's configuration that gave no value: diverged,
// failed, or not finished.
type Lost struct {
	Seed   int64
	Status results.Status
	Step   int    // the step it diverged or failed at (0: unknown)
	Reason string // the run's stored reason
}

// String is e.g. "diverged at step 812".
func (l Lost) String() string {
	s := string(l.Status)
	if l.Step > 0 {
		s += fmt.Sprintf(" at step %d", l.Step)
	}
	return s
}

// lostText is e.g. "1 diverged at step 812, 1 failed at step 30".
func lostText(ls []Lost) string {
	var order []string
	count := map[string]int{}
	for _, l := range ls {
		k := l.String()
		if count[k] == 0 {
			order = append(order, k)
		}
		count[k]++
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = fmt.Sprintf("%d %s", count[k], k)
	}
	return strings.Join(parts, ", ")
}

// Sample is one quantity of one configuration measured over seeds (one
// value per done run), with the runs that gave no value.
type Sample struct {
	Label  string
	Values []float64 // finite values only (NewSample, Seeded)
	Seeds  []int64   // the seed of each value; nil when unknown (never paired)
	Lost   []Lost    // runs of this configuration without a value

	// Accuracy samples (values in %):
	Acc       bool
	EvalN     float64 // held-out items behind the accuracy (0 = unknown)
	OnPlateau int     // done runs still on the unigram plateau
}

// NewSample keeps the finite values (seeds unknown).
func NewSample(label string, vals ...float64) Sample {
	s := Sample{Label: label}
	for _, v := range vals {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			s.Values = append(s.Values, v)
		}
	}
	return s
}

// Seeded is a sample whose values are paired with their seeds; non-finite
// values are dropped with their seed.
func Seeded(label string, seeds []int64, vals []float64) Sample {
	s := Sample{Label: label, Seeds: []int64{}}
	for i, v := range vals {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			s.Values, s.Seeds = append(s.Values, v), append(s.Seeds, seeds[i])
		}
	}
	return s
}

// N is the number of values.
func (s Sample) N() int { return len(s.Values) }

// Mean is the average (NaN when empty).
func (s Sample) Mean() float64 {
	if len(s.Values) == 0 {
		return math.NaN()
	}
	t := 0.0
	for _, v := range s.Values {
		t += v
	}
	return t / float64(len(s.Values))
}

// Std is the sample standard deviation (n−1); 0 for fewer than two values.
func (s Sample) Std() float64 {
	n := len(s.Values)
	if n < 2 {
		return 0
	}
	m, t := s.Mean(), 0.0
	for _, v := range s.Values {
		t += (v - m) * (v - m)
	}
	return math.Sqrt(t / float64(n-1))
}

// EvalSE is the held-out set's binomial standard error of the mean
// accuracy, in points: 100·sqrt(p(1−p)/N). False when N is unknown.
func (s Sample) EvalSE() (float64, bool) {
	if !s.Acc || s.EvalN <= 0 || s.N() == 0 {
		return 0, false
	}
	p := s.Mean() / 100
	return 100 * math.Sqrt(p*(1-p)/s.EvalN), true
}

// Format prints "mean ± std (n=k)" with prec decimals — "—" if there are no
// runs — naming runs without a value ("n=2 done, 1 diverged at step 812")
// and, for an accuracy, the eval set's standard error ("SE 0.40") or "eval
// size unknown".
func (s Sample) Format(prec int) string {
	if s.N() == 0 && len(s.Lost) == 0 {
		return "—"
	}
	var v string
	switch s.N() {
	case 0:
		v = "—"
	case 1:
		v = fmt.Sprintf("%.*f", prec, s.Mean())
	default:
		v = fmt.Sprintf("%.*f ± %.*f", prec, s.Mean(), prec, s.Std())
	}
	n := fmt.Sprintf("n=%d", s.N())
	if len(s.Lost) > 0 {
		n += " done, " + lostText(s.Lost)
	}
	if s.Acc && s.N() > 0 {
		if se, ok := s.EvalSE(); ok {
			n += fmt.Sprintf(", SE %.*f", prec, se)
		} else {
			n += ", eval size unknown"
		}
	}
	return v + " (" + n + ")"
}

func (s Sample) named() string {
	if s.Label == "" {
		return s.Format(2)
	}
	return s.Label + " " + s.Format(2)
}

// Claim is one of the paper's qualitative claims checked on our numbers.
type Claim struct {
	Claim   string  // the statement, as the paper makes it
	Paper   string  // the paper's evidence
	Needs   string  // preconditions beyond the rule ("" = none)
	Verdict Verdict // held / did not hold / inconclusive / not enough runs
	Why     string  // for inconclusive and not enough runs: the reason
	Detail  string  // our numbers: means, n per side, the interval
}

// VerdictText is the verdict with its reason: "inconclusive: fewer than 3 seeds (…)".
func (c Claim) VerdictText() string {
	if c.Why == "" {
		return string(c.Verdict)
	}
	return string(c.Verdict) + ": " + c.Why
}

func (c Claim) String() string {
	return fmt.Sprintf("[%s] %s: %s (paper: %s)", c.VerdictText(), c.Claim, c.Detail, c.Paper)
}

// Greater checks mean(a) − mean(b) > margin by the rule: "a is better than
// b" (margin 0) or "a ≫ b" (margin > 0).
func Greater(claim, paperNote string, a, b Sample, margin float64) Claim {
	return Compare(claim, paperNote, a, b, margin)
}

// All is a claim made at several points (e.g. at E = 768 and E = 128):
// Combine over one sub-check per intended point.
func All(claim, paperNote string, subs []Claim, labels []string) Claim {
	return Combine(claim, paperNote, subs, labels)
}

// Point is a sample at a value of a swept axis (the paper's value).
type Point struct {
	X float64
	Sample
}

func sortPoints(ps []Point) []Point {
	out := append([]Point(nil), ps...)
	sort.Slice(out, func(i, j int) bool { return out[i].X < out[j].X })
	return out
}

// pointAt is the point at x (an empty sample labelled "axis=x" if none).
func pointAt(ps []Point, axis string, x float64) Sample {
	for _, p := range ps {
		if p.X == x {
			p.Label = fmt.Sprintf("%s=%g", axis, x)
			return p.Sample
		}
	}
	return Sample{Label: fmt.Sprintf("%s=%g", axis, x)}
}

func listPoints(ps []Point, axis string) string {
	var parts []string
	for _, p := range sortPoints(ps) {
		if p.N() > 0 || len(p.Lost) > 0 {
			parts = append(parts, fmt.Sprintf("%s=%g: %s", axis, p.X, p.Format(2)))
		}
	}
	if len(parts) == 0 {
		return "no runs"
	}
	return strings.Join(parts, "; ")
}

// Best checks that the point at x = want beats every other intended point
// (xs) by the rule: every intended point needs runs, and want's advantage
// over each must hold. Did not hold when another point beats want by the
// rule; inconclusive otherwise (a plateau where every point is equal is
// inconclusive, never won by a tie).
func Best(claim, paperNote, axis string, ps []Point, want float64, xs []float64) Claim {
	at := pointAt(ps, axis, want)
	var subs []Claim
	var labels []string
	for _, x := range xs {
		if x == want {
			continue
		}
		subs = append(subs, Compare("", "", at, pointAt(ps, axis, x), 0))
		labels = append(labels, fmt.Sprintf("%s=%g", axis, x))
	}
	c := Combine(claim, paperNote, subs, labels)
	if at.N() == 0 {
		c.Verdict, c.Why = NotEnough, fmt.Sprintf("no finished run at %s=%g", axis, want)
	}
	c.Detail = listPoints(ps, axis) + " → " + c.Detail
	return c
}

// Increases checks that the largest intended x beats the smallest by the
// rule (the paper's "improves with E"); the detail lists every point so a
// non-monotone curve is visible.
func Increases(claim, paperNote, axis string, ps []Point, xs []float64) Claim {
	lo, hi := xs[0], xs[len(xs)-1]
	c := Compare(claim, paperNote, pointAt(ps, axis, hi), pointAt(ps, axis, lo), 0)
	c.Detail = listPoints(ps, axis) + " → " + c.Detail
	mono := true
	sorted := sortPoints(ps)
	prev := math.Inf(-1)
	for _, p := range sorted {
		if p.N() == 0 {
			continue
		}
		mono = mono && p.Mean() >= prev
		prev = p.Mean()
	}
	if !mono {
		c.Detail += " (means not monotone)"
	}
	return c
}

// Roughness is how much a per-layer quantity jumps between consecutive
// layers: the mean absolute difference (0 for a flat curve, NaN for fewer
// than two layers). A smoother transition curve has a smaller roughness.
func Roughness(perLayer []float64) float64 {
	if len(perLayer) < 2 {
		return math.NaN()
	}
	t := 0.0
	for i := 1; i < len(perLayer); i++ {
		t += math.Abs(perLayer[i] - perLayer[i-1])
	}
	return t / float64(len(perLayer)-1)
}

// The claims of each ablation, over numbers. Accuracies are in percent.

// SentenceRuns is the evidence of v6 Table 5: each sentence-trained model
// scored on both tasks, and how constant its predictions are on its own
// task (the fraction of held-out pairs given the most frequent predicted
// class: eval metrics nsp_majority / sop_majority, fractions).
type SentenceRuns struct {
	NSPofNSP, SOPofNSP Sample // the NSP-trained model on NSP (own task) and on SOP
	NSPofSOP, SOPofSOP Sample // the SOP-trained model on NSP and on SOP (own task)
	NSPMajority        Sample // NSP-trained, on the NSP set
	SOPMajority        Sample // SOP-trained, on the SOP set
}

// ConstantShare is the share of held-out pairs given one class above which
// a sentence head counts as predicting a constant.
const ConstantShare = 0.95

// SentenceNeeds states the sentence claims' preconditions.
const SentenceNeeds = "both sentence-trained models (NSP and SOP), each above chance on its own task (the interval of its accuracy above 50%) and not predicting a constant class (nsp_majority / sop_majority < 0.95 for every run)"

// headLearned checks one sentence head's preconditions: "" when it
// learned; else whether it did not learn (learnt false) and why.
func headLearned(name string, own, majority Sample, majKey string) (why string, notLearned bool) {
	switch {
	case own.N() == 0:
		return "", false
	case own.N() < MinSeeds:
		return fmt.Sprintf("fewer than %d seeds of the %s model (n=%d)", MinSeeds, name, own.N()), false
	case majority.N() < own.N():
		return fmt.Sprintf("no diagnostics (%s not stored for %d of %d %s runs)", majKey, own.N()-majority.N(), own.N(), name), false
	}
	for _, m := range majority.Values {
		if m >= ConstantShare {
			return fmt.Sprintf("the %s head predicts one class for %.0f%% of pairs", name, 100*m), true
		}
	}
	if a := Above("", "", own, 50); a.Verdict != Held {
		return fmt.Sprintf("the %s head is not above chance on its own task: %s", name, a.Detail), true
	}
	return "", false
}

// SentenceClaims: v6 Table 5. Every claim needs both sentence heads to have
// learned their own task (SentenceNeeds); otherwise it is inconclusive.
func SentenceClaims(ev SentenceRuns) []Claim {
	ev.NSPofSOP.Label, ev.SOPofNSP.Label = "SOP-trained on NSP", "NSP-trained on SOP"
	ev.NSPofNSP.Label, ev.SOPofSOP.Label = "NSP-trained on NSP", "SOP-trained on SOP"
	near := Near("NSP-trained model's SOP accuracy is near chance (50 ± 5)",
		"52.0, \"about random\" (v6 Table 5)", ev.SOPofNSP, 50, 5)
	solves := Above("SOP-trained model solves NSP (its NSP accuracy > 60, 10 points above chance)",
		"78.9 (v6 Table 5)", ev.NSPofSOP, 60)
	cs := []Claim{
		Combine("NSP-trained does not solve SOP while SOP-trained solves NSP (both of the next two claims)",
			"SOP 52.0 for NSP-trained vs NSP 78.9 for SOP-trained (v6 Table 5)",
			[]Claim{near, solves}, []string{"NSP-trained on SOP near chance", "SOP-trained on NSP > 60"}),
		near,
		solves,
		Greater("SOP-trained model's NSP accuracy ≫ NSP-trained model's SOP accuracy (by > 10 points)",
			"78.9 vs 52.0 (v6 Table 5)", ev.NSPofSOP, ev.SOPofNSP, 10),
	}
	var why, notLearned []string
	for _, h := range []struct {
		name, key     string
		own, majority Sample
	}{{"NSP-trained", "nsp_majority", ev.NSPofNSP, ev.NSPMajority}, {"SOP-trained", "sop_majority", ev.SOPofSOP, ev.SOPMajority}} {
		w, nl := headLearned(h.name, h.own, h.majority, h.key)
		switch {
		case nl:
			notLearned = append(notLearned, w)
		case w != "":
			why = append(why, w)
		}
	}
	if len(notLearned) > 0 {
		why = append(why, "sentence heads did not learn at this scale ("+strings.Join(notLearned, "; ")+")")
	}
	missing := ev.NSPofNSP.N() == 0 || ev.SOPofSOP.N() == 0
	for i := range cs {
		cs[i].Needs = SentenceNeeds
		if missing {
			cs[i].Verdict = NotEnough
			var no []string
			if ev.NSPofNSP.N() == 0 {
				no = append(no, "NSP-trained")
			}
			if ev.SOPofSOP.N() == 0 {
				no = append(no, "SOP-trained")
			}
			cs[i].Why = "no finished " + strings.Join(no, " or ") + " run"
			continue
		}
		cs[i] = requires(cs[i], len(why) == 0, strings.Join(why, "; "))
	}
	return cs
}

// SharingPoint is one embedding size of v6 Table 4: MLM accuracy of each
// sharing strategy.
type SharingPoint struct {
	E                         float64 // the paper's E
	All, Attention, FFN, None Sample
}

// SharingClaims: v6 Table 4, on MLM accuracy, each at every E of pts.
func SharingClaims(pts []SharingPoint) []Claim {
	sort.Slice(pts, func(i, j int) bool { return pts[i].E > pts[j].E })
	var a, b []Claim
	var labels []string
	for _, p := range pts {
		labels = append(labels, fmt.Sprintf("E=%g", p.E))
		p.All.Label, p.None.Label, p.FFN.Label, p.Attention.Label = "all-shared", "not-shared", "shared-FFN", "shared-attention"
		a = append(a, Greater("", "", p.None, p.All, 0))
		b = append(b, Greater("", "", p.Attention, p.FFN, 0))
	}
	return []Claim{
		All("all-shared < not-shared (MLM accuracy, at every E)", "Avg 79.8 vs 82.3 at E=768, 80.1 vs 81.6 at E=128 (v6 Table 4)", a, labels),
		All("shared-FFN hurts more than shared-attention (MLM accuracy: shared-FFN < shared-attention, at every E)",
			"Avg 79.5 vs 81.6 at E=768, 80.2 vs 81.7 at E=128 (v6 Table 4)", b, labels),
	}
}

// EmbeddingEs are the paper's embedding sizes in v6 Table 3.
var EmbeddingEs = []float64{64, 128, 256, 768}

// EmbeddingClaims: v6 Table 3, on MLM accuracy by the paper's E.
func EmbeddingClaims(allShared, notShared []Point) []Claim {
	return []Claim{
		Best("E = 128 is best among all-shared (MLM accuracy, vs E = 64, 256, 768)", "all-shared Avg 79.0 / 80.1 / 79.6 / 79.8 at E = 64 / 128 / 256 / 768 (v6 Table 3)",
			"E", allShared, 128, EmbeddingEs),
		Increases("not-shared improves with E (MLM accuracy, E = 768 vs E = 64)", "not-shared Avg 81.3 / 81.7 / 81.8 / 82.3 at E = 64 / 128 / 256 / 768 (v6 Table 3)",
			"E", notShared, EmbeddingEs),
	}
}

// divergedAsZero counts each diverged seed of s as accuracy 0: a model whose
// training diverged has degraded. It returns how many were counted.
func divergedAsZero(s Sample) (Sample, int) {
	out := s
	out.Values = append([]float64(nil), s.Values...)
	out.Seeds = append([]int64(nil), s.Seeds...)
	out.Lost = nil
	k := 0
	for _, l := range s.Lost {
		if l.Status != results.StatusDiverged {
			out.Lost = append(out.Lost, l)
			continue
		}
		out.Values = append(out.Values, 0)
		if s.Seeds != nil {
			out.Seeds = append(out.Seeds, l.Seed)
		}
		k++
	}
	return out, k
}

// XlargeClaims: v1 Table 1 / Figure 1. Accuracies of BERT-large and
// BERT-xlarge; losses are held-out MLM losses. A diverged seed counts as
// degradation: accuracy 0 in the accuracy claim, and the verdict says so.
func XlargeClaims(largeAcc, xlargeAcc, largeLoss, xlargeLoss Sample) []Claim {
	largeAcc.Label, xlargeAcc.Label, largeLoss.Label, xlargeLoss.Label = "BERT-large", "BERT-xlarge", "BERT-large", "BERT-xlarge"
	la, kl := divergedAsZero(largeAcc)
	xa, kx := divergedAsZero(xlargeAcc)
	acc := Greater("BERT-xlarge degrades vs BERT-large (lower held-out MLM accuracy; a diverged seed counts as 0%)",
		"\"the larger model has lower masked LM accuracy\" (v1 Figure 1); RACE 73.9 vs 54.3 (v1 Table 1)", la, xa, 0)
	loss := Greater("BERT-xlarge has a higher held-out MLM loss than BERT-large",
		"implied by v1 Figure 1 (no curve values transcribed)", xlargeLoss, largeLoss, 0)
	if kx+kl > 0 {
		note := fmt.Sprintf("diverged seeds counted as degradation (accuracy 0): %d BERT-xlarge, %d BERT-large", kx, kl)
		acc.Detail += "; " + note
		if acc.Why != "" {
			acc.Why += "; "
		}
		acc.Why += note
		loss.Detail += "; diverged seeds have no loss and are left out here (the accuracy claim counts them)"
	}
	return []Claim{acc, loss}
}

// TransitionRuns is one side of v6 Figure 1: per-layer values of each done
// run (layer order) and the runs' held-out MLM accuracy with its plateau
// flags.
type TransitionRuns struct {
	Seeds   []int64
	L2, Cos [][]float64
	MLM     Sample
	// NoPlateau counts runs whose plateau check could not be made (no
	// mlm_plateau or mlm_n stored).
	NoPlateau int
}

// TransitionNeeds states the transition claims' preconditions.
const TransitionNeeds = "both BERT (not-shared) and ALBERT (all-shared) runs, every one trained past the unigram plateau (mlm_acc above mlm_plateau by more than 3 SE and at least 1 point)"

func (t TransitionRuns) per(label string, f func(l2, cos []float64) float64) Sample {
	var v []float64
	for i := range t.L2 {
		v = append(v, f(t.L2[i], t.Cos[i]))
	}
	seeds := t.Seeds
	if len(seeds) != len(v) {
		return NewSample(label, v...)
	}
	return Seeded(label, seeds, v)
}

func (t TransitionRuns) trained(name string) string {
	switch {
	case t.NoPlateau > 0:
		return fmt.Sprintf("%s: no plateau check for %d of %d runs (mlm_plateau or mlm_n not stored)", name, t.NoPlateau, len(t.L2))
	case t.MLM.OnPlateau > 0:
		return fmt.Sprintf("%s: %d of %d runs still on the unigram plateau", name, t.MLM.OnPlateau, len(t.L2))
	}
	return ""
}

func mean(v []float64) float64 { return NewSample("", v...).Mean() }

func last(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	return v[len(v)-1]
}

// TransitionClaims: v6 Figure 1, ALBERT (all-shared) against BERT
// (not-shared), each decided by the rule over seeds.
func TransitionClaims(bert, albert TransitionRuns) []Claim {
	rough := func(which int) func(l2, cos []float64) float64 {
		return func(l2, cos []float64) float64 { return Roughness([][]float64{l2, cos}[which]) }
	}
	avg := func(which int) func(l2, cos []float64) float64 {
		return func(l2, cos []float64) float64 { return mean([][]float64{l2, cos}[which]) }
	}
	drop := []Claim{
		Greater("", "", bert.per("BERT mean L2", avg(0)), albert.per("ALBERT mean L2", avg(0)), 0),
		Greater("", "", bert.per("BERT mean angle", avg(1)), albert.per("ALBERT mean angle", avg(1)), 0),
		Above("", "", albert.per("ALBERT last-layer angle", func(_, cos []float64) float64 { return last(cos) }), 0),
	}
	cs := []Claim{
		Greater("ALBERT's layer transitions are smoother than BERT's: L2 distance (roughness: mean |Δ| between consecutive layers, BERT > ALBERT)",
			"v6 Figure 1: \"the transitions from layer to layer are much smoother for ALBERT than for BERT\"",
			bert.per("BERT roughness", rough(0)), albert.per("ALBERT roughness", rough(0)), 0),
		Greater("ALBERT's layer transitions are smoother than BERT's: cosine angle (roughness in degrees, BERT > ALBERT)",
			"v6 Figure 1", bert.per("BERT roughness", rough(1)), albert.per("ALBERT roughness", rough(1)), 0),
		Combine("ALBERT's transitions drop relative to BERT's but do not converge to 0 (mean L2 and mean angle: BERT > ALBERT; ALBERT's last-layer angle > 0)",
			"v6 Figure 1: \"there is a drop for both metrics compared to BERT, they nevertheless do not converge to 0 even after 24 layers\"",
			drop, []string{"L2", "angle", "last angle"}),
	}
	var why []string
	for _, w := range []string{bert.trained("BERT"), albert.trained("ALBERT")} {
		if w != "" {
			why = append(why, w)
		}
	}
	for i := range cs {
		cs[i].Needs = TransitionNeeds
		if len(bert.L2) == 0 || len(albert.L2) == 0 {
			cs[i].Verdict, cs[i].Why = NotEnough, "needs both BERT and ALBERT runs with transitions"
			continue
		}
		cs[i] = requires(cs[i], len(why) == 0, "not trained past the unigram plateau: "+strings.Join(why, "; "))
	}
	return cs
}

// DepthClaims: v6 Table 11, MLM accuracy by the paper's number of layers.
func DepthClaims(ps []Point) []Claim {
	return []Claim{
		Greater("deeper is better: L=24 beats L=1 (MLM accuracy)",
			"Avg 52.9 at L=1 to 82.1 at L=24 (v6 Table 11)", pointAt(ps, "L", 24), pointAt(ps, "L", 1), 0),
		Greater("gains saturate: 48 layers is no better than 24 (MLM accuracy, L=24 > L=48)",
			"Avg 82.1 at L=24 vs 81.8 at L=48 (v6 Table 11)", pointAt(ps, "L", 24), pointAt(ps, "L", 48), 0),
	}
}

// WidthClaims: v6 Table 12, MLM accuracy by the paper's hidden size.
func WidthClaims(ps []Point) []Claim {
	return []Claim{
		Greater("wider helps up to H = 4096 (MLM accuracy, H=4096 > H=1024)",
			"Avg 71.2 at H=1024 vs 76.3 at H=4096 (v6 Table 12)", pointAt(ps, "H", 4096), pointAt(ps, "H", 1024), 0),
		Greater("too wide degrades: H = 6144 is worse than H = 4096 (MLM accuracy)",
			"Avg 76.3 at H=4096 vs 74.0 at H=6144 (v6 Table 12)", pointAt(ps, "H", 4096), pointAt(ps, "H", 6144), 0),
	}
}

// DropoutClaims: v6 Table 8 / Figure 2b, held-out MLM accuracy.
func DropoutClaims(with, without Sample) []Claim {
	with.Label, without.Label = "with dropout", "without dropout"
	return []Claim{
		Greater("removing dropout helps (held-out MLM accuracy without > with)",
			"Avg 90.7 vs 90.4 (v6 Table 8); higher dev MLM accuracy without dropout (v6 Figure 2b)", without, with, 0),
	}
}

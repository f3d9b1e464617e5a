// Command probe asks, for the fine-tuning study in
// ablations/studies/finetune-cpu.toml, whether a pretrained encoder's frozen
// features carry more of a classification task's signal than a random
// init's: a linear probe. For the pretraining run given and for a random init
// of the same architecture (the fine-tuning model's seed-1 init), it runs the
// encoder in evaluation mode over a task's training and dev examples and
// fits a multinomial logistic regression (z-scored features, L2, full-batch
// gradient descent) on the training features of each of
//
//	pooled   the pooled output (dense+tanh on [CLS]; what fine-tuning reads)
//	cls      the last layer's hidden state at [CLS]
//	mean     the last layer's hidden states averaged over real tokens
//	embed    the embedding layer's output averaged over real tokens
//
// and prints dev accuracy, plus how spread the pooled output is (the mean
// over dimensions of its standard deviation across examples, and the share
// of |pooled| > 0.99, where tanh is saturated). If the pretrained features
// probe better than the random ones, the encoder carries the signal and
// fine-tuning fails to use it; if not, there is nothing there to use.
// From the repository root, after the study's runs:
//
//	go run ./ablations/studies/probe --db out/ft-study.db --runs-dir out/runs-sentence \
//	  --run 292d46b9eb7b --tasks standin-reviews,standin-spam
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/data"
	"github.com/reproml/albert/experiments"
	"github.com/reproml/albert/finetune"
	"github.com/reproml/albert/finetune/tasks"
	"github.com/reproml/albert/results"
)

func main() {
	db := flag.String("db", "out/exp.db", "results database holding the pretraining run")
	runsDir := flag.String("runs-dir", "out/runs", "folder of the run folders")
	run := flag.String("run", "", "pretraining run: a prefix of its config hash")
	taskList := flag.String("tasks", "standin-reviews,standin-spam", "comma-separated task names")
	dataDir := flag.String("data-dir", "out/data", "data root")
	trainN := flag.Int("train-examples", 2000, "training examples to fit the probe on (0: all)")
	flag.Parse()
	if *run == "" {
		fmt.Fprintln(os.Stderr, "probe: --run is required")
		os.Exit(2)
	}
	if err := probeAll(*db, *runsDir, *run, strings.Split(*taskList, ","), *dataDir, *trainN); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

func probeAll(dbPath, runsDir, prefix string, names []string, dataDir string, trainN int) error {
	st, err := results.Open(dbPath)
	if err != nil {
		return err
	}
	defer st.Close()
	runs, err := st.Runs(results.RunFilter{Kind: results.KindPretrain})
	if err != nil {
		return err
	}
	var found []results.Run
	for _, r := range runs {
		if strings.HasPrefix(r.ConfigHash, prefix) {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		return fmt.Errorf("%s: %d pretraining runs have a hash starting %q (want 1)", dbPath, len(found), prefix)
	}
	cfg, err := experiments.ParseRunConfig(found[0].ConfigJSON)
	if err != nil {
		return err
	}
	if err := backend.Init(); err != nil {
		return err
	}
	ds, err := data.Prepare(cfg.Data, data.ObjectiveNone, "out/cache")
	if err != nil {
		return err
	}
	vocab, err := tasks.NewVocab(ds.Tokenizer())
	if err != nil {
		return err
	}
	dir := filepath.Join(runsDir, found[0].ConfigHash)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "task\tinit\tpooled\tcls\tmean\tembed\tpooled std\tpooled |x|>0.99\n")
	for _, name := range names {
		task, ok := tasks.Lookup(name)
		if !ok || task.Kind != tasks.Classification {
			return fmt.Errorf("task %q: not a known classification task", name)
		}
		fc, err := finetune.Profile("cpu", task.Name, string(task.Kind))
		if err != nil {
			return err
		}
		fc.TrainExamples = trainN
		d, err := finetune.Load(dataDir, task, vocab, fc)
		if err != nil {
			return err
		}
		for _, init := range []string{"pretrained", "random"} {
			m, err := finetune.NewModel(cfg.Model, task, fc, 1, gotch.CPU)
			if err != nil {
				return err
			}
			if init == "pretrained" {
				if err := m.LoadPretrained(dir); err != nil {
					m.Close()
					return err
				}
			}
			tr, dv := features(m, d.Train), features(m, d.Evals[0].Features)
			m.Close()
			ytr, ydv := labels(d.Train), labels(d.Evals[0].Features)
			fmt.Fprintf(tw, "%s\t%s", name, init)
			for _, k := range kinds {
				fmt.Fprintf(tw, "\t%.1f", 100*probe(tr[k], ytr, dv[k], ydv, len(task.Labels)))
			}
			std, sat := spread(dv["pooled"])
			fmt.Fprintf(tw, "\t%.3f\t%.1f%%\n", std, 100*sat)
		}
	}
	return tw.Flush()
}

var kinds = []string{"pooled", "cls", "mean", "embed"}

// features runs m's encoder in evaluation mode over fs and returns each
// kind's [len(fs)][H or E] rows.
func features(m *finetune.Model, fs []tasks.Feature) map[string][][]float64 {
	out := map[string][][]float64{}
	const batch = 64
	for i := 0; i < len(fs); i += batch {
		b := fs[i:min(i+batch, len(fs))]
		backend.NoGrad(func() {
			var s backend.Scope
			defer s.Free()
			in := finetune.ToDevice(&s, b, tasks.Classification, m.Enc.Device)
			o := m.Enc.Forward(&s, in.Inputs, false, true)
			pooled := m.Enc.Pooler.Forward(&s, o.Hidden)
			cls := s.T(o.Hidden.MustSelect(1, 0, false))
			mask := s.T(s.T(in.Mask.MustTotype(pooled.DType(), false)).MustUnsqueeze(2, false)) // [B,S,1]
			n := s.T(mask.MustSumDimIntlist([]int64{1}, false, pooled.DType(), false))          // [B,1]: real tokens
			meanOf := func(x *ts.Tensor) *ts.Tensor {
				sum := s.T(s.T(x.MustMul(mask, false)).MustSumDimIntlist([]int64{1}, false, pooled.DType(), false))
				return s.T(sum.MustDiv(n, false))
			}
			for k, t := range map[string]*ts.Tensor{"pooled": pooled, "cls": cls, "mean": meanOf(o.Hidden), "embed": meanOf(o.States[0])} {
				out[k] = append(out[k], rows(t)...)
			}
		})
	}
	return out
}

func rows(t *ts.Tensor) [][]float64 {
	sz := t.MustSize()
	v := backend.Float64s(t)
	r := make([][]float64, sz[0])
	for i := range r {
		r[i] = v[i*int(sz[1]) : (i+1)*int(sz[1])]
	}
	return r
}

func labels(fs []tasks.Feature) []int {
	y := make([]int, len(fs))
	for i, f := range fs {
		y[i] = f.Label
	}
	return y
}

// probe fits softmax regression on (xtr, ytr) and returns its accuracy on
// (xdv, ydv). Features are z-scored with the training mean and deviation.
func probe(xtr [][]float64, ytr []int, xdv [][]float64, ydv []int, classes int) float64 {
	d := len(xtr[0])
	mu, sd := make([]float64, d), make([]float64, d)
	for _, x := range xtr {
		for j, v := range x {
			mu[j] += v / float64(len(xtr))
		}
	}
	for _, x := range xtr {
		for j, v := range x {
			sd[j] += (v - mu[j]) * (v - mu[j]) / float64(len(xtr))
		}
	}
	z := func(x []float64) []float64 {
		o := make([]float64, d+1)
		for j, v := range x {
			o[j] = (v - mu[j]) / math.Max(math.Sqrt(sd[j]), 1e-8)
		}
		o[d] = 1 // bias
		return o
	}
	var ztr, zdv [][]float64
	for _, x := range xtr {
		ztr = append(ztr, z(x))
	}
	for _, x := range xdv {
		zdv = append(zdv, z(x))
	}
	// Nesterov-accelerated gradient descent with step 1/L, L the gradient's
	// Lipschitz bound λmax(XᵀX/n)/2 + l2: features of a mean over tokens
	// are strongly correlated, and a fixed step diverges on them.
	const l2, epochs = 1e-3, 1000
	step := 1 / (lambdaMax(ztr)/2 + l2)
	w, prev, look := zeros(classes, d+1), zeros(classes, d+1), zeros(classes, d+1)
	p := make([]float64, classes)
	grad := zeros(classes, d+1)
	for e := 0; e < epochs; e++ {
		mom := float64(e) / float64(e+3)
		for c := range w {
			for j := range w[c] {
				look[c][j] = w[c][j] + mom*(w[c][j]-prev[c][j])
				grad[c][j] = l2 * look[c][j]
			}
		}
		for i, x := range ztr {
			softmax(look, x, p)
			for c := range p {
				g := p[c]
				if c == ytr[i] {
					g--
				}
				g /= float64(len(ztr))
				for j, v := range x {
					grad[c][j] += g * v
				}
			}
		}
		for c := range w {
			copy(prev[c], w[c])
			for j := range w[c] {
				w[c][j] = look[c][j] - step*grad[c][j]
			}
		}
	}
	right := 0
	for i, x := range zdv {
		softmax(w, x, p)
		best := 0
		for c := range p {
			if p[c] > p[best] {
				best = c
			}
		}
		if best == ydv[i] {
			right++
		}
	}
	return float64(right) / float64(len(zdv))
}

func softmax(w [][]float64, x, p []float64) {
	mx := math.Inf(-1)
	for c := range w {
		p[c] = 0
		for j, v := range x {
			p[c] += w[c][j] * v
		}
		mx = math.Max(mx, p[c])
	}
	sum := 0.0
	for c := range p {
		p[c] = math.Exp(p[c] - mx)
		sum += p[c]
	}
	for c := range p {
		p[c] /= sum
	}
}

// spread is the mean over dimensions of the standard deviation across rows,
// and the share of entries with |x| > 0.99.
func spread(x [][]float64) (std, saturated float64) {
	d := len(x[0])
	for j := 0; j < d; j++ {
		var m, m2 float64
		for _, r := range x {
			m += r[j]
			m2 += r[j] * r[j]
			if math.Abs(r[j]) > 0.99 {
				saturated++
			}
		}
		m /= float64(len(x))
		std += math.Sqrt(math.Max(m2/float64(len(x))-m*m, 0))
	}
	return std / float64(d), saturated / float64(d*len(x))
}

func zeros(r, c int) [][]float64 {
	m := make([][]float64, r)
	for i := range m {
		m[i] = make([]float64, c)
	}
	return m
}

// lambdaMax is the largest eigenvalue of XᵀX/n, by power iteration.
func lambdaMax(x [][]float64) float64 {
	d := len(x[0])
	v := make([]float64, d)
	for j := range v {
		v[j] = 1 / math.Sqrt(float64(d))
	}
	lam := 0.0
	for it := 0; it < 100; it++ {
		u := make([]float64, d)
		for _, r := range x {
			dot := 0.0
			for j, a := range r {
				dot += a * v[j]
			}
			for j, a := range r {
				u[j] += dot * a / float64(len(x))
			}
		}
		norm := 0.0
		for _, a := range u {
			norm += a * a
		}
		lam = math.Sqrt(norm)
		for j := range u {
			v[j] = u[j] / lam
		}
	}
	return lam
}

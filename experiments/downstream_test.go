package experiments

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reproml/albert/finetune"
	"github.com/reproml/albert/finetune/tasks"
	"github.com/reproml/albert/results"
)

// downFile is good with two pretraining seeds and a [downstream] table.
const downFile = good + `
[downstream]
tasks = ["standin-reviews", "SST-2"]
seeds = [1, 2, 3]
random_init = true
[downstream.finetune]
steps = 50
`

// writeReviews lays out standin-reviews (SST-2 format) under root.
func writeReviews(t *testing.T, root string) {
	for _, s := range []string{"train", "dev"} {
		writeFile(t, root, filepath.Join("standin", "reviews", s+".tsv"), "sentence\tlabel\ngreat\t1\nbad\t0\n")
	}
}

// The planner adds, per pretraining run, task present and fine-tuning seed,
// a pretrained and a random-init run (the random-init one once per
// architecture, whatever the pretraining seed); a declared task whose files
// are absent is skipped with the path it looked for; the fine-tuning
// overrides reach the config; planning again gives the same hashes.
func TestPlanDownstream(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	writeReviews(t, root)
	f, err := Load(writeFile(t, dir, "t.toml", strings.Replace(downFile, "seeds = [1]", "seeds = [1, 2]", 1)))
	if err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, f, "cpu")
	pre := len(p.Runs) // 2 grid points × 2 seeds
	skipped, err := f.PlanDownstream(p, root)
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 1 || !strings.Contains(skipped[0], filepath.Join(root, "glue", "SST-2", "train.tsv")) {
		t.Errorf("skipped %q, want SST-2 naming its train.tsv", skipped)
	}
	var pretrained, random int
	for _, r := range p.Runs[pre:] {
		if r.Finetune == nil || r.Finetune.Task.Name != "standin-reviews" || r.Finetune.Config.Steps != 50 || r.Train.Steps != 50 {
			t.Fatalf("run %+v", r)
		}
		if r.Finetune.Init == results.InitPretrained {
			pretrained++
		} else {
			random++
		}
	}
	// 8 pretraining runs (4 grid points × 2 seeds) × 3 fine-tuning seeds
	// pretrained; 4 architectures × 3 seeds random, the other 12 duplicates.
	if pretrained != 24 || random != 12 || p.Duplicates != 12 {
		t.Errorf("%d pretrained, %d random-init, %d duplicates; want 24, 12, 12", pretrained, random, p.Duplicates)
	}
	q := mustPlan(t, f, "cpu")
	if _, err := f.PlanDownstream(q, root); err != nil {
		t.Fatal(err)
	}
	for i := range p.Runs {
		if p.Runs[i].Hash != q.Runs[i].Hash {
			t.Fatalf("run %d: hash %s then %s", i, p.Runs[i].Hash, q.Runs[i].Hash)
		}
	}
}

// [downstream] is checked like the rest of the file, with file:line.
func TestDownstreamErrors(t *testing.T) {
	for _, c := range []struct{ edit, want string }{
		{`tasks = ["standin-reviews", "SST-2"]`, ""},
		{`tasks = ["SST2"]`, `t.toml:28: downstream.tasks: unknown task "SST2"`},
		{`random_init = "yes"`, `t.toml:30: downstream.random_init: want a boolean`},
		{`steps = 50`, ""},
		{`bogus = 1`, `t.toml:32: downstream.finetune.bogus: unknown fine-tuning key`},
	} {
		src := downFile
		if c.want != "" {
			old := map[bool]string{true: `tasks = ["standin-reviews", "SST-2"]`, false: `random_init = true`}[strings.HasPrefix(c.edit, "tasks")]
			if strings.HasPrefix(c.edit, "bogus") {
				old = "steps = 50"
			}
			src = strings.Replace(downFile, old, c.edit, 1)
		}
		_, err := Parse("t.toml", []byte(src))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.edit, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want %q", c.edit, err, c.want)
		}
	}
}

// Execute trains the pretraining runs, then the fine-tuning runs, each once:
// a second Execute of the same plan claims nothing, and no row is added.
func TestExecuteDownstreamOnce(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	writeReviews(t, root)
	f, err := Load(writeFile(t, dir, "t.toml", downFile))
	if err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, f, "cpu")
	if _, err := f.PlanDownstream(p, root); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "exp.db")
	tr := &fake{}
	opt := Options{DB: db, RunsDir: filepath.Join(dir, "runs"), Trainer: tr}
	sum, err := Execute(context.Background(), p, opt)
	if err != nil || sum.Done != len(p.Runs) {
		t.Fatalf("first execute: %v, %+v (want %d done)", err, sum, len(p.Runs))
	}
	seenFinetune := false
	for _, j := range tr.jobs {
		if j.Run.Finetune != nil {
			seenFinetune = true
		} else if seenFinetune {
			t.Fatalf("pretraining run %s trained after a fine-tuning run", j.Run.Label)
		}
	}
	sum, err = Execute(context.Background(), p, opt)
	if err != nil || sum.Done != 0 || sum.Skipped != len(p.Runs) || tr.n() != len(p.Runs) {
		t.Fatalf("second execute: %v, %+v, %d trainings in all", err, sum, tr.n())
	}
	st, err := results.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fts, err := st.Finetunes(results.FinetuneFilter{Experiment: "t"})
	pres, _ := st.Runs(results.RunFilter{Kind: results.KindPretrain})
	if err != nil || len(fts)+len(pres) != len(p.Runs) || len(pres) != 4 {
		t.Fatalf("%d fine-tuning + %d pretraining rows (%v) for %d planned runs", len(fts), len(pres), err, len(p.Runs))
	}
}

// ablations/downstream.toml pretrains one ALBERT-base per profile and
// fine-tunes it, pretrained and from a random init, with 3 seeds on every
// task under the data root: the three stand-ins when there is nothing else.
func TestDownstreamAblation(t *testing.T) {
	f := loadAblation(t, "downstream")
	for _, profile := range []string{"cpu", "paper"} {
		p := mustPlan(t, f, profile)
		if len(p.Runs) != 1 || p.Runs[0].Model.HiddenSize != map[string]int{"cpu": 128, "paper": 768}[profile] {
			t.Fatalf("%s: %d pretraining runs (H %d), want one ALBERT-base", profile, len(p.Runs), p.Runs[0].Model.HiddenSize)
		}
		skipped, err := f.PlanDownstream(p, t.TempDir())
		if err != nil || len(skipped) != 0 {
			t.Fatalf("%s: %v, skipped %v", profile, err, skipped)
		}
		tasks := map[string]int{}
		for _, r := range p.Runs[1:] {
			tasks[r.Finetune.Task.Name+" "+r.Finetune.Init]++
			if profile == "cpu" && (r.Finetune.Config.MaxSeqLen > 128 || r.Finetune.Config.Steps > 500) {
				t.Errorf("cpu fine-tuning run %s is not CPU-sized: %+v", r.Label, r.Finetune.Config)
			}
		}
		for _, task := range []string{"standin-reviews", "standin-spam", "standin-cloze"} {
			for _, init := range []string{"pretrained", "random"} {
				if tasks[task+" "+init] != 3 {
					t.Errorf("%s: %d %s %s runs, want 3 (%v)", profile, tasks[task+" "+init], task, init, tasks)
				}
			}
		}
	}
}

// The schema example's [downstream] plans fine-tuning runs: the stand-ins
// on an empty data root, from every pretraining run and a random init.
func TestSchemaExampleDownstream(t *testing.T) {
	f, err := Parse("example.toml", []byte(SchemaExample))
	if err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, f, "cpu")
	pre := len(p.Runs)
	if _, err := f.PlanDownstream(p, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	// 3 stand-ins × 3 seeds × (8 pretrained + 8 random-init architectures).
	if got := len(p.Runs) - pre; got != 3*3*(8+8) {
		t.Errorf("%d fine-tuning runs, want %d", got, 3*3*(8+8))
	}
	for _, r := range p.Runs[pre:] {
		if r.Finetune.Config.EvalEvery != 100 {
			t.Fatalf("%s: eval_every %d, want the example's 100", r.Label, r.Finetune.Config.EvalEvery)
		}
	}
}

// --set downstream.finetune.KEY=V overrides the file's [downstream.finetune]
// for every task (a bool included), changes the fine-tuning runs' hashes and
// not the pretraining runs'; a bad key or value names the --set.
func TestSetDownstreamFinetune(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	writeReviews(t, root)
	f, err := Load(writeFile(t, dir, "t.toml", downFile))
	if err != nil {
		t.Fatal(err)
	}
	base := mustPlan(t, f, "cpu")
	if _, err := f.PlanDownstream(base, root); err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, f, "cpu", "downstream.finetune.steps=70", "downstream.finetune.bias_correction=true", "downstream.finetune.lr=3e-5")
	if _, err := f.PlanDownstream(p, root); err != nil {
		t.Fatal(err)
	}
	if len(p.Runs) != len(base.Runs) {
		t.Fatalf("%d runs with --set, %d without", len(p.Runs), len(base.Runs))
	}
	var fts int
	for i, r := range p.Runs {
		if r.Finetune == nil {
			if r.Hash != base.Runs[i].Hash {
				t.Errorf("pretraining run %d changed hash under a fine-tuning --set", i)
			}
			continue
		}
		fts++
		c := r.Finetune.Config
		if c.Steps != 70 || !c.BiasCorrection || c.LR != 3e-5 || !r.Train.BiasCorrection || r.Train.LR != 3e-5 {
			t.Errorf("run %d: overrides not applied: %+v, train %+v", i, c, r.Train)
		}
		if r.Hash == base.Runs[i].Hash {
			t.Errorf("fine-tuning run %d kept its hash under different settings", i)
		}
	}
	if fts == 0 {
		t.Fatal("no fine-tuning runs planned")
	}
	for set, want := range map[string]string{
		"downstream.finetune.stepz=3":               "unknown fine-tuning key (known: batch_size, bias_correction,",
		"downstream.finetune.bias_correction=maybe": "want a boolean",
		"downstream.finetune.lr=fast":               "want a number",
	} {
		_, err := f.Plan("cpu", []string{set})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), set) {
			t.Errorf("--set %s: got %v, want an error naming it and %q", set, err, want)
		}
	}
}

// downstream.finetune.pooling: "cls" is the official head and hashes as
// the default does; "mean" makes new fine-tuning runs that carry it; any
// other value is refused.
func TestSetDownstreamPooling(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	writeReviews(t, root)
	f, err := Load(writeFile(t, dir, "t.toml", downFile))
	if err != nil {
		t.Fatal(err)
	}
	plan := func(sets ...string) *Plan {
		p := mustPlan(t, f, "cpu", sets...)
		if _, err := f.PlanDownstream(p, root); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base, cls, mean := plan(), plan("downstream.finetune.pooling=cls"), plan("downstream.finetune.pooling=mean")
	var fts int
	for i, r := range base.Runs {
		if r.Finetune == nil {
			continue
		}
		fts++
		if cls.Runs[i].Hash != r.Hash || cls.Runs[i].Finetune.Config.Pooling != "" {
			t.Errorf("run %d: pooling=cls changed the hash or was stored (%q)", i, cls.Runs[i].Finetune.Config.Pooling)
		}
		if mean.Runs[i].Hash == r.Hash || mean.Runs[i].Finetune.Config.Pooling != "mean" {
			t.Errorf("run %d: pooling=mean kept the hash or was not applied", i)
		}
	}
	if fts == 0 {
		t.Fatal("no fine-tuning runs planned")
	}
	p := mustPlan(t, f, "cpu", "downstream.finetune.pooling=max")
	if _, err := f.PlanDownstream(p, root); err == nil || !strings.Contains(err.Error(), `pooling must be "cls" or "mean"`) {
		t.Errorf("pooling=max: got %v", err)
	}
}

// A SQuAD 2.0 run names its head (the official XLNet-style "v2") in its
// hashed config, so it never shares a hash with a run of the earlier head;
// every other task's config is unchanged (no span_head key).
func TestSQuAD2RunsNameTheirHead(t *testing.T) {
	f, err := Load(writeFile(t, t.TempDir(), "t.toml", downFile))
	if err != nil {
		t.Fatal(err)
	}
	pre := mustPlan(t, f, "cpu").Runs[0]
	for name, want := range map[string]bool{tasks.SQuAD20: true, tasks.SQuAD11: false, tasks.SST2: false} {
		task, ok := tasks.Lookup(name)
		if !ok {
			t.Fatalf("no task %s", name)
		}
		c, err := finetune.Profile("cpu", task.Name, string(task.Kind))
		if err != nil {
			t.Fatal(err)
		}
		r, err := finetuneRun(pre, task, c, 1, t.TempDir(), results.InitPretrained)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(r.ConfigJSON, `"span_head":"v2"`); got != want || (!want && strings.Contains(r.ConfigJSON, "span_head")) {
			t.Errorf("%s: config %s; want span_head v2: %v", name, r.ConfigJSON, want)
		}
	}
}

package experiments

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func loadAblation(t *testing.T, name string) *File {
	t.Helper()
	f, err := Load(filepath.Join("..", "ablations", name+".toml"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustPlan(t *testing.T, f *File, profile string, sets ...string) *Plan {
	t.Helper()
	p, err := f.Plan(profile, sets)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The paper profile of every ablation file reproduces the table's models:
// run count (3 seeds, the verdict rule's minimum) and exact parameter counts
// in the table's row order, seed by seed.
func TestAblationPlans(t *testing.T) {
	cases := []struct {
		file   string
		params []int64 // paper profile, in plan order
	}{
		{"sharing", []int64{31_114_752, 83_078_400, 57_117_696, 109_081_344, 11_683_584, 63_647_232, 37_686_528, 89_650_176}},
		{"embedding", []int64{87_648_000, 89_650_176, 93_654_528, 109_081_344, 9_681_408, 11_683_584, 15_687_936, 31_114_752}},
		{"sentence", []int64{11_683_584, 11_683_584, 11_683_584}},
		{"xlarge", []int64{334_607_360, 1_275_291_648}},
		{"transitions", []int64{334_607_360, 17_683_968}},
		{"depth", []int64{17_683_968, 17_683_968, 17_683_968, 17_683_968, 17_683_968, 17_683_968}},
		{"width", []int64{17_683_968, 58_724_864, 222_595_584, 495_518_208}},
		{"dropout", []int64{222_595_584, 222_595_584}},
	}
	files, _ := filepath.Glob("../ablations/*.toml")
	files = slices.DeleteFunc(files, func(f string) bool { return filepath.Base(f) == "downstream.toml" }) // TestDownstreamAblation
	if len(files) != len(cases) {
		t.Errorf("ablations/ has %d files, the test knows %d", len(files), len(cases))
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			f := loadAblation(t, c.file)
			if f.DefaultProfile != "cpu" || f.PaperTable == "" || f.Name != c.file {
				t.Errorf("default_profile %q, paper_table %q, name %q", f.DefaultProfile, f.PaperTable, f.Name)
			}
			paper := mustPlan(t, f, "paper")
			const seeds = 3
			if len(paper.Runs) != seeds*len(c.params) || paper.Duplicates != 0 {
				t.Fatalf("paper: %d runs (+%d duplicates), want %d", len(paper.Runs), paper.Duplicates, seeds*len(c.params))
			}
			for i, r := range paper.Runs {
				if want := c.params[i%len(c.params)]; r.Params() != want || r.Seed != int64(1+i/len(c.params)) {
					t.Errorf("paper run %d (%s): %d params, seed %d, want %d params, seed %d", i, r.Label, r.Params(), r.Seed, want, 1+i/len(c.params))
				}
				wantSteps := 125_000
				if c.file == "dropout" {
					wantSteps = 1_000_000
				}
				tr, d, m := r.Train, r.Data, r.Model
				if tr.BatchSize != 4096 || tr.Steps != wantSteps || tr.Optimizer != "lamb" || tr.LR != 0.00176 ||
					tr.WarmupSteps != 3125 || d.SeqLen != 512 || d.MaxPredictions != 20 || m.VocabSize != 30000 || d.VocabSize != 30000 {
					t.Errorf("paper run %d is not the paper's setup: %+v %+v V=%d", i, tr, d, m.VocabSize)
				}
				if !r.Scale.Exact() || r.Scale.Reference != "paper" {
					t.Errorf("paper run %d scale %+v", i, r.Scale)
				}
			}
			cpu := mustPlan(t, f, "") // the default profile
			if cpu.Profile != "cpu" || len(cpu.Runs) != seeds*len(c.params) {
				t.Fatalf("default profile %q: %d runs, want cpu with %d", cpu.Profile, len(cpu.Runs), seeds*len(c.params))
			}
			for i, r := range cpu.Runs {
				if r.Model.VocabSize != 8000 || r.Data.VocabSize != 8000 || r.Model.HiddenSize > 384 || r.Train.Steps > 2000 {
					t.Errorf("cpu run %d (%s) is not CPU-sized: V %d/%d H %d steps %d", i, r.Label,
						r.Model.VocabSize, r.Data.VocabSize, r.Model.HiddenSize, r.Train.Steps)
				}
				// Each CPU run records the paper row it stands for and how it is scaled.
				s := r.Scale
				if s.Reference != "paper" || s.Exact() || s.Factors["train.steps"] == 0 {
					t.Errorf("cpu run %d scale %+v", i, s)
				}
				for _, av := range paper.Runs[i].Point {
					if s.Point[av.Key] != av.Value {
						t.Errorf("cpu run %d: scale point %v, want the paper's %s=%v", i, s.Point, av.Key, av.Value)
					}
				}
			}
		})
	}
}

// Every CPU profile fits the budget of sharing.toml (24 runs in 40 minutes),
// by the FLOP estimate: the cost of any file is at most 1.25x sharing's.
// sentence.toml is the measured exception: its seq-128 profile is 1.70x
// sharing's FLOPs but ran in 55m27s (exp run ablations/sentence.toml
// --jobs 3: longer sequences run more FLOP/s, and 9 runs fill 3 rounds of 3),
// inside the 60 minutes its issue allows; 1.75x keeps it from growing.
func TestCPUBudget(t *testing.T) {
	total := func(name string) float64 {
		var s float64
		for _, r := range mustPlan(t, loadAblation(t, name), "cpu").Runs {
			s += r.FLOPs()
		}
		return s
	}
	ref := total("sharing")
	limit := map[string]float64{"sentence": 1.75}
	for _, name := range []string{"embedding", "sentence", "xlarge", "transitions", "depth", "width", "dropout"} {
		l, ok := limit[name]
		if !ok {
			l = 1.25
		}
		if got := total(name); got > l*ref {
			t.Errorf("%s: %.3g FLOPs, %.2fx sharing.toml's (limit %.2fx)", name, got, got/ref, l)
		}
	}
}

// Trained once: a config two files share has one hash, in both profiles.
func TestSharedConfigsHashEqual(t *testing.T) {
	hashes := func(file, profile string) map[string]string {
		m := map[string]string{}
		for _, r := range mustPlan(t, loadAblation(t, file), profile).Runs {
			m[r.Label] = r.Hash
		}
		return m
	}
	for _, prof := range []string{"paper", "cpu"} {
		emb, sh, sen := hashes("embedding", prof), hashes("sharing", prof), hashes("sentence", prof)
		big, small := "768", "128"
		if prof == "cpu" {
			big, small = "128", "32"
		}
		pairs := [][2]string{
			{emb["sharing=all E="+small+" seed=1"], sh["E="+small+" sharing=all seed=1"]},
			{emb["sharing=none E="+big+" seed=1"], sh["E="+big+" sharing=none seed=1"]},
			{emb["sharing=all E="+big+" seed=1"], sh["E="+big+" sharing=all seed=1"]},
		}
		// Table 5's SOP row is Table 4's ALBERT-base row, except on the CPU,
		// where sentence.toml trains E = H for longer (its heads stay at
		// chance at E = 32).
		if prof == "paper" {
			pairs = append(pairs, [2]string{sh["E="+small+" sharing=all seed=1"], sen["objective=sop seed=1"]})
		}
		for i, p := range pairs {
			if p[0] == "" || p[0] != p[1] {
				t.Errorf("%s pair %d: %q vs %q", prof, i, p[0], p[1])
			}
		}
	}
	// BERT-large is the same run in xlarge.toml and transitions.toml.
	x, tr := mustPlan(t, loadAblation(t, "xlarge"), "paper"), mustPlan(t, loadAblation(t, "transitions"), "paper")
	if x.Runs[0].Hash != tr.Runs[0].Hash {
		t.Error("BERT-large differs between xlarge.toml and transitions.toml")
	}
}

const gzr = `name = "gzr"
[base]
repeats = 3
[base.model]
preset = "albert-base"
vocab_size = 1000
hidden_size = 64
num_layers = 2
[base.data]
seq_len = 32
[base.train]
steps = 10
warmup_steps = 1
[grid]
model.embedding_size = [16, 32]
objective = ["none", "nsp", "sop"]
[[zip]]
model.hidden_dropout = [0.1, 0.0]
model.attention_dropout = [0.1, 0.0]
`

// Grid × zip × repeats: 2 × 3 × 2 per seed, 3 seeds; first axis outermost,
// seeds outermost of all.
func TestGridZipRepeats(t *testing.T) {
	f, err := Parse("gzr.toml", []byte(gzr))
	if err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, f, "")
	if p.Profile != "base" || len(p.Runs) != 36 {
		t.Fatalf("profile %q, %d runs; want base, 36", p.Profile, len(p.Runs))
	}
	want := []string{
		"E=16 objective=none dropout=0.1 attn_dropout=0.1 seed=1",
		"E=16 objective=none dropout=0 attn_dropout=0 seed=1",
		"E=16 objective=nsp dropout=0.1 attn_dropout=0.1 seed=1",
	}
	for i, w := range want {
		if p.Runs[i].Label != w {
			t.Errorf("run %d label %q, want %q", i, p.Runs[i].Label, w)
		}
	}
	if l := p.Runs[12].Label; l != "E=16 objective=none dropout=0.1 attn_dropout=0.1 seed=2" {
		t.Errorf("run 12 label %q", l)
	}
	seen := map[string]bool{}
	for i, r := range p.Runs {
		if seen[r.Hash] {
			t.Errorf("run %d hash repeats", i)
		}
		seen[r.Hash] = true
		if r.Index != i {
			t.Errorf("run %d has index %d", i, r.Index)
		}
		if r.Model.SentenceHead != (r.Objective != "none") {
			t.Errorf("run %d: sentence head %v with objective %s", i, r.Model.SentenceHead, r.Objective)
		}
		if r.Model.HiddenDropout != r.Model.AttentionDropout {
			t.Errorf("run %d: zipped axes did not move together", i)
		}
	}
	// --set seeds replaces repeats.
	if n := len(mustPlan(t, f, "", "seeds=5,6").Runs); n != 24 {
		t.Errorf("--set seeds=5,6: %d runs, want 24", n)
	}
}

func TestSetOverrides(t *testing.T) {
	f := loadAblation(t, "sharing")
	p := mustPlan(t, f, "cpu", "train.steps=50", "train.warmup_steps=5", "train.lr=1e-3", "model.num_layers=2", "data.corpus=/tmp/c.txt", "train.optimizer=adamw", "data.sop_random_negatives=true")
	r := p.Runs[0]
	if r.Train.Steps != 50 || r.Train.LR != 1e-3 || r.Model.NumLayers != 2 || r.Data.Corpus != "/tmp/c.txt" ||
		r.Train.Optimizer != "adamw" || !r.Data.SOPRandomNegatives {
		t.Errorf("overrides not applied: %+v %+v", r.Train, r.Data)
	}
	if r.Scale.Factors["train.steps"] != 0.0004 {
		t.Errorf("scale does not show the override: %v", r.Scale.Factors)
	}
	bad := []struct{ set, want string }{
		{"model.hidden_size=abc", `--set model.hidden_size=abc: model.hidden_size: want an integer, got "abc"`},
		{"train.lr=fast", "want a number"},
		{"model.sharing=bogus", `"bogus" is not one of "all", "attention", "ffn", "none"`},
		{"model.sharing=all", "model.sharing is swept by the file"},
		{"objective=mlm", `"mlm" is not one of "none", "nsp", "sop"`},
		{"model.hiden_size=3", "unknown key"},
		{"nothing", "want key=value"},
		{"model.num_heads=3", "num_heads = 3 does not divide hidden_size = 128"},
		{"data.vocab_size=100", "differs from model.vocab_size"},
		{"model.sentence_head=false", "cannot be set"},
		{"train.warmup_steps=-1", "warmup_steps"},
		{"seeds=a", "seeds"},
	}
	for _, b := range bad {
		_, err := f.Plan("cpu", []string{b.set})
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("--set %s: error %v, want it to contain %q", b.set, err, b.want)
			continue
		}
		var es Errors
		if !errors.As(err, &es) || !strings.HasPrefix(err.Error(), "--set "+b.set+":") {
			t.Errorf("--set %s: error %q does not start with the override", b.set, err)
		}
	}
}

// The hash covers what is trained, not how the file is written or named.
func TestHash(t *testing.T) {
	a := `name = "a"
[base.model]
preset = "albert-base"
num_layers = 2
[base.train]
steps = 10
lr = 0.001
warmup_steps = 1
`
	// Same content, other order, other name, comments, quoted and inline keys.
	b := `# reordered
name = "b"
base.train = { warmup_steps = 1, "lr" = 1e-3, steps = 10 }
[base.model]
num_layers = 2 # two
preset = "albert-base"
`
	pa, err := Parse("a.toml", []byte(a))
	if err != nil {
		t.Fatal(err)
	}
	pb, err := Parse("b.toml", []byte(b))
	if err != nil {
		t.Fatal(err)
	}
	ra, rb := mustPlan(t, pa, "").Runs[0], mustPlan(t, pb, "").Runs[0]
	if ra.Hash != rb.Hash || ra.ConfigJSON != rb.ConfigJSON {
		t.Errorf("hash depends on key order or name:\n%s\n%s", ra.ConfigJSON, rb.ConfigJSON)
	}
	if pa.ContentHash == pb.ContentHash {
		t.Error("different files share a content hash")
	}
	if len(ra.Hash) != 64 {
		t.Errorf("hash %q is not hex sha256", ra.Hash)
	}
	for _, set := range []string{"train.lr=0.002", "train.log_every=11", "seeds=2", "objective=nsp", "data.mask_prob=0.2", "model.hidden_dropout=0"} {
		r := mustPlan(t, pa, "", set).Runs[0]
		if r.Hash == ra.Hash {
			t.Errorf("--set %s does not change the hash", set)
		}
	}
	// The stored JSON parses back to the same config and hash.
	rc, err := ParseRunConfig(ra.ConfigJSON)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := rc.Hash(); h != ra.Hash {
		t.Error("config does not round-trip through its JSON")
	}
	if _, err := ParseRunConfig(`{"objective":"sop","extra":1}`); err == nil {
		t.Error("ParseRunConfig accepts unknown keys")
	}
	// A stable, pinned value: change it only with a reason (every stored run
	// would be trained again).
	if !strings.HasPrefix(ra.ConfigJSON, `{"data":{"corpus":"default",`) {
		t.Errorf("canonical JSON is not key-sorted: %s", ra.ConfigJSON)
	}
}

// Overriding hidden_size on a preset re-derives heads and FFN; a preset that
// departs from the rule (ALBERT-xlarge's 16 heads) keeps its value.
func TestPresetDerivedFields(t *testing.T) {
	src := func(preset string) string {
		return fmt.Sprintf("name = \"p\"\n[base.model]\npreset = %q\nhidden_size = 256\n", preset)
	}
	f, err := Parse("p.toml", []byte(src("albert-base")))
	if err != nil {
		t.Fatal(err)
	}
	m := mustPlan(t, f, "").Runs[0].Model
	if m.NumHeads != 4 || m.IntermediateSize != 1024 {
		t.Errorf("albert-base at H 256: heads %d FFN %d, want 4, 1024", m.NumHeads, m.IntermediateSize)
	}
	f, err = Parse("p.toml", []byte(src("albert-xlarge")))
	if err != nil {
		t.Fatal(err)
	}
	m = mustPlan(t, f, "").Runs[0].Model
	if m.NumHeads != 16 || m.IntermediateSize != 1024 {
		t.Errorf("albert-xlarge at H 256: heads %d FFN %d, want 16, 1024", m.NumHeads, m.IntermediateSize)
	}
}

func TestDuplicatesPlannedOnce(t *testing.T) {
	// num_hidden_groups = 1 and the default are the same config.
	src := `name = "d"
[base.model]
preset = "albert-base"
[grid]
model.num_hidden_groups = [1, 2]
[[zip]]
model.inner_group_num = [1, 1]
model.initializer_range = [0.02, 0.020]
`
	if _, err := Parse("d.toml", []byte(src)); err == nil || !strings.Contains(err.Error(), "tuple (model.inner_group_num=1, model.initializer_range=0.02) is listed twice") {
		t.Fatalf("duplicate zip tuples: %v", err)
	}
	src = `name = "d"
[grid]
model.preset = ["albert-base", "table3-e128-all"]
`
	f, err := Parse("d.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, f, "")
	if len(p.Runs) != 1 || p.Duplicates != 1 {
		t.Errorf("%d runs, %d duplicates; want 1, 1", len(p.Runs), p.Duplicates)
	}
}

func TestProfileSelection(t *testing.T) {
	f := loadAblation(t, "sharing")
	if _, err := f.Plan("tpu", nil); err == nil || !strings.Contains(err.Error(), `no profile "tpu" (profiles: paper, gpu, cpu)`) {
		t.Errorf("unknown profile: %v", err)
	}
	if name, _ := f.ResolveProfile(""); name != "cpu" {
		t.Errorf("default profile %q", name)
	}
}

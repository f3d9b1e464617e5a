package experiments

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// good is a small valid file the malformed cases are edits of.
const good = `name = "t"
default_profile = "cpu"

[base]
objective = "sop"
seeds = [1]

[base.model]
preset = "albert-base"

[grid]
model.embedding_size = [768, 128]
model.sharing = ["all", "none"]

[profiles.cpu.model]
vocab_size = 8000
hidden_size = 128
num_layers = 2
[profiles.cpu.grid]
model.embedding_size = [128, 32]
[profiles.cpu.data]
seq_len = 64
[profiles.cpu.train]
steps = 20
warmup_steps = 2
`

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGoodFileParses(t *testing.T) {
	f, err := Parse("good.toml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Axes(); strings.Join(got, ",") != "model.embedding_size,model.sharing" {
		t.Errorf("axes = %v", got)
	}
	if got := f.Profiles(); len(got) != 1 || got[0] != "cpu" {
		t.Errorf("profiles = %v", got)
	}
}

// Each malformed file fails with "file:line: key: …" on the right line, and
// `exp run` leaves the database untouched (not even created).
func TestMalformedFiles(t *testing.T) {
	cases := []struct {
		name, content string
		line          int
		key           string // must appear in the message
	}{
		{"syntax error", strings.Replace(good, `objective = "sop"`, `objective = "sop`, 1), 5, "objective"},
		{"syntax error no key", strings.Replace(good, "[grid]", "[grid", 1), 11, ""},
		{"unknown top key", good + "colour = \"red\"\n", 26, "colour"},
		{"unknown base key", strings.Replace(good, "seeds = [1]", "seeds = [1]\nbatch = 3", 1), 7, "base.batch"},
		{"unknown model key", strings.Replace(good, `preset = "albert-base"`, "preset = \"albert-base\"\nhiden_size = 64", 1), 10, "base.model.hiden_size"},
		{"unknown grid key", strings.Replace(good, "model.sharing = [", "model.shareing = [", 1), 13, "grid.model.shareing"},
		{"unknown profile key", strings.Replace(good, "steps = 20", "stepz = 20", 1), 24, "profiles.cpu.train.stepz"},
		{"wrong type", strings.Replace(good, "hidden_size = 128", `hidden_size = "128"`, 1), 17, "profiles.cpu.model.hidden_size"},
		{"wrong type float for int", strings.Replace(good, "steps = 20", "steps = 20.5", 1), 24, "profiles.cpu.train.steps"},
		{"wrong type in axis", strings.Replace(good, "[768, 128]", `[768, "128"]`, 1), 12, "grid.model.embedding_size"},
		{"bad enum sharing", strings.Replace(good, `["all", "none"]`, `["all", "nope"]`, 1), 13, "grid.model.sharing"},
		{"bad enum objective", strings.Replace(good, `objective = "sop"`, `objective = "mlm"`, 1), 5, "base.objective"},
		{"bad preset", strings.Replace(good, `"albert-base"`, `"albert-huge"`, 1), 9, "base.model.preset"},
		{"empty grid axis", strings.Replace(good, "[768, 128]", "[]", 1), 12, "grid.model.embedding_size"},
		{"empty seeds", strings.Replace(good, "seeds = [1]", "seeds = []", 1), 6, "base.seeds"},
		{"heads not dividing H", strings.Replace(good, "num_layers = 2", "num_layers = 2\nnum_heads = 3", 1), 19, "profiles.cpu.model.num_heads"},
		{"E <= 0 in a profile axis", strings.Replace(good, "[128, 32]", "[128, 0]", 1), 20, "embedding_size"},
		{"negative warm-up", strings.Replace(good, "warmup_steps = 2", "warmup_steps = -2", 1), 25, "profiles.cpu.train.warmup_steps"},
		{"data vocab differs from model", strings.Replace(good, "seq_len = 64", "seq_len = 64\nvocab_size = 9000", 1), 23, "profiles.cpu.data.vocab_size"},
		{"profile reshapes an axis", strings.Replace(good, "[128, 32]", "[128, 32, 16]", 1), 20, "profiles.cpu.grid.model.embedding_size"},
		{"swept key fixed in base", strings.Replace(good, `preset = "albert-base"`, "preset = \"albert-base\"\nsharing = \"all\"", 1), 10, "base.model.sharing"},
		{"duplicate axis value", strings.Replace(good, `["all", "none"]`, `["all", "all"]`, 1), 13, "grid.model.sharing"},
		{"sentence_head is derived", strings.Replace(good, `preset = "albert-base"`, "preset = \"albert-base\"\nsentence_head = false", 1), 10, "base.model.sentence_head"},
		{"default profile missing", strings.Replace(good, `default_profile = "cpu"`, `default_profile = "gpu"`, 1), 2, "default_profile"},
		{"missing name", strings.Replace(good, `name = "t"`, `# no name`, 1), 1, "name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, dir, "bad.toml", c.content)
			_, err := Load(path)
			if err == nil {
				t.Fatalf("no error for:\n%s", c.content)
			}
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %v (%T) is not an Errors", err, err)
			}
			first := es[0]
			want := path + ":" + strconv.Itoa(c.line) + ":"
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
			if first.Line != c.line {
				t.Errorf("line = %d, want %d (%v)", first.Line, c.line, err)
			}
			if c.key != "" && !strings.Contains(first.Error(), c.key) {
				t.Errorf("error %q does not name %q", err, c.key)
			}

			// exp run with a good file first and the bad one second: nothing
			// may be written, not even an empty database.
			db := filepath.Join(dir, "out", "exp.db")
			okPath := writeFile(t, dir, "ok.toml", good)
			calls := 0
			err = RunFiles(context.Background(), &strings.Builder{}, Request{
				Files:      []string{okPath, path},
				NewTrainer: func() (Trainer, error) { calls++; return nil, errors.New("unused") },
				Options:    Options{DB: db},
			})
			if err == nil {
				t.Fatal("RunFiles accepted a bad file")
			}
			if calls != 0 {
				t.Error("the trainer was built for a bad file")
			}
			if _, serr := os.Stat(db); !os.IsNotExist(serr) {
				t.Errorf("database %s exists after a bad file (stat: %v)", db, serr)
			}
			if _, serr := os.Stat(filepath.Dir(db)); !os.IsNotExist(serr) {
				t.Errorf("output directory created after a bad file")
			}
		})
	}
}

// All problems of a file are reported at once, in line order.
func TestAllProblemsReported(t *testing.T) {
	src := strings.Replace(good, "hidden_size = 128", `hidden_size = "x"`, 1)
	src = strings.Replace(src, "seeds = [1]", "seeds = [1]\nfoo = 1", 1)
	_, err := Parse("f.toml", []byte(src))
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 {
		t.Fatalf("want 2 problems, got %v", err)
	}
	if es[0].Line != 7 || es[1].Line != 18 {
		t.Errorf("lines %d, %d; want 7, 18", es[0].Line, es[1].Line)
	}
}

// Key positions come from the decoder; this pins them for nested, dotted,
// quoted and [[zip]] keys.
func TestKeyPositions(t *testing.T) {
	src := `name = "t"
[base.model]
preset = "albert-base"
[grid]
"model.num_layers" = [1, 2]
[[zip]]
model.embedding_size = [64, 128]
model.sharing = ["all", "bogus"]
`
	_, err := Parse("k.toml", []byte(src))
	if err == nil || !strings.HasPrefix(err.Error(), "k.toml:8: zip.model.sharing:") {
		t.Fatalf("got %v", err)
	}
	src2 := strings.Replace(src, `"bogus"`, `"none"`, 1) + "[[zip]]\n"
	_, err = Parse("k.toml", []byte(src2))
	if err == nil || !strings.HasPrefix(err.Error(), "k.toml:9: zip: empty [[zip]] group") {
		t.Fatalf("got %v", err)
	}
	src3 := strings.Replace(src, `["all", "bogus"]`, `["all"]`, 1)
	_, err = Parse("k.toml", []byte(src3))
	if err == nil || !strings.HasPrefix(err.Error(), "k.toml:8: zip.model.sharing: has 1 values") {
		t.Fatalf("got %v", err)
	}
}

func TestIncludes(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "common/p.toml", `
[base]
seeds = [7]
[profiles.cpu.model]
vocab_size = 8000
hidden_size = 128
num_layers = 4
[profiles.cpu.train]
steps = 30
warmup_steps = 1
`)
	main := writeFile(t, dir, "x.toml", `name = "x"
include = ["common/p.toml"]
[base.model]
preset = "albert-base"
num_layers = 3 # the file beats the included profile
[grid]
model.embedding_size = [768, 128]
[profiles.cpu.grid]
model.embedding_size = [128, 32]
`)
	f, err := Load(main)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.Plan("cpu", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Runs) != 2 {
		t.Fatalf("%d runs", len(p.Runs))
	}
	r := p.Runs[1]
	if r.Seed != 7 || r.Model.NumLayers != 3 || r.Model.HiddenSize != 128 || r.Model.EmbeddingSize != 32 || r.Train.Steps != 30 {
		t.Errorf("run = seed %d L %d H %d E %d steps %d", r.Seed, r.Model.NumLayers, r.Model.HiddenSize, r.Model.EmbeddingSize, r.Train.Steps)
	}
	// The included file is part of the experiment's content hash.
	before := f.ContentHash
	writeFile(t, dir, "common/p.toml", "[base]\nseeds = [8]\n[profiles.cpu.model]\nvocab_size = 8000\nhidden_size = 128\n[profiles.cpu.train]\nsteps = 30\nwarmup_steps = 1\n")
	g, err := Load(main)
	if err != nil {
		t.Fatal(err)
	}
	if g.ContentHash == before {
		t.Error("content hash ignores the included file")
	}
	// Problems inside an included file are reported with its own path.
	writeFile(t, dir, "common/p.toml", "[base]\nseeds = [8]\nname = \"no\"\n")
	_, err = Load(main)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "common/p.toml")+":3:") {
		t.Errorf("got %v", err)
	}
	writeFile(t, dir, "y.toml", "name = \"y\"\ninclude = [\"missing.toml\"]\n")
	if _, err := Load(filepath.Join(dir, "y.toml")); err == nil || !strings.Contains(err.Error(), "y.toml:2: include:") {
		t.Errorf("missing include: %v", err)
	}
}

func TestSchemaExampleIsValid(t *testing.T) {
	f, err := Parse("example.toml", []byte(SchemaExample))
	if err != nil {
		t.Fatal(err)
	}
	for _, prof := range []string{"paper", "cpu"} {
		p, err := f.Plan(prof, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Runs) != 8 {
			t.Errorf("%s: %d runs, want 8", prof, len(p.Runs))
		}
	}
}

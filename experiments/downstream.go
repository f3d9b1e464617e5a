package experiments

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/reproml/albert/data"
	"github.com/reproml/albert/finetune"
	"github.com/reproml/albert/finetune/tasks"
	"github.com/reproml/albert/model"
	"github.com/reproml/albert/results"
)

// An experiment file's [downstream] table (and [profiles.NAME.downstream],
// which overrides it key by key) declares the fine-tuning of every
// pretraining run the file plans:
//
//	[downstream]
//	tasks = ["all"]      # task names (package finetune/tasks), or "all": every task under the data root
//	seeds = [1, 2, 3]    # fine-tuning seeds (or repeats = 3)
//	random_init = true   # also fine-tune a randomly initialised encoder of each architecture
//	profile = "cpu"      # fine-tuning hyperparameters: "paper" (Table 14) or "cpu"; default: the run's own profile if it is one, else cpu
//	[downstream.finetune]
//	steps = 200          # overrides of the fine-tuning configuration, for every task
type downSpec struct {
	tasks      []string
	seeds      []int64
	randomInit *bool
	profile    string
	sets       []downSet
	src        source
}

type downSet struct {
	key   string
	value any
	src   source
}

// DataDirEnv names the environment variable for the downstream data root.
const DataDirEnv = "ALBERT_DATA"

// DefaultDataDir is the downstream data root: $ALBERT_DATA, else out/data.
func DefaultDataDir() string {
	if d := os.Getenv(DataDirEnv); d != "" {
		return d
	}
	return "out/data"
}

// finetuneFields are the keys of [downstream.finetune]: finetune.Config's.
var finetuneFields = func() map[string]reflect.StructField {
	m := map[string]reflect.StructField{}
	t := reflect.TypeFor[finetune.Config]()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		m[strings.Split(f.Tag.Get("toml"), ",")[0]] = f
	}
	return m
}()

func finetuneKeys() string {
	ks := make([]string, 0, len(finetuneFields))
	for k := range finetuneFields {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// downstreamKey handles a key of [downstream] or [profiles.NAME.downstream];
// k[at] is the key inside it.
func (p *parser) downstreamKey(l *layer, k toml.Key, at int) {
	v := p.value(k)
	if p.included {
		p.fail(k, "not allowed in an included file: [downstream] belongs to the experiment file")
		return
	}
	if l.down == nil {
		l.down = &downSpec{src: p.source(k)}
	}
	d := l.down
	if len(k) == at {
		p.wantTable(k, v)
		return
	}
	switch k[at] {
	case "tasks":
		arr, ok := v.([]any)
		if !ok || len(arr) == 0 {
			p.fail(k, "want a non-empty list of task names or [\"all\"], got %s %s", tomlTypeName(v), show(v))
			return
		}
		d.tasks = nil
		for _, x := range arr {
			s, ok := x.(string)
			if !ok {
				p.fail(k, "want task names (strings), got %s %s", tomlTypeName(x), show(x))
				return
			}
			if _, known := tasks.Lookup(s); !known && s != "all" {
				var names []string
				for _, t := range tasks.All() {
					names = append(names, t.Name)
				}
				p.fail(k, "unknown task %q (known: all, %s)", s, strings.Join(names, ", "))
				return
			}
			d.tasks = append(d.tasks, s)
		}
	case "seeds", "repeats":
		seeds, err := parseSeeds(k[at], v)
		if err != nil {
			p.fail(k, "%v", err)
			return
		}
		d.seeds = seeds
	case "random_init":
		b, ok := v.(bool)
		if !ok {
			p.fail(k, "want a boolean, got %s %s", tomlTypeName(v), show(v))
			return
		}
		d.randomInit = &b
	case "profile":
		s, ok := v.(string)
		if !ok || (s != "paper" && s != "cpu") {
			p.fail(k, "want \"paper\" or \"cpu\", got %s %s", tomlTypeName(v), show(v))
			return
		}
		d.profile = s
	case "finetune":
		if len(k) == at+1 {
			p.wantTable(k, v)
			return
		}
		key := k[at+1]
		f, ok := finetuneFields[key]
		if !ok || len(k) > at+2 {
			p.fail(k, "unknown fine-tuning key (known: %s)", finetuneKeys())
			return
		}
		fd := field{path: "finetune." + key, kind: f.Type.Kind()}
		val, err := fd.convert(v)
		if err != nil {
			p.fail(k, "%v", err)
			return
		}
		d.sets = append(d.sets, downSet{key: key, value: val, src: p.source(k)})
	default:
		p.fail(k, "unknown key (want tasks, seeds, repeats, random_init, profile or [downstream.finetune])")
	}
}

// downFor is the [downstream] declaration under layer l: the base's, with
// the profile's keys on top; nil when the file declares none.
func (f *File) downFor(l *layer) *downSpec {
	b := f.base.down
	var pr *downSpec
	if l != nil {
		pr = l.down
	}
	if b == nil && pr == nil {
		return nil
	}
	out := downSpec{tasks: []string{"all"}, seeds: []int64{1, 2, 3}}
	for _, d := range []*downSpec{b, pr} {
		if d == nil {
			continue
		}
		if d.tasks != nil {
			out.tasks = d.tasks
		}
		if d.seeds != nil {
			out.seeds = d.seeds
		}
		if d.randomInit != nil {
			out.randomInit = d.randomInit
		}
		if d.profile != "" {
			out.profile = d.profile
		}
		out.sets = append(out.sets, d.sets...)
		out.src = d.src
	}
	return &out
}

// FinetuneRun is what makes a Run a fine-tuning run.
type FinetuneRun struct {
	Task      tasks.Task
	Init      string // results.InitPretrained or results.InitRandom
	Pretrain  string // config hash of the pretraining run ("" for a random init)
	ModelHash string // hash of the architecture and data configuration (seed excluded)
	Config    finetune.Config
	DataDir   string // the data root the task was found under
}

// FinetuneConfig is the hashed configuration of a fine-tuning run: the
// pretraining run (its hash; for a random init its architecture and data),
// the task, the fine-tuning configuration and the seed.
type FinetuneConfig struct {
	Kind     string          `json:"kind"` // "finetune"
	Init     string          `json:"init"`
	Pretrain string          `json:"pretrain"`
	Task     string          `json:"task"`
	Seed     int64           `json:"seed"`
	Finetune finetune.Config `json:"finetune"`
	Model    model.Config    `json:"model"`
	Data     data.Config     `json:"data"`
	// SpanHead names the SQuAD 2.0 head ("v2": the official XLNet-style
	// one) so that runs of it never share a hash with runs of the earlier
	// BERT-recipe head; empty, and omitted, for every other task.
	SpanHead string `json:"span_head,omitempty"`
}

// modelHash identifies an architecture and its tokenizer/data, seed excluded.
func modelHash(m model.Config, d data.Config) string {
	b, _ := json.Marshal(struct {
		Model model.Config `json:"model"`
		Data  data.Config  `json:"data"`
	}{m, d})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// DownstreamTasks resolves a declaration's task list against the data root:
// the tasks whose files are all present, and a message naming the missing
// path of each declared task that is not. "all" is every official task
// present, or the stand-ins when none is.
func DownstreamTasks(names []string, root string) (present []tasks.Task, skipped []string) {
	found := map[string]tasks.Found{}
	for _, f := range tasks.Discover(root) {
		found[f.Task.Name] = f
	}
	var want []tasks.Task
	if len(names) == 1 && names[0] == "all" {
		official := false
		for _, t := range tasks.All() {
			if !t.StandIn && found[t.Name].Present() {
				want, official = append(want, t), true
			}
		}
		if !official {
			for _, t := range tasks.All() {
				if t.StandIn {
					want = append(want, t)
				}
			}
		}
	} else {
		for _, n := range names {
			t, _ := tasks.Lookup(n)
			want = append(want, t)
		}
	}
	for _, t := range want {
		if f := found[t.Name]; f.Present() || (t.StandIn && len(names) == 1 && names[0] == "all") {
			present = append(present, t)
			continue
		}
		skipped = append(skipped, fmt.Sprintf("%s: skipped, %s is absent", t.Name, found[t.Name].Missing))
	}
	return present, skipped
}

// PlanDownstream adds the fine-tuning runs the file declares to p, a plan of
// the same file: for every pretraining run, every task present under root
// and every fine-tuning seed, one run from the pretrained checkpoint and,
// with random_init, one from a random init of the same architecture (one per
// architecture, not per pretraining seed). It returns a line per declared
// task that is absent (naming the path looked for). Stand-ins of "all" are
// planned even when not built yet: Execute builds them.
func (f *File) PlanDownstream(p *Plan, root string) (skipped []string, err error) {
	_, l, err := f.layerFor(p.Profile)
	if err != nil {
		return nil, err
	}
	d := f.downFor(l)
	if d == nil {
		return nil, nil
	}
	d.sets = append(d.sets, p.downSets...) // --set downstream.finetune.KEY=V, after the file's
	present, skipped := DownstreamTasks(d.tasks, root)
	profile := d.profile
	if profile == "" {
		profile = "cpu"
		if p.Profile == "paper" {
			profile = "paper"
		}
	}
	seen := map[string]bool{}
	for _, r := range p.Runs {
		seen[r.Hash] = true
	}
	pre := append([]Run(nil), p.Runs...)
	for _, t := range present {
		cfg, err := finetune.Profile(profile, t.Name, string(t.Kind))
		if err != nil {
			return nil, err
		}
		for _, s := range d.sets {
			rv := reflect.ValueOf(&cfg).Elem().FieldByIndex(finetuneFields[s.key].Index)
			switch x := s.value.(type) {
			case int:
				rv.SetInt(int64(x))
			case float64:
				rv.SetFloat(x)
			case bool:
				rv.SetBool(x)
			case string:
				rv.SetString(x)
			}
		}
		if cfg.Pooling == finetune.PoolCLS {
			cfg.Pooling = "" // the official head hashes as it did before the key existed
		}
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("%s: [downstream] of profile %s, task %s: %w", d.src, p.Profile, t.Name, err)
		}
		for _, seed := range d.seeds {
			for _, r := range pre {
				if r.Finetune != nil {
					continue
				}
				inits := []string{results.InitPretrained}
				if d.randomInit != nil && *d.randomInit {
					inits = append(inits, results.InitRandom)
				}
				for _, init := range inits {
					fr, err := finetuneRun(r, t, cfg, seed, root, init)
					if err != nil {
						return nil, err
					}
					add(p, seen, fr)
				}
			}
		}
	}
	return skipped, nil
}

// add appends r to p unless a run of its hash is planned already.
func add(p *Plan, seen map[string]bool, r Run) {
	if seen[r.Hash] {
		p.Duplicates++
		return
	}
	seen[r.Hash] = true
	r.Index = len(p.Runs)
	p.Runs = append(p.Runs, r)
}

// finetuneRun is the fine-tuning run of pretraining run pre on task t.
func finetuneRun(pre Run, t tasks.Task, c finetune.Config, seed int64, root, init string) (Run, error) {
	// The pretraining heads are dropped: models that differ only in having a
	// sentence head (objective none vs nsp/sop) are one architecture.
	enc := pre.Model
	enc.SentenceHead = false
	fc := FinetuneConfig{Kind: "finetune", Init: init, Task: t.Name, Seed: seed, Finetune: c, Model: enc, Data: pre.Data}
	if h := finetune.SpanHeadOf(t); h == finetune.SpanHeadV2 {
		fc.SpanHead = string(h)
	}
	label := fmt.Sprintf("%s %s ft_seed=%d", t.Name, init, seed)
	if init == results.InitPretrained {
		fc.Pretrain = pre.Hash
		label = fmt.Sprintf("%s from %s (%s) ft_seed=%d", t.Name, pre.Label, pre.Hash[:8], seed)
	} else {
		label = fmt.Sprintf("%s random-init %s ft_seed=%d", t.Name, strings.TrimSuffix(pre.Label, fmt.Sprintf(" seed=%d", pre.Seed)), seed)
	}
	b, err := json.Marshal(fc)
	if err != nil {
		return Run{}, fmt.Errorf("experiments: encode fine-tuning config: %w", err)
	}
	js, err := canonical(b)
	if err != nil {
		return Run{}, err
	}
	r := pre
	r.Label, r.Seed, r.Point = label, seed, pre.Point
	r.Train = c.Optimizer()
	r.ConfigJSON, r.Hash = js, hashString(js)
	r.Finetune = &FinetuneRun{Task: t, Init: init, Pretrain: fc.Pretrain, ModelHash: modelHash(enc, pre.Data), Config: c, DataDir: root}
	return r, nil
}

// canonical re-encodes JSON with sorted keys (see RunConfig.CanonicalJSON).
func canonical(b []byte) (string, error) {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("experiments: encode config: %w", err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("experiments: encode config: %w", err)
	}
	return string(out), nil
}

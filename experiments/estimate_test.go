package experiments

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/reproml/albert/bench"
)

var ablationFiles = []string{"sharing", "embedding", "sentence", "xlarge", "transitions", "depth", "width", "dropout", "downstream"}

// Every ablation file has a gpu profile whose runs validate (Plan validates
// every run) and are the paper profile's architectures at seq 512 and V
// 30000; its dry run prints an estimated time for every run and a total,
// from the table's CUDA entries.
func TestGPUProfileDryRunEstimatesEveryRun(t *testing.T) {
	timeRE := regexp.MustCompile(`\s(\d+h\d\dm|\d+m\d\ds|\d+s|[\d.]+y)\s*$`)
	for _, name := range ablationFiles {
		t.Run(name, func(t *testing.T) {
			f := loadAblation(t, name)
			gpu, paper := mustPlan(t, f, "gpu"), mustPlan(t, f, "paper")
			if len(gpu.Runs) == 0 || len(gpu.Runs) != len(paper.Runs) {
				t.Fatalf("gpu: %d runs, paper: %d", len(gpu.Runs), len(paper.Runs))
			}
			for i, r := range gpu.Runs {
				if r.Model != paper.Runs[i].Model || r.Data.SeqLen != 512 || r.Model.VocabSize != 30000 {
					t.Errorf("run %d (%s): model %+v seq %d, want the paper's %+v at 512", i, r.Label, r.Model, r.Data.SeqLen, paper.Runs[i].Model)
				}
				if r.Train.BatchSize%r.Train.GradAccum != 0 {
					t.Errorf("run %d: batch %d, grad_accum %d", i, r.Train.BatchSize, r.Train.GradAccum)
				}
			}
			var b strings.Builder
			if err := WritePlan(&b, gpu); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			for _, r := range gpu.Runs {
				line := ""
				for _, l := range strings.Split(out, "\n") {
					if strings.Contains(l, r.Hash[:12]) {
						line = l
					}
				}
				if !timeRE.MatchString(line) {
					t.Errorf("run %s: no estimated time in %q", r.Label, line)
				}
			}
			if !strings.Contains(out, "total estimated time, one device (cuda): ") || !strings.Contains(out, "measured by: exp bench --device cuda") {
				t.Errorf("no total from a measured CUDA rate:\n%s", out)
			}
		})
	}
}

// The exp run entries of bench/throughput.toml hold the arithmetic of the
// runs they timed under today's count: recounted from their files, so a
// change of model.Config.TrainStepFLOPs (or of a profile) fails here until
// the table is recounted — else the rates would silently drift.
func TestThroughputTableCounts(t *testing.T) {
	table, err := bench.Throughputs()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range table {
		if e.File == "" {
			continue
		}
		n++
		f, err := Load(filepath.Join("..", e.File))
		if err != nil {
			t.Fatal(err)
		}
		var flop float64
		steps := 0
		for _, r := range mustPlan(t, f, e.Profile).Runs {
			if strings.Contains(r.Label, e.RunsMatching) {
				flop += r.FLOPs()
				steps += r.Train.Steps
			}
		}
		if math.Abs(flop/e.Flop-1) > 1e-3 || steps != e.Steps {
			t.Errorf("%s: counted %.5g FLOP in %d steps, the table says %.5g in %d", e.What, flop, steps, e.Flop, e.Steps)
		}
	}
	if n == 0 {
		t.Fatal("no exp run entries")
	}
}

// The sharing.toml measurement predicts its own time by construction; the
// others' predictions from it alone are checked against their measured
// times (leave-one-out over the exp run entries), so a wrong count or a
// mislabelled entry shows as a bad prediction. Measured: xlarge's H 256
// runs 17m18s, sentence 55m27s.
func TestThroughputPredictsOtherMeasuredRuns(t *testing.T) {
	table, err := bench.Throughputs()
	if err != nil {
		t.Fatal(err)
	}
	var runs []bench.Throughput
	for _, e := range table {
		if e.File != "" && e.Device == "cpu" {
			runs = append(runs, e)
		}
	}
	for i, e := range runs {
		others := append(append([]bench.Throughput(nil), runs[:i]...), runs[i+1:]...)
		est, err := bench.EstimateTime(others, "cpu", "fp32", e.Flop, e.Steps)
		if err != nil {
			t.Fatal(err)
		}
		if rel := est.Seconds/e.Seconds - 1; math.Abs(rel) > 0.25 {
			t.Errorf("%s: predicted %.0f s from %q, measured %.0f s (%+.0f%%)", e.What, est.Seconds, est.From.What, e.Seconds, 100*rel)
		} else {
			t.Logf("%s: predicted %.0f s, measured %.0f s (%+.0f%%)", e.File, est.Seconds, e.Seconds, 100*rel)
		}
	}
}

// train.precision: fp32 (or unset) hashes as before the setting existed;
// another precision is another run; an unknown one is refused at plan
// time; and Execute refuses, before the database exists, a precision the
// trainer cannot honour on its device (tf32 on the CPU).
func TestPrecisionSetting(t *testing.T) {
	f := loadAblation(t, "sharing")
	def, fp32 := mustPlan(t, f, "cpu"), mustPlan(t, f, "cpu", "train.precision=fp32")
	bf16 := mustPlan(t, f, "cpu", "train.precision=bf16")
	for i := range def.Runs {
		if def.Runs[i].Hash != fp32.Runs[i].Hash || strings.Contains(def.Runs[i].ConfigJSON, "precision") {
			t.Fatalf("run %d: fp32 hash %s vs default %s; json %s", i, fp32.Runs[i].Hash, def.Runs[i].Hash, def.Runs[i].ConfigJSON)
		}
		if bf16.Runs[i].Hash == def.Runs[i].Hash || !strings.Contains(bf16.Runs[i].ConfigJSON, `"precision":"bf16"`) {
			t.Fatalf("run %d: bf16 config %s", i, bf16.Runs[i].ConfigJSON)
		}
	}
	if _, err := f.Plan("cpu", []string{"train.precision=fp16"}); err == nil || !strings.Contains(err.Error(), "precision must be one of") {
		t.Fatalf("fp16: %v", err)
	}
	for prec, want := range map[string]string{"tf32": "CUDA matmul mode"} {
		db := filepath.Join(t.TempDir(), "exp.db")
		p := mustPlan(t, f, "cpu", "train.precision="+prec)
		_, err := Execute(context.Background(), p, Options{DB: db, Devices: []string{"cpu"}, Trainer: &fake{}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s on cpu: %v, want an error naming %q", prec, err, want)
		}
		if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s on cpu: the database was created (%v)", prec, err)
		}
	}
}

// On the gpu profile as on the others, a configuration two files share is
// one run: Table 5's SOP row is Table 4's ALBERT-base row, Table 3's are
// Table 4's, and depth's all-shared L 24 is transitions' E 128 run (both
// files set grad_accum 8 for it).
func TestGPUProfileSharesRunsAcrossFiles(t *testing.T) {
	hashes := func(file string) map[string]string {
		m := map[string]string{}
		for _, r := range mustPlan(t, loadAblation(t, file), "gpu").Runs {
			m[r.Label] = r.Hash
		}
		return m
	}
	emb, sh, sen, depth, tr := hashes("embedding"), hashes("sharing"), hashes("sentence"), hashes("depth"), hashes("transitions")
	for i, p := range [][2]string{
		{emb["sharing=all E=128 seed=1"], sh["E=128 sharing=all seed=1"]},
		{emb["sharing=none E=768 seed=1"], sh["E=768 sharing=none seed=1"]},
		{sh["E=128 sharing=all seed=1"], sen["objective=sop seed=1"]},
		{depth["L=24 seed=1"], tr["E=128 sharing=all seed=1"]},
	} {
		if p[0] == "" || p[0] != p[1] {
			t.Errorf("pair %d: %q vs %q", i, p[0], p[1])
		}
	}
}

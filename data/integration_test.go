package data

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// realCacheRoot is the module's out/cache, filled by `exp data fetch`.
const realCacheRoot = "../out/cache"

func realDataset(t *testing.T, obj Objective) *Dataset {
	t.Helper()
	if _, err := os.Stat(CorpusPath(realCacheRoot)); err != nil {
		t.Skip("default corpus not built: run `exp data fetch` (CI does it before the tests)")
	}
	cfg := DefaultConfig()
	cfg.VocabSize = 8000
	cfg.SeqLen = 128
	if _, err := exec.LookPath("spm_train"); err != nil {
		matches, _ := filepath.Glob(filepath.Join(realCacheRoot, "spm", "*-v8000", "spm.model"))
		if len(matches) == 0 {
			t.Skip("no cached 8000-piece model and no spm_train: run `exp data fetch`")
		}
	}
	start := time.Now()
	d, err := Prepare(cfg, obj, realCacheRoot)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Prepare (cache hit %v) took %v", d.info.cached, time.Since(start))
	return d
}

func TestRealCorpus(t *testing.T) {
	d := realDataset(t, ObjectiveSOP)
	st := d.Stats()
	if st.TrainDocuments+st.HeldOutDocuments != 371 || st.HeldOutDocuments != 24 {
		t.Errorf("documents %d + %d, want 347 + 24", st.TrainDocuments, st.HeldOutDocuments)
	}
	if st.VocabSize != 8000 || st.SkippedSents != 0 {
		t.Errorf("vocab %d, skipped sentences %d", st.VocabSize, st.SkippedSents)
	}
	// 128 tokens: round(0.15·len) ≤ 19 < cap 20, so ~15% is masked.
	if math.Abs(st.MaskedFraction-0.15) > 0.01 {
		t.Errorf("masked fraction %.4f", st.MaskedFraction)
	}
	if math.Abs(st.ShortTargetFraction-0.1) > 0.02 {
		t.Errorf("short fraction %.3f", st.ShortTargetFraction)
	}
	for n, want := range []float64{6.0 / 11, 3.0 / 11, 2.0 / 11} {
		if math.Abs(st.NGramSampled[n]-want) > 0.02 || math.Abs(st.NGramHistogram[n]-want) > 0.06 {
			t.Errorf("n = %d: sampled %.3f masked %.3f, want %.3f", n+1, st.NGramSampled[n], st.NGramHistogram[n], want)
		}
	}
	if !st.SOPExactSwaps || math.Abs(st.Labels[ObjectiveSOP]-0.5) > 0.03 || math.Abs(st.Labels[ObjectiveNSP]-0.5) > 0.03 {
		t.Errorf("labels %v, exact swaps %v", st.Labels, st.SOPExactSwaps)
	}
	es, err := d.EvalSets(128)
	if err != nil || len(es.SOP) != 8 {
		t.Fatalf("eval sets: %v, %d batches", err, len(es.SOP))
	}
}

// TestRealTokenizerMatchesSPMEncode compares the Go encoder with spm_encode
// on held-out sentences (lowercased, as Prepare feeds them).
func TestRealTokenizerMatchesSPMEncode(t *testing.T) {
	d := realDataset(t, ObjectiveNone)
	if _, err := exec.LookPath("spm_encode"); err != nil {
		t.Skip("spm_encode not installed (apt-get install sentencepiece): cannot compare with the reference encoder")
	}
	heldPath := filepath.Join(realCacheRoot, "corpus", "heldout.txt")
	f, err := os.Open(heldPath)
	if err != nil {
		t.Skipf("%v (run `exp data fetch`)", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() && len(lines) < 1500 {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			lines = append(lines, strings.ToLower(s))
		}
	}
	cmd := exec.Command("spm_encode", "--model="+d.info.modelPath, "--output_format=id")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("spm_encode: %v: %s", err, errb.String())
	}
	rows := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(rows) != len(lines) {
		t.Fatalf("%d rows for %d lines", len(rows), len(lines))
	}
	bad := 0
	for i, line := range lines {
		var want []int
		for _, f := range strings.Fields(rows[i]) {
			id, _ := strconv.Atoi(f)
			want = append(want, id)
		}
		if got := d.tok.Encode(line); fmt.Sprint(got) != fmt.Sprint(want) {
			bad++
			if bad <= 3 {
				t.Errorf("line %d %q:\n go  %v\n spm %v", i, line, got, want)
			}
		}
	}
	t.Logf("%d/%d held-out sentences encode identically", len(lines)-bad, len(lines))
	if bad > 0 {
		t.Errorf("%d of %d lines differ", bad, len(lines))
	}
}

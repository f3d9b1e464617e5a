package tokenizer

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// synthText writes n lines of pseudo-English with punctuation, digits and
// some non-ASCII characters that NFKC rewrites.
func synthText(r *rand.Rand, n int) []string {
	syll := []string{"ka", "lo", "ri", "men", "tus", "an", "the", "of", "ship", "wha", "le", "ing", "ed", "s", "qu", "ex", "é", "ﬁ", "Ａ", "ö", "ß"}
	punct := []string{",", ".", ";", ":", "!", "?", " (", ") ", " \"", "\" ", " – ", "-", " £", " €", "—", "’", "  ", "\t"}
	lines := make([]string, n)
	for i := range lines {
		var b strings.Builder
		words := 3 + r.IntN(25)
		for w := 0; w < words; w++ {
			if w > 0 {
				b.WriteByte(' ')
			}
			for s := 0; s < 1+r.IntN(3); s++ {
				b.WriteString(syll[min(r.IntN(len(syll)), r.IntN(len(syll)))])
			}
			switch x := r.IntN(20); {
			case x == 0:
				b.WriteString(strconv.Itoa(r.IntN(2000)))
			case x < 4:
				b.WriteString(punct[r.IntN(len(punct))])
			}
		}
		lines[i] = b.String()
	}
	return lines
}

// trainSmall trains a small model in a temp dir; it skips without spm_train.
func trainSmall(t testing.TB, lines []string, vocab int) (*Model, string) {
	t.Helper()
	if _, err := exec.LookPath("spm_train"); err != nil {
		t.Skip("spm_train not installed (apt-get install sentencepiece); skipping tokenizer training test")
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "train.txt")
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Train(in, filepath.Join(dir, "spm"), vocab)
	if err != nil {
		t.Fatal(err)
	}
	return m, filepath.Join(dir, "spm.model")
}

func spmEncode(t *testing.T, model string, lines []string) [][]int {
	t.Helper()
	cmd := exec.Command("spm_encode", "--model="+model, "--output_format=id")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("spm_encode: %v: %s", err, errb.String())
	}
	rows := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(rows) != len(lines) {
		t.Fatalf("spm_encode returned %d lines for %d", len(rows), len(lines))
	}
	res := make([][]int, len(rows))
	for i, row := range rows {
		for _, f := range strings.Fields(row) {
			id, err := strconv.Atoi(f)
			if err != nil {
				t.Fatal(err)
			}
			res[i] = append(res[i], id)
		}
	}
	return res
}

func TestEncodeMatchesSPMEncode(t *testing.T) {
	if _, err := exec.LookPath("spm_encode"); err != nil {
		t.Skip("spm_encode not installed (apt-get install sentencepiece); cannot compare with the reference encoder")
	}
	r := rand.New(rand.NewPCG(1, 2))
	m, path := trainSmall(t, synthText(r, 3000), 600)
	held := synthText(rand.New(rand.NewPCG(3, 4)), 400)
	held = append(held, "", "   ", "x", "\u00a0lead\u3000ing  spaces\t", "ＦＵＬＬ　ｗｉｄｔｈ ① ㍻ ﬃ", "control\x01char\x7f", "zero\u200bwidth", "unknown 漢字 ☃ 🐋 runs")
	want := spmEncode(t, path, held)
	for i, line := range held {
		got := m.Encode(line)
		if fmt.Sprint(got) != fmt.Sprint(want[i]) && !(len(got) == 0 && len(want[i]) == 0) {
			t.Errorf("line %d %q:\n go  %v\n spm %v\n norm %q", i, line, got, want[i], m.Normalize(line))
		}
	}
}

func TestSpecialIDs(t *testing.T) {
	m, _ := trainSmall(t, synthText(rand.New(rand.NewPCG(1, 2)), 1500), 300)
	for piece, id := range map[string]int{PadPiece: 0, UnkPiece: 1, CLSPiece: 2, SEPPiece: 3, MaskPiece: 4} {
		if got, ok := m.ID(piece); !ok || got != id {
			t.Errorf("%s: id %d (found %v), want %d", piece, got, ok, id)
		}
	}
	if m.Pieces[2].Type != Control || m.Pieces[0].Type != Control {
		t.Errorf("[CLS] type %d, <pad> type %d, want control", m.Pieces[2].Type, m.Pieces[0].Type)
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("not a model"), {0x0a, 0xff, 0x01}} {
		if _, err := Parse(b); err == nil {
			t.Errorf("Parse(%q) succeeded", b)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.model")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

func TestFingerprintIgnoresTrainerPaths(t *testing.T) {
	lines := synthText(rand.New(rand.NewPCG(5, 6)), 1500)
	m1, _ := trainSmall(t, lines, 300)
	m2, _ := trainSmall(t, lines, 300)
	if m1.Fingerprint() != m2.Fingerprint() {
		t.Error("two trainings of the same text in different folders have different fingerprints")
	}
	m3, _ := trainSmall(t, lines, 320)
	if m1.Fingerprint() == m3.Fingerprint() {
		t.Error("different vocabularies share a fingerprint")
	}
}

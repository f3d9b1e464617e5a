package experiments

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// tree lists the files under dir, relative, sorted.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return strings.Join(out, " ")
}

// A fresh attempt moves the top level of a run folder to attempt-N (N: the
// attempt it belonged to) and starts empty; a resume of the same attempt
// keeps it; a resume whose top level belongs to an earlier attempt (a retry
// that died before its folder was prepared) is moved too.
func TestPrepareDirKeepsEarlierAttempts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hash")
	if moved, err := prepareDir(dir, 1, false); err != nil || moved {
		t.Fatalf("no folder yet: %v %v", moved, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatal("attempt 1 made the folder; the trainer does")
	}
	write := func(names ...string) {
		os.MkdirAll(dir, 0o755)
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("checkpoint.json", "step-00000010.pt", "step-00000020.pt")
	if moved, err := prepareDir(dir, 1, true); err != nil || moved || tree(t, dir) != "checkpoint.json step-00000010.pt step-00000020.pt" {
		t.Fatalf("resume of attempt 1 changed the folder: %v %v %s", moved, err, tree(t, dir))
	}
	if moved, err := prepareDir(dir, 2, false); err != nil || !moved {
		t.Fatalf("retry: %v %v", moved, err)
	}
	if got := tree(t, dir); got != "attempt attempt-1/checkpoint.json attempt-1/step-00000010.pt attempt-1/step-00000020.pt" {
		t.Fatalf("after retry: %s", got)
	}
	write("checkpoint.json", "step-00000010.pt")
	if moved, err := prepareDir(dir, 2, true); err != nil || moved {
		t.Fatalf("resume of attempt 2: %v %v", moved, err)
	}
	// Attempt 3's claim committed but its process died before moving the
	// folder: the resume finds attempt 2's files and moves them.
	if moved, err := prepareDir(dir, 3, true); err != nil || !moved {
		t.Fatalf("resume into a folder of attempt 2: %v %v", moved, err)
	}
	if got := tree(t, dir); !strings.Contains(got, "attempt-2/checkpoint.json attempt-2/step-00000010.pt") || strings.Contains(got, " checkpoint.json") {
		t.Fatalf("after attempt 3: %s", got)
	}
	if raw, _ := os.ReadFile(filepath.Join(dir, attemptFile)); string(raw) != "3\n" {
		t.Errorf("attempt file %q", raw)
	}

	// A folder without an attempt file that a new database's attempt 1
	// finds (a runs folder reused): kept, never overwriting attempt-1.
	dir = filepath.Join(t.TempDir(), "hash")
	write("checkpoint.json", "step-00000005.pt")
	os.MkdirAll(filepath.Join(dir, "attempt-1"), 0o755)
	os.WriteFile(filepath.Join(dir, "attempt-1", "checkpoint.json"), []byte("old"), 0o644)
	if moved, err := prepareDir(dir, 1, false); err != nil || !moved {
		t.Fatalf("stale folder: %v %v", moved, err)
	}
	if got := tree(t, dir); got != "attempt attempt-1.2/checkpoint.json attempt-1.2/step-00000005.pt attempt-1/checkpoint.json" {
		t.Fatalf("stale folder: %s", got)
	}
	if raw, _ := os.ReadFile(filepath.Join(dir, "attempt-1", "checkpoint.json")); string(raw) != "old" {
		t.Error("attempt-1 was overwritten")
	}
}

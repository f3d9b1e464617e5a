package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A pinned source is fetched only by ensure (exp data fetch): cached never
// fetches, and tells a missing file (naming the fetch command) and a changed
// one (its hash) apart; ensure refuses a fetch that gives other bytes and
// does not fetch a file that is already there.
func TestPinnedSourceFetchedOnlyAtSetup(t *testing.T) {
	body := []byte("pinned source bytes\n")
	sum := sha256.Sum256(body)
	fetches := 0
	p := pinned{File: "src.tgz", SHA256: hex.EncodeToString(sum[:]), fetch: func(dir string) error {
		fetches++
		return os.WriteFile(filepath.Join(dir, "src.tgz"), body, 0o644)
	}}
	dir := filepath.Join(t.TempDir(), "standin")

	_, err := p.cached(dir, "standin-x")
	if err == nil || !strings.Contains(err.Error(), "`"+FetchCommand+"`") || !strings.Contains(err.Error(), "src.tgz") || fetches != 0 {
		t.Fatalf("missing source: %v (%d fetches)", err, fetches)
	}
	path, err := p.ensure(dir, StandInOptions{})
	if err != nil || fetches != 1 {
		t.Fatalf("ensure: %v (%d fetches)", err, fetches)
	}
	if got, err := p.cached(dir, "standin-x"); err != nil || got != path {
		t.Fatalf("cached after ensure: %q, %v", got, err)
	}
	if _, err := p.ensure(dir, StandInOptions{}); err != nil || fetches != 1 {
		t.Fatalf("ensure of a verified file fetched again: %v (%d fetches)", err, fetches)
	}

	os.WriteFile(path, []byte("changed"), 0o644)
	if _, err := p.cached(dir, "standin-x"); err == nil || !strings.Contains(err.Error(), "pinned "+p.SHA256) {
		t.Fatalf("changed source: %v", err)
	}
	if _, err := p.ensure(dir, StandInOptions{}); err != nil || fetches != 2 {
		t.Fatalf("ensure of a changed file: %v (%d fetches)", err, fetches)
	}

	bad := p
	bad.File = "other.tgz"
	bad.fetch = func(dir string) error {
		return os.WriteFile(filepath.Join(dir, "other.tgz"), []byte("tampered"), 0o644)
	}
	if _, err := bad.ensure(dir, StandInOptions{}); err == nil || !strings.Contains(err.Error(), "refusing a changed file") {
		t.Fatalf("tampered fetch: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "other.tgz")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a tampered file was kept: %v", err)
	}
}

// Building the stand-ins without their sources in the cache fails at once,
// naming the command that fetches them, and writes nothing: no network at
// exp run.
func TestBuildStandInsWithoutSourcesNamesFetch(t *testing.T) {
	cache, root := t.TempDir(), t.TempDir()
	o := StandInOptions{Train: 4, Dev: 4, Seed: 1, HeldOutDocs: 2}
	for name, build := range map[string]func(string, string, StandInOptions) error{StandInReviews: BuildReviews, StandInSpam: BuildSpam} {
		err := build(root, cache, o)
		if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "`exp data fetch`") {
			t.Errorf("%s without its source: %v", name, err)
		}
	}
	if entries, _ := os.ReadDir(StandInSourceDir(cache)); len(entries) != 0 {
		t.Errorf("the build fetched into the cache: %v", entries)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("the build wrote under the data root: %v", entries)
	}
}

package main

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reproml/albert/results/table/fixture"
)

// exp report writes one index.html with a section per ablation, the
// planned runs the database lacks with the command that runs them, and
// leaves the database byte for byte as it was.
func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "exp.db")
	s, err := fixture.Build(db)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	sum := func() [32]byte {
		b, err := os.ReadFile(db)
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(b)
	}
	before := sum()
	t.Chdir("../..") // the experiment files are re-planned from ablations/
	out := filepath.Join(dir, "report")
	var stdout bytes.Buffer
	root.SetOut(&stdout)
	root.SetArgs([]string{"report", "--db", db, "--out", out})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(out, "index.html")
	if strings.TrimSpace(stdout.String()) != path {
		t.Errorf("printed %q, want %q", stdout.String(), path)
	}
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`id="sharing"`, `id="dropout"`, `<table class="results" data-ablation="sentence">`,
		"<code>exp run ablations/sharing.toml --profile cpu</code>", `id="provenance"`} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("index.html lacks %s", want)
		}
	}
	if sum() != before {
		t.Error("exp report changed the database")
	}
	if _, err := os.Stat(path + ".tmp"); err == nil {
		t.Error("index.html.tmp left behind")
	}
	root.SetArgs([]string{"report", "--db", filepath.Join(dir, "none.db"), "--out", out})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "no results database") {
		t.Errorf("a missing database: %v", err)
	}
}

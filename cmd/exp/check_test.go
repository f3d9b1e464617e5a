package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reproml/albert/data"
	"github.com/reproml/albert/data/baseline"
	"github.com/reproml/albert/experiments"
	"github.com/reproml/albert/results"
)

// The baselines' data key is the "data" object of the runs' stored config,
// so a table can match baselines to runs.
func TestBaselineKeyMatchesRunConfig(t *testing.T) {
	f, err := experiments.Load("../../ablations/sentence.toml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.Plan("", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := onlyDataConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	js, _, err := baseline.ConfigKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range p.Runs {
		if !strings.Contains(r.ConfigJSON, `"data":`+js+`,`) {
			t.Fatalf("run %s config %s lacks data %s", r.Label, r.ConfigJSON, js)
		}
	}
	p.Runs[1].Data.SeqLen++
	if _, err := onlyDataConfig(p); err == nil {
		t.Error("two data configurations were accepted")
	}
}

// exp check sentence-baseline on the default corpus: six results, stored.
func TestCheckSentenceBaseline(t *testing.T) {
	if _, err := os.Stat(data.CorpusPath(filepath.Join("../..", cacheRoot))); err != nil {
		t.Skip("default corpus not fetched: run `exp data fetch`")
	}
	db := filepath.Join(t.TempDir(), "exp.db")
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"check", "sentence-baseline", "--json", "--db", db,
		"--file", "../../ablations/sentence.toml", "--cache", filepath.Join("../..", cacheRoot)})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var rep baseline.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	s, err := results.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bs, err := s.Baselines()
	if err != nil || len(bs) != 6 || len(rep.Results) != 6 {
		t.Fatalf("stored %d baselines (%v), printed %d", len(bs), err, len(rep.Results))
	}
	for _, b := range bs {
		if b.DataConfigHash != rep.DataConfigHash || b.N != 1024 {
			t.Errorf("stored %+v", b)
		}
	}
}

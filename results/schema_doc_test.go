package results

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The example queries of docs/SCHEMA.md run against a populated database and
// each returns rows, so the documentation cannot drift from the schema.
func TestSchemaDocQueries(t *testing.T) {
	doc, err := os.ReadFile("../docs/SCHEMA.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 5 {
		t.Fatalf("found %d sql blocks in SCHEMA.md", len(blocks))
	}

	s := openT(t, tempDB(t))
	sharing, _ := s.EnsureExperiment("sharing", "ablations/sharing.toml", "h1")
	sentence, _ := s.EnsureExperiment("sentence", "ablations/sentence.toml", "h2")
	add := func(exp int64, hash, cfg string) int64 {
		r := spec(hash)
		r.ConfigJSON = cfg
		id, _, err := s.AddRun(exp, r)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	done := add(sharing, "a", `{"model":{"embedding_size":128,"sharing":"all"},"objective":"sop"}`)
	if done != 1 {
		t.Fatalf("first run has id %d; the doc's examples use run 1", done)
	}
	add(sentence, "a", `{"model":{"embedding_size":128,"sharing":"all"},"objective":"sop"}`) // shared run
	running := add(sharing, "b", `{"model":{"embedding_size":768,"sharing":"none"},"objective":"sop"}`)
	diverged := add(sentence, "c", `{"model":{"embedding_size":128,"sharing":"all"},"objective":"nsp"}`)
	for _, id := range []int64{done, running, diverged} {
		if c, err := s.ClaimRun(id, "host:1", time.Minute, false); err != nil || !c.Granted {
			t.Fatal(c, err)
		}
	}
	w := s.NewMetricWriter(done)
	for step := 0; step <= 100; step += 10 {
		w.Add(step, "eval", "mlm_acc", float64(step)/200)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.PutEvals(done, map[string]float64{"mlm_acc": 0.5, "nsp_acc": 0.6, "sop_acc": 0.8}))
	must(s.PutTransitions(done, []Transition{{1, 2, 30}, {2, 1, 20}}))
	must(s.PutProvenance(done, Provenance{GitCommit: "abc", Host: "h", Threads: 2}))
	must(s.Heartbeat(done, 100))
	must(s.FinishRun(done, StatusDone, "", "cpu", 60))
	must(s.Heartbeat(diverged, 7))
	must(s.FinishRun(diverged, StatusDiverged, "loss NaN", "cpu", 3))
	// A fine-tuning run of run 1, done, with its best dev evaluation.
	ft, _, err := s.AddFinetuneRun(sharing, spec("ft"), FinetuneSpec{PretrainRunID: done, PretrainHash: "a", ModelHash: "m",
		Init: InitPretrained, Task: "standin-reviews", StandIn: true, Metric: "accuracy", EvalSplit: "dev"})
	must(err)
	if c, err := s.ClaimRun(ft, "host:1", time.Minute, false); err != nil || !c.Granted {
		t.Fatal(c, err)
	}
	must(s.PutBest(ft, 300, []Score{{"dev", "accuracy", 0.8}, {"dev", "loss", 0.4}}))
	must(s.Heartbeat(ft, 300))
	must(s.FinishRun(ft, StatusDone, "", "cpu", 30))
	// An earlier attempt of run 1, as a --retry claim archives it.
	_, err = s.db.Exec(`INSERT INTO retried_metrics(run_id, attempt, step, split, name, value) VALUES (1, 1, 7, 'train', 'loss', NULL)`)
	must(err)

	for _, b := range blocks {
		q := b[1]
		rows, err := s.db.Query(q)
		if err != nil {
			t.Errorf("query failed: %v\n%s", err, q)
			continue
		}
		cols, _ := rows.Columns()
		n := 0
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(q, "json_extract") && (vals[5] == nil || vals[7] == nil) {
				t.Errorf("json_extract or eval join gave NULL: %v\n%s", vals, q)
			}
			n++
		}
		rows.Close()
		if n == 0 {
			t.Errorf("query returned no rows:\n%s", q)
		}
	}
}

package results

import (
	"math"
	"testing"
	"time"
)

// A fine-tuning run is recorded with its finetunes row in one go, is told
// apart from pretraining runs by RunFilter.Kind, and its best scores are
// replaced as a whole and read back (NaN included).
func TestFinetuneRuns(t *testing.T) {
	s := openT(t, tempDB(t))
	exp, err := s.EnsureExperiment("downstream", "ablations/downstream.toml", "h")
	if err != nil {
		t.Fatal(err)
	}
	pre, _, err := s.AddRun(exp, spec("pre"))
	if err != nil {
		t.Fatal(err)
	}
	ft := FinetuneSpec{PretrainRunID: pre, PretrainHash: "pre", ModelHash: "m", Init: InitPretrained, Task: "standin-reviews", StandIn: true, Metric: "accuracy", EvalSplit: "dev"}
	id, created, err := s.AddFinetuneRun(exp, spec("ft"), ft)
	if err != nil || !created {
		t.Fatal(id, created, err)
	}
	again, created, err := s.AddFinetuneRun(exp, spec("ft"), ft)
	if err != nil || created || again != id {
		t.Fatalf("second add: id %d created %v err %v, want the same run", again, created, err)
	}
	rnd := ft
	rnd.Init, rnd.PretrainRunID, rnd.PretrainHash = InitRandom, 0, ""
	rid, _, err := s.AddFinetuneRun(exp, spec("ft-random"), rnd)
	if err != nil {
		t.Fatal(err)
	}
	bad := ft
	bad.PretrainRunID = 0
	if _, _, err := s.AddFinetuneRun(exp, spec("bad"), bad); err == nil {
		t.Error("a pretrained init without its pretraining run was accepted")
	}
	for kind, want := range map[Kind]int{KindPretrain: 1, KindFinetune: 2, "": 3} {
		rs, err := s.Runs(RunFilter{Experiment: "downstream", Kind: kind})
		if err != nil || len(rs) != want {
			t.Errorf("kind %q: %d runs (%v), want %d", kind, len(rs), err, want)
		}
	}
	if c, err := s.ClaimRun(id, "h:1", time.Minute, false); err != nil || !c.Granted {
		t.Fatal(c, err)
	}
	if err := s.PutBest(id, 30, []Score{{"dev", "accuracy", 0.5}, {"dev", "f1", math.NaN()}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutBest(id, 40, []Score{{"dev", "accuracy", 0.75}}); err != nil {
		t.Fatal(err)
	}
	fts, err := s.Finetunes(FinetuneFilter{Experiment: "downstream", Task: "standin-reviews"})
	if err != nil || len(fts) != 2 {
		t.Fatalf("%d fine-tuning runs (%v), want 2", len(fts), err)
	}
	got := fts[0]
	if got.ID != id || got.Init != InitPretrained || got.PretrainRunID != pre || !got.StandIn || got.BestStep != 40 ||
		len(got.Best) != 1 || got.Best[BestKey("dev", "accuracy")] != 0.75 {
		t.Errorf("run %+v", got)
	}
	if fts[1].ID != rid || fts[1].PretrainRunID != 0 || fts[1].Init != InitRandom || len(fts[1].Best) != 0 {
		t.Errorf("random-init run %+v", fts[1])
	}
	if err := s.PutBest(rid, 5, []Score{{"dev", "f1", math.NaN()}}); err != nil {
		t.Fatal(err)
	}
	fts, _ = s.Finetunes(FinetuneFilter{Task: "standin-reviews"})
	if v := fts[1].Best[BestKey("dev", "f1")]; !math.IsNaN(v) {
		t.Errorf("NaN best read back as %v", v)
	}
}

package table

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reproml/albert/results"
	"github.com/reproml/albert/results/table/fixture"
)

// The downstream table puts each task's pretrained runs beside the random
// init of the same architecture, names stand-ins, lists official tasks
// first, and decides "pretrained beats random init" by the rule: held for
// the fixture's reviews (80+ vs 60+ over 3 paired seeds); RACE, with no
// random-init runs, has not enough runs.
func TestBuildDownstream(t *testing.T) {
	s, err := fixture.Build(filepath.Join(t.TempDir(), "exp.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := BuildDownstream(s)
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, r := range rep.Rows {
		labels = append(labels, r.Label)
	}
	if len(rep.Rows) != 4 || !strings.HasPrefix(labels[0], "RACE") || !strings.HasPrefix(labels[2], "standin-reviews (stand-in), dev accuracy: pretrained") ||
		!strings.HasPrefix(labels[3], "standin-reviews (stand-in), dev accuracy: random init") {
		t.Fatalf("rows %q", labels)
	}
	if got := rep.Rows[2].Cells["median"].Text; got != "82.00" {
		t.Errorf("median of 81, 82, 83: %q", got)
	}
	if m := rep.Rows[3].Cells["score"].Ours.Mean(); m < 61.9 || m > 62.1 {
		t.Errorf("random-init mean %.2f, want 62", m)
	}
	verdicts := map[string]Verdict{}
	for _, cs := range rep.Claims {
		for _, c := range cs.Claims {
			verdicts[strings.Fields(c.Claim)[5]] = c.Verdict
		}
	}
	if verdicts["standin-reviews"] != "held" || verdicts["RACE"] != NotEnough {
		t.Errorf("verdicts %v", verdicts)
	}
	var md bytes.Buffer
	if err := rep.Write(&md, "md"); err != nil || !strings.Contains(md.String(), "median (%)") {
		t.Errorf("markdown: %v\n%s", err, md.String())
	}
}

// Groups of one task and model that differ in fine-tuning settings are
// named by the settings where they depart from the most common ones; the
// common group and a group of another model stay unnamed.
func TestNameVariants(t *testing.T) {
	ft := func(model, cfg string) results.Finetune {
		var f results.Finetune
		f.ModelHash = model
		f.ConfigJSON = `{"finetune":{` + cfg + `},"seed":1}`
		return f
	}
	g := func(model, cfg string) FinetuneGroup {
		return FinetuneGroup{Task: "t", Profile: "cpu", Pretrained: []results.Finetune{ft(model, cfg)}}
	}
	gs := []FinetuneGroup{
		g("m", `"lr":0.0001,"steps":300`),
		g("m", `"lr":0.0003,"steps":300`),
		g("m", `"lr":0.0001,"pooling":"mean","steps":300`),
		g("m", `"lr":0.0001,"steps":900`),
		g("other", `"lr":0.0003,"steps":300`),
	}
	nameVariants(gs)
	want := []string{"", "lr=0.0003", "pooling=mean", "steps=900", ""}
	for i, w := range want {
		if gs[i].Variant != w {
			t.Errorf("group %d: variant %q, want %q", i, gs[i].Variant, w)
		}
	}
}

package table

import (
	"testing"

	"github.com/reproml/albert/results/paper"
)

func TestParamsAgainstThePaper(t *testing.T) {
	want := map[string]struct {
		params int64
		paper  float64
		match  paper.ParamsMatch
	}{
		"albert-base":           {11_683_584, 12, paper.ParamsRounds},
		"albert-large":          {17_683_968, 18, paper.ParamsRounds},
		"albert-xlarge":         {58_724_864, 60, paper.ParamsNoConvention},
		"albert-xxlarge":        {222_595_584, 235, paper.ParamsNoConvention},
		"bert-base":             {109_081_344, 108, paper.ParamsRoundsNoPooler},
		"bert-large":            {334_607_360, 334, paper.ParamsRoundsNoPooler},
		"table3-e768-all":       {31_114_752, 31, paper.ParamsRounds},
		"table4-e768-attention": {83_078_400, 83, paper.ParamsRounds},
		"table4-e128-ffn":       {37_686_528, 38, paper.ParamsRounds},
		"table12-h6144":         {495_518_208, 499, paper.ParamsNoConvention},
	}
	rows := Params(paper.MustLoad())
	seen := 0
	for _, r := range rows {
		w, ok := want[r.Name]
		if !ok {
			continue
		}
		seen++
		if r.Params != w.params || r.Paper == nil || *r.Paper != w.paper || r.Match != string(w.match) {
			t.Errorf("%s: params %d paper %v match %q; want %d, %gM, %q", r.Name, r.Params, r.Paper, r.Match, w.params, w.paper, w.match)
		}
		if r.Breakdown.Model() != r.Params {
			t.Errorf("%s: breakdown sums to %d, not %d", r.Name, r.Breakdown.Model(), r.Params)
		}
	}
	if seen != len(want) {
		t.Fatalf("found %d of %d presets", seen, len(want))
	}
}

package model

import "testing"

// The exact integers of the reference sheet (§7), under the declared
// convention: embeddings + projection + encoder + pooler, heads excluded.
func TestParamsMatchReference(t *testing.T) {
	want := map[string]int64{
		"albert-base":    11_683_584,
		"albert-large":   17_683_968,
		"albert-xlarge":  58_724_864,
		"albert-xxlarge": 222_595_584,
		"bert-base":      109_081_344,
		"bert-large":     334_607_360,
		"bert-xlarge":    1_275_291_648,

		"table3-e64-none":  87_648_000,
		"table3-e128-none": 89_650_176,
		"table3-e256-none": 93_654_528,
		"table3-e768-none": 109_081_344,
		"table3-e64-all":   9_681_408,
		"table3-e128-all":  11_683_584,
		"table3-e256-all":  15_687_936,
		"table3-e768-all":  31_114_752,

		"table4-e768-all":       31_114_752,
		"table4-e768-attention": 83_078_400,
		"table4-e768-ffn":       57_117_696,
		"table4-e768-none":      109_081_344,
		"table4-e128-all":       11_683_584,
		"table4-e128-attention": 63_647_232,
		"table4-e128-ffn":       37_686_528,
		"table4-e128-none":      89_650_176,

		"table12-h1024": 17_683_968,
		"table12-h2048": 58_724_864,
		"table12-h4096": 222_595_584,
		"table12-h6144": 495_518_208,
	}
	for name, n := range want {
		p, err := LookupPreset(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Config.Params().Model(); got != n {
			t.Errorf("%s: %d parameters, reference %d", name, got, n)
		}
	}
	// ALBERT-base with MLM + SOP heads: 11,813,810 (reference §7.2).
	p, _ := LookupPreset("albert-base")
	if got := p.Config.Params().WithHeads(); got != 11_813_810 {
		t.Errorf("albert-base with heads: %d, want 11813810", got)
	}
}

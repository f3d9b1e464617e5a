package paper

import (
	"strings"
	"testing"

	"github.com/reproml/albert/model"
)

func TestLoadCells(t *testing.T) {
	r, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		table, row, col string
		want            float64
	}{
		{"v6-table5", "SOP", "nsp", 78.9},
		{"v6-table5", "NSP", "sop", 52.0},
		{"v6-table5", "None", "mlm", 54.9},
		{"v6-table3", "all-shared E=64", "avg", 79.0},
		{"v6-table4", "E=768 shared-FFN", "params", 57},
		{"v6-table11", "L=48", "race", 66.9},
		{"v6-table12", "H=6144", "params", 499},
		{"v1-table1", "BERT-xlarge (ours)", "race", 54.3},
		{"v1-table1", "BERT-xlarge (ours)", "params", 1270},
		{"v1-table2", "ALBERT-xlarge", "params", 59},
		{"v6-table1", "ALBERT-xxlarge", "params", 235},
		{"v6-table8", "Without dropout", "avg", 90.7},
	}
	for _, c := range cases {
		tb, err := r.Table(c.table)
		if err != nil {
			t.Fatal(err)
		}
		row, ok := tb.Row(c.row)
		if !ok {
			t.Fatalf("%s: no row %q", c.table, c.row)
		}
		if got, ok := row.Value(c.col); !ok || got != c.want {
			t.Errorf("%s / %s / %s = %v (%v), want %v", c.table, c.row, c.col, got, ok, c.want)
		}
	}
	for _, id := range []string{"v6-table1", "v6-table2", "v6-table3", "v6-table4", "v6-table5", "v6-table11", "v6-table12", "v1-table1"} {
		tb, err := r.Table(id)
		if err != nil {
			t.Fatal(err)
		}
		if tb.Version != id[:2] || len(tb.Rows) == 0 || tb.Source == "" {
			t.Errorf("%s: version %q, %d rows, source %q", id, tb.Version, len(tb.Rows), tb.Source)
		}
	}
	if r.Meta.ParamsConvention == "" || r.Meta.DownstreamNote == "" {
		t.Error("meta notes missing")
	}
}

// Every row is well formed: the paper's Avg is the mean of the five tasks
// with each SQuAD's F1 and EM averaged first (§4.3), to the printed digit.
func TestAvgRule(t *testing.T) {
	r := MustLoad()
	n := 0
	for _, tb := range r.Tables {
		for _, row := range tb.Rows {
			v := row.Values
			avg, ok := v["avg"]
			if !ok || tb.ID == "v6-table9" {
				continue
			}
			m := ((v["squad11_f1"]+v["squad11_em"])/2 + (v["squad20_f1"]+v["squad20_em"])/2 + v["mnli"] + v["sst2"] + v["race"]) / 5
			if d := m - avg; d > 0.051 || d < -0.051 {
				t.Errorf("%s %q: Avg %v, tasks give %.3f", tb.ID, row.Label, avg, m)
			}
			n++
		}
	}
	if n < 40 {
		t.Errorf("checked %d Avg values, want every row with an Avg (>= 40)", n)
	}
}

func TestInconsistenciesRecorded(t *testing.T) {
	r := MustLoad()
	want := map[string][]float64{
		"albert-base-mnli": {81.6, 82.0},
		"not-shared-e128":  {83.7, 81.7, 83.2, 81.6},
		"xxlarge-params":   {235, 233},
		"xlarge-params":    {60, 59},
		"table12-params":   {60, 225, 499},
	}
	got := map[string]Inconsistency{}
	for _, in := range r.Inconsistencies {
		got[in.ID] = in
	}
	for id, vals := range want {
		in, ok := got[id]
		if !ok {
			t.Errorf("inconsistency %s not recorded", id)
			continue
		}
		for _, v := range vals {
			found := false
			for _, c := range in.Cells {
				found = found || c.Value == v
			}
			if !found {
				t.Errorf("%s: no cell with value %v", id, v)
			}
		}
	}
	if got["xxlarge-params"].Exact != 222595584 || got["xlarge-params"].Exact != 58724864 {
		t.Error("exact counts of xlarge / xxlarge not recorded")
	}
	if len(r.InconsistenciesOf("v6-table4")) < 2 {
		t.Error("Table 4 should carry the MNLI and not-shared E=128 inconsistencies")
	}
}

// The recorded exact counts are what the model package counts for each
// row's preset, and they relate to the printed counts as the reference
// sheet's §7.4 says.
func TestParamsExactAgainstModel(t *testing.T) {
	r := MustLoad()
	for _, tb := range r.Tables {
		for _, row := range tb.Rows {
			if row.ParamsExact == 0 {
				continue
			}
			p, err := model.LookupPreset(row.Preset)
			if err != nil {
				t.Fatalf("%s %q: %v", tb.ID, row.Label, err)
			}
			if got := p.Config.Params().Model(); got != row.ParamsExact {
				t.Errorf("%s %q: params_exact %d, model counts %d", tb.ID, row.Label, row.ParamsExact, got)
			}
		}
	}
	match := func(id, label string) ParamsMatch {
		tb, _ := r.Table(id)
		row, _ := tb.Row(label)
		p, _ := model.LookupPreset(row.Preset)
		return row.ParamsMatch(int64(p.Config.HiddenSize))
	}
	cases := []struct {
		id, label string
		want      ParamsMatch
	}{
		{"v6-table1", "ALBERT-base", ParamsRounds},
		{"v6-table1", "ALBERT-large", ParamsRounds},
		{"v6-table1", "BERT-base", ParamsRoundsNoPooler},
		{"v6-table1", "BERT-large", ParamsRoundsNoPooler},
		{"v6-table1", "ALBERT-xlarge", ParamsNoConvention},
		{"v1-table2", "ALBERT-xlarge", ParamsRounds},
		{"v6-table1", "ALBERT-xxlarge", ParamsNoConvention},
		{"v1-table2", "ALBERT-xxlarge", ParamsNoConvention},
		{"v6-table3", "not-shared E=64", ParamsRoundsNoPooler},
		{"v6-table3", "all-shared E=768", ParamsRounds},
		{"v6-table4", "E=768 shared-attention", ParamsRounds},
		{"v6-table4", "E=128 shared-FFN", ParamsRounds},
		{"v6-table12", "H=1024", ParamsRounds},
		{"v6-table12", "H=2048", ParamsNoConvention},
		{"v6-table12", "H=4096", ParamsNoConvention},
		{"v6-table12", "H=6144", ParamsNoConvention},
	}
	for _, c := range cases {
		if got := match(c.id, c.label); got != c.want {
			t.Errorf("%s %q: %q, want %q", c.id, c.label, got, c.want)
		}
	}
}

func TestAblationsAndFigures(t *testing.T) {
	r := MustLoad()
	for name, id := range map[string]string{"embedding": "v6-table3", "sharing": "v6-table4", "sentence": "v6-table5",
		"xlarge": "v1-table1", "depth": "v6-table11", "width": "v6-table12", "dropout": "v6-table8"} {
		tb := r.ForAblation(name)
		if tb == nil || tb.ID != id {
			t.Errorf("ForAblation(%q) = %v, want %s", name, tb, id)
		}
	}
	if r.ForAblation("transitions") != nil || r.FigureFor("transitions") == nil || r.FigureFor("transitions").ID != "v6-figure1" {
		t.Error("transitions should be v6 Figure 1, a figure without a table")
	}
	if got := strings.Join(r.Ablations(), ","); got != "depth,dropout,embedding,sentence,sharing,transitions,width,xlarge" {
		t.Errorf("Ablations() = %s", got)
	}
}

func TestParseRejects(t *testing.T) {
	bad := []struct{ name, doc, want string }{
		{"unknown key", "[meta]\npaper = \"x\"\nbogus = 1\n", "unknown keys"},
		{"bad column", "[[tables]]\nid = \"t\"\nversion = \"v6\"\ncolumns = [\"nope\"]\n", "unknown column"},
		{"undeclared value", "[[tables]]\nid = \"t\"\nversion = \"v6\"\ncolumns = [\"mnli\"]\n[[tables.rows]]\nlabel = \"a\"\nvalues = { race = 1.0 }\n", "undeclared column"},
		{"bad version", "[[tables]]\nid = \"t\"\nversion = \"v3\"\n", "version"},
		{"wrong inconsistency value", "[[tables]]\nid = \"t\"\nversion = \"v6\"\ncolumns = [\"mnli\"]\n[[tables.rows]]\nlabel = \"a\"\nvalues = { mnli = 1.0 }\n[[inconsistencies]]\nid = \"i\"\ncells = [{ table = \"t\", row = \"a\", column = \"mnli\", value = 2.0 }]\n", "holds 1, recorded 2"},
	}
	for _, c := range bad {
		_, err := Parse([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", c.name, err, c.want)
		}
	}
}

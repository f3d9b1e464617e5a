package table

import (
	"fmt"

	"github.com/reproml/albert/model"
	"github.com/reproml/albert/results/paper"
)

// ParamsRow is one preset's exact parameter count next to what the paper
// printed for that configuration (`exp params`).
type ParamsRow struct {
	Name      string          `json:"name"`
	Source    string          `json:"source"` // the paper table the preset comes from
	Params    int64           `json:"params"` // exact, under model/params.go's convention
	WithHeads int64           `json:"params_with_heads"`
	Paper     *float64        `json:"paper"`     // millions, as printed; null if no table prints it
	PaperAt   string          `json:"paper_at"`  // e.g. "v6 Table 1"
	Match     string          `json:"match"`     // rounds | rounds w/o pooler | no convention
	Note      string          `json:"note"`      // why a cell matches no convention
	Breakdown model.Breakdown `json:"breakdown"` // embeddings, projection, attention, ffn, pooler, heads
}

// Params lists every model preset with its exact count from shapes and the
// paper's printed value: the first table row naming the preset.
func Params(ref *paper.Reference) []ParamsRow {
	var rows []ParamsRow
	for _, name := range model.PresetNames() {
		p, _ := model.LookupPreset(name)
		b := p.Config.Params()
		r := ParamsRow{Name: name, Source: p.Source, Params: b.Model(), WithHeads: b.WithHeads(), Breakdown: b}
	find:
		for _, t := range ref.Tables {
			for _, row := range t.Rows {
				v, ok := row.Values["params"]
				if row.Preset != name || !ok {
					continue
				}
				r.Paper, r.PaperAt, r.Note = &v, t.Title(), row.Note
				exact := row
				exact.ParamsExact = r.Params
				r.Match = string(exact.ParamsMatch(int64(p.Config.HiddenSize)))
				break find
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// FormatMillions renders a count in millions with two decimals.
func FormatMillions(n int64) string { return fmt.Sprintf("%.2fM", float64(n)/1e6) }

package table

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"strings"
)

// HTMLParts is a report rendered as HTML fragments, from the same headers
// and cells as the Markdown, CSV and TeX renderers, so the formats never
// disagree. `exp report` places figures between them; WriteHTML joins them
// into one <section>.
type HTMLParts struct {
	Table     template.HTML // <table class="results">: two heading rows (column, then paper / ours / Δ)
	Claims    template.HTML // one <div class="claims"> per scale group: each claim's verdict, our numbers (interval, n) and the paper's evidence
	Baselines template.HTML // the sentence table's non-neural baselines ("" when none)
	Notes     template.HTML // the footnotes, less the scale notes, the verdict rule and the eval-SE note (Shared)
}

// Shared are the notes every report carries word for word, which a page of
// several reports prints once.
var Shared = []string{EvalSENote, Rule}

// htmlHead is one cell of a heading row.
type htmlHead struct {
	Label            string
	ColSpan, RowSpan int
	Class            string
}

// htmlCell is one body cell.
type htmlCell struct {
	Text  string
	Class string
}

type htmlRow struct {
	Class string
	Cells []htmlCell
}

type htmlClaim struct {
	Verdict, Class, Why, Claim, Detail, Needs, Paper string
}

type htmlClaimSet struct {
	Title  string
	Claims []htmlClaim
}

var htmlTmpl = template.Must(template.New("table").Parse(`
{{define "table"}}<table class="results" data-ablation="{{.Ablation}}">
<thead>
<tr>{{range .Top}}<th{{if gt .ColSpan 1}} colspan="{{.ColSpan}}"{{end}}{{if gt .RowSpan 1}} rowspan="{{.RowSpan}}"{{end}}{{if .Class}} class="{{.Class}}"{{end}}>{{.Label}}</th>{{end}}</tr>
{{if .Sub}}<tr>{{range .Sub}}<th class="{{.Class}}">{{.Label}}</th>{{end}}</tr>{{end}}
</thead>
<tbody>
{{range .Rows}}<tr{{if .Class}} class="{{.Class}}"{{end}}>{{range .Cells}}<td{{if .Class}} class="{{.Class}}"{{end}}>{{.Text}}</td>{{end}}</tr>
{{end}}</tbody>
</table>{{end}}
{{define "claims"}}{{range .}}<div class="claims">
<h4>{{.Title}}</h4>
<ul>
{{range .Claims}}<li class="claim {{.Class}}"><span class="verdict">{{.Verdict}}</span>{{if .Why}} <span class="why">({{.Why}})</span>{{end}} <span class="statement">{{.Claim}}</span>
<div class="detail">Ours: {{.Detail}}.</div>{{if .Needs}}
<div class="needs">Needs: {{.Needs}}.</div>{{end}}
<div class="paper-evidence">Paper: {{.Paper}}.</div></li>
{{end}}</ul>
</div>
{{end}}{{end}}
{{define "list"}}{{if .}}<ul class="notes">
{{range .}}<li>{{.}}</li>
{{end}}</ul>{{end}}{{end}}
{{define "section"}}<section class="ablation-table" id="table-{{.Ablation}}">
<h2>{{.Ablation}} — {{.Title}}</h2>
{{.Parts.Table}}
{{.Parts.Baselines}}
{{.Parts.Claims}}
{{.Parts.Notes}}
</section>
{{end}}`))

// VerdictClass is the CSS class of a verdict: held, not-held, inconclusive
// or not-enough.
func VerdictClass(v Verdict) string {
	switch v {
	case Held:
		return "held"
	case NotHeld:
		return "not-held"
	case Inconclusive:
		return "inconclusive"
	}
	return "not-enough"
}

func execFragment(name string, data any) (template.HTML, error) {
	var b bytes.Buffer
	if err := htmlTmpl.ExecuteTemplate(&b, name, data); err != nil {
		return "", fmt.Errorf("table: html %s: %w", name, err)
	}
	return template.HTML(b.String()), nil // html/template escaped every value
}

// HTML renders the report's fragments.
func (rep *Report) HTML() (HTMLParts, error) {
	var parts HTMLParts
	hs := rep.headers()
	var top, sub []htmlHead
	for i := 0; i < len(hs); {
		h := hs[i]
		if h.sub == "" {
			top = append(top, htmlHead{Label: h.group, ColSpan: 1, RowSpan: 2})
			i++
			continue
		}
		j := i
		for j < len(hs) && hs[j].group == h.group && hs[j].sub != "" {
			sub = append(sub, htmlHead{Label: hs[j].sub, Class: subClass(hs[j].sub)})
			j++
		}
		top = append(top, htmlHead{Label: h.group, ColSpan: j - i, RowSpan: 1, Class: "group"})
		i = j
	}
	if len(sub) == 0 {
		for k := range top {
			top[k].RowSpan = 1
		}
	}
	var rows []htmlRow
	for _, r := range rep.Rows {
		hr := htmlRow{}
		switch {
		case len(r.Runs) == 0:
			hr.Class = "not-run"
		case len(r.Lost) > 0:
			hr.Class = "has-lost"
		}
		for _, h := range hs {
			hr.Cells = append(hr.Cells, htmlCell{Text: h.cell(r), Class: subClass(h.sub)})
		}
		rows = append(rows, hr)
	}
	var err error
	if parts.Table, err = execFragment("table", map[string]any{"Ablation": rep.Ablation, "Top": top, "Sub": sub, "Rows": rows}); err != nil {
		return parts, err
	}
	var sets []htmlClaimSet
	for _, cs := range rep.Claims {
		set := htmlClaimSet{Title: "Claims"}
		if cs.Scale != "" {
			set.Title += " (" + cs.Scale + ")"
		}
		for _, c := range cs.Claims {
			set.Claims = append(set.Claims, htmlClaim{Verdict: string(c.Verdict), Class: VerdictClass(c.Verdict), Why: c.Why,
				Claim: c.Claim, Detail: c.Detail, Needs: c.Needs, Paper: c.Paper})
		}
		sets = append(sets, set)
	}
	if parts.Claims, err = execFragment("claims", sets); err != nil {
		return parts, err
	}
	var bs []string
	for _, b := range rep.Baselines {
		bs = append(bs, strings.ReplaceAll(b.Text(), "`", ""))
	}
	if parts.Baselines, err = execFragment("list", bs); err != nil {
		return parts, err
	}
	skip := map[string]bool{}
	for _, n := range append(append([]string(nil), Shared...), rep.Scales...) {
		skip[n] = true
	}
	var notes []string
	for _, n := range rep.Notes {
		if !skip[n] {
			notes = append(notes, n)
		}
	}
	if parts.Notes, err = execFragment("list", notes); err != nil {
		return parts, err
	}
	return parts, nil
}

func subClass(sub string) string {
	switch sub {
	case "paper":
		return "paper"
	case "ours":
		return "ours"
	case "Δ":
		return "delta"
	}
	return ""
}

// WriteHTML writes the report as one HTML <section>: the table, the
// baselines, the claims and every note.
func (rep *Report) WriteHTML(w io.Writer) error {
	parts, err := rep.HTML()
	if err != nil {
		return err
	}
	var notes []string
	for _, n := range rep.Notes {
		notes = append(notes, n)
	}
	all, err := execFragment("list", notes)
	if err != nil {
		return err
	}
	parts.Notes = all
	if err := htmlTmpl.ExecuteTemplate(w, "section", map[string]any{"Ablation": rep.Ablation, "Title": rep.Title, "Parts": parts}); err != nil {
		return fmt.Errorf("table: html: %w", err)
	}
	return nil
}

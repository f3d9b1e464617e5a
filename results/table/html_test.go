package table

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/reproml/albert/internal/htmltest"
)

// text, attr and all read parsed HTML (internal/htmltest).
var (
	text = htmltest.Text
	attr = htmltest.Attr
	all  = htmltest.All
)

// mdCells splits the body rows of a Markdown table written by writeMarkdown.
func mdCells(md string) [][]string {
	var rows [][]string
	for i, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "| ") || i < 4 { // title, blank, header, rule
			continue
		}
		line = strings.TrimSuffix(strings.TrimPrefix(line, "| "), " |")
		line = strings.ReplaceAll(line, `\|`, "\x00")
		var cells []string
		for _, c := range strings.Split(line, " | ") {
			cells = append(cells, strings.ReplaceAll(c, "\x00", "|"))
		}
		rows = append(rows, cells)
	}
	return rows
}

// The HTML table is the Markdown table's model rendered again: the same
// rows and cells in the same order, with the compared columns' paper / ours
// / Δ under one heading; each claim's verdict as a class, with its numbers.
func TestHTMLAgreesWithMarkdown(t *testing.T) {
	s := fixtureStore(t)
	for _, abl := range []string{"sharing", "sentence", "xlarge"} {
		rep, err := Build(s, abl, Options{})
		if err != nil {
			t.Fatal(err)
		}
		doc, err := html.Parse(strings.NewReader(render(t, rep, "html")))
		if err != nil {
			t.Fatal(err)
		}
		want := mdCells(render(t, rep, "md"))
		tables := all(doc, "table", "results")
		if len(tables) != 1 || attr(tables[0], "data-ablation") != abl {
			t.Fatalf("%s: %d results tables", abl, len(tables))
		}
		body := all(all(tables[0], "tbody", "")[0], "tr", "")
		if len(body) != len(rep.Rows) || len(want) != len(rep.Rows) {
			t.Fatalf("%s: html %d rows, md %d, model %d", abl, len(body), len(want), len(rep.Rows))
		}
		for i, tr := range body {
			tds := all(tr, "td", "")
			if len(tds) != len(want[i]) {
				t.Fatalf("%s row %d: html %d cells, md %d", abl, i, len(tds), len(want[i]))
			}
			for j, td := range tds {
				if got := text(td); got != want[i][j] {
					t.Errorf("%s row %d cell %d: html %q, md %q", abl, i, j, got, want[i][j])
				}
			}
		}
		// Two heading rows: a compared column spans paper, ours and Δ.
		heads := all(all(tables[0], "thead", "")[0], "tr", "")
		if len(heads) != 2 {
			t.Fatalf("%s: %d heading rows", abl, len(heads))
		}
		spans := 0
		for _, th := range all(heads[0], "th", "") {
			if attr(th, "colspan") == "3" {
				spans++
			}
		}
		compared := 0
		for _, c := range rep.Columns {
			if c.Kind == Compared {
				compared++
			}
		}
		if spans != compared {
			t.Errorf("%s: %d headings span paper/ours/Δ, want %d compared columns", abl, spans, compared)
		}
		var claims []Claim
		for _, cs := range rep.Claims {
			claims = append(claims, cs.Claims...)
		}
		lis := all(doc, "li", "claim")
		if len(lis) != len(claims) || len(claims) == 0 {
			t.Fatalf("%s: %d claim items, model has %d", abl, len(lis), len(claims))
		}
		for i, li := range lis {
			c := claims[i]
			if !strings.Contains(attr(li, "class"), VerdictClass(c.Verdict)) || text(all(li, "span", "verdict")[0]) != string(c.Verdict) {
				t.Errorf("%s claim %d: class %q, verdict %q, want %q", abl, i, attr(li, "class"), text(li), c.Verdict)
			}
			if !strings.Contains(text(li), c.Detail) || !strings.Contains(text(li), c.Claim) {
				t.Errorf("%s claim %d lacks its statement or numbers: %q", abl, i, text(li))
			}
		}
		if abl == "sharing" && !bytes.Contains([]byte(render(t, rep, "html")), []byte(`<tr class="has-lost">`)) {
			t.Error("sharing: the row with a diverged seed is not marked")
		}
	}
}

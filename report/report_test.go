package report

import (
	"bytes"
	"encoding/base64"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/reproml/albert/internal/htmltest"

	"github.com/reproml/albert/plots"
	"github.com/reproml/albert/results"
	"github.com/reproml/albert/results/table"
	"github.com/reproml/albert/results/table/fixture"
)

// fixtureStore is the table fixture (every ablation; the sharing ablation
// with one and two seeds per row and a seed that diverged at step 812)
// with provenance for the sharing runs: two commits, one of them dirty.
func fixtureStore(t *testing.T) *results.Store {
	t.Helper()
	s, err := fixture.Build(filepath.Join(t.TempDir(), "exp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// A failed seed beside the diverged one: the dropout ablation's second
	// seed without dropout.
	failed := fixture.Run{Experiments: []string{"dropout"}, Label: "dropout=0 seed=2", Seed: 2, Status: results.StatusFailed,
		Reason: "out of memory at step 30", Model: map[string]any{"vocab_size": 8000, "embedding_size": 32, "hidden_size": 128,
			"num_layers": 4, "sharing": "all", "hidden_dropout": 0.0},
		Point: map[string]any{"model.hidden_dropout": 0.0}, Params: 60000}
	if err := fixture.Fill(s, []fixture.Run{failed}); err != nil {
		t.Fatal(err)
	}
	runs, err := s.Runs(results.RunFilter{Experiment: "sharing"})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range runs {
		p := results.Provenance{GitCommit: "1111111", GoVersion: "go1.26.0", GotchVersion: "v0.9.1", LibtorchVersion: "1.13.1",
			BLAS: "OpenBLAS 0.3.21 (openmp)", Host: "builder", Threads: 1}
		if i%2 == 1 {
			p.GitCommit, p.GitDirty = "2222222", true
		}
		if err := s.PutProvenance(r.ID, p); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// planner plans, for each file, the runs the store has (so nothing is
// missing) and, for sharing.toml, one more cpu run and a paper-profile run;
// for embedding.toml a paper-profile run of the not-shared E=64 row, which
// no stored run reproduces.
func planner(t *testing.T, s *results.Store) func(string) ([]string, []PlannedRun, error) {
	return func(file string) ([]string, []PlannedRun, error) {
		name := strings.TrimSuffix(filepath.Base(file), ".toml")
		runs, err := s.Runs(results.RunFilter{Experiment: name, Kind: results.KindPretrain})
		if err != nil {
			return nil, nil, err
		}
		var out []PlannedRun
		for _, r := range runs {
			out = append(out, PlannedRun{Profile: r.Profile, Hash: r.ConfigHash, Label: r.Name, ConfigJSON: r.ConfigJSON, ScaleJSON: r.ScaleJSON})
		}
		switch name {
		case "sharing":
			out = append(out, PlannedRun{Profile: "cpu", Hash: "not-stored", Label: "E=768 sharing=all seed=3", ConfigJSON: "{}"})
		case "embedding":
			out = append(out, PlannedRun{Profile: "paper", Hash: "paper-e64", Label: "E=64 sharing=none seed=1",
				ConfigJSON: `{"model":{"embedding_size":64,"sharing":"none"}}`,
				ScaleJSON:  `{"reference":"paper","point":{"model.embedding_size":64,"model.sharing":"none"}}`})
		}
		return []string{"cpu", "paper"}, out, nil
	}
}

func buildPage(t *testing.T, s *results.Store, names ...string) (*Page, string) {
	t.Helper()
	p, err := Build(s, names, Options{Plan: planner(t, s), Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return p, b.String()
}

var voidElements = map[string]bool{"area": true, "base": true, "br": true, "col": true, "embed": true, "hr": true, "img": true,
	"input": true, "link": true, "meta": true, "source": true, "track": true, "wbr": true}

// wellFormed checks what html.Parse would silently repair: a doctype
// first, every element closed, in order, and nothing after </html>.
func wellFormed(t *testing.T, page string) {
	t.Helper()
	z := html.NewTokenizer(strings.NewReader(page))
	var stack []string
	first := true
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if z.Err() != io.EOF {
				t.Fatalf("tokenizer: %v", z.Err())
			}
			break
		}
		tok := z.Token()
		if first && tt != html.TextToken {
			if tt != html.DoctypeToken || tok.Data != "html" {
				t.Fatalf("page does not start with <!DOCTYPE html>: %v", tok)
			}
			first = false
			continue
		}
		switch tt {
		case html.StartTagToken:
			if !voidElements[tok.Data] {
				stack = append(stack, tok.Data)
			}
		case html.SelfClosingTagToken:
			if !voidElements[tok.Data] {
				t.Errorf("<%s/> is not a void element", tok.Data)
			}
		case html.EndTagToken:
			if len(stack) == 0 || stack[len(stack)-1] != tok.Data {
				t.Fatalf("</%s> closes %v", tok.Data, stack)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		t.Errorf("unclosed elements %v", stack)
	}
}

// selfContained fails on anything the page would fetch: scripts,
// stylesheets, frames, objects, any src or href that is not a data: URI or
// an in-page #anchor, and url() or @import in its CSS.
func selfContained(t *testing.T, doc *html.Node) {
	t.Helper()
	for _, tag := range []string{"script", "link", "iframe", "object", "embed", "frame", "base"} {
		if n := all(doc, tag, ""); len(n) > 0 {
			t.Errorf("the page has <%s>", tag)
		}
	}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			for _, a := range n.Attr {
				switch a.Key {
				case "src", "href", "srcset", "poster", "data", "action", "xlink:href", "background":
					if !strings.HasPrefix(a.Val, "data:") && !strings.HasPrefix(a.Val, "#") {
						t.Errorf("<%s %s=%q> is an external reference", n.Data, a.Key, a.Val)
					}
				case "style":
					if strings.Contains(a.Val, "url(") {
						t.Errorf("<%s style=%q> loads a url", n.Data, a.Val)
					}
				}
				if strings.Contains(a.Val, "http://") || strings.Contains(a.Val, "https://") {
					t.Errorf("<%s %s> names a web address", n.Data, a.Key)
				}
			}
			if n.Data == "style" && (strings.Contains(text(n), "url(") || strings.Contains(text(n), "@import")) {
				t.Error("the stylesheet loads something")
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
}

// The report of the fixture database: a section per ablation in the
// paper's order, each with the paper's table and ours (every row of the
// model), every claim with its verdict and numbers, every figure exp plot
// draws for it inlined as a PNG that decodes, the scale, the diverged run;
// what was not run with its command; the provenance; valid HTML that
// references nothing outside the file.
func TestReportFromFixture(t *testing.T) {
	s := fixtureStore(t)
	p, page := buildPage(t, s)
	wellFormed(t, page)
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	selfContained(t, doc)

	sections := all(doc, "section", "ablation")
	if len(sections) != len(table.Ablations)+1 || len(p.Missing) != 0 {
		t.Fatalf("%d sections (missing %v), want one per ablation (%d) and the fine-tuning table", len(sections), p.Missing, len(table.Ablations))
	}
	// Last, the fine-tuning table (the fixture fine-tunes both xlarge models
	// on RACE and BERT-large on a stand-in, pretrained and from random init).
	ds := sections[len(sections)-1]
	dsRep, err := table.BuildDownstream(s)
	if err != nil {
		t.Fatal(err)
	}
	if attr(ds, "id") != table.Downstream || len(all(ds, "li", "claim")) != len(dsRep.Claims[0].Claims) ||
		len(all(all(ds, "tbody", "")[0], "tr", "")) != len(dsRep.Rows) {
		t.Errorf("the fine-tuning section does not show its table and claims: %q", text(ds))
	}
	sections = sections[:len(sections)-1]
	for i, sec := range sections {
		abl := table.Ablations[i] // the paper's order
		if attr(sec, "id") != abl {
			t.Fatalf("section %d is %q, want %q", i, attr(sec, "id"), abl)
		}
		rep, err := table.Build(s, abl, table.Options{})
		if err != nil {
			t.Fatal(err)
		}
		tables := all(sec, "table", "results")
		if len(tables) != 1 {
			t.Fatalf("%s: %d results tables", abl, len(tables))
		}
		if n := len(all(all(tables[0], "tbody", "")[0], "tr", "")); n != len(rep.Rows) {
			t.Errorf("%s: %d table rows, the model has %d", abl, n, len(rep.Rows))
		}
		if !strings.Contains(text(all(sec, "h2", "")[0]), rep.Title) {
			t.Errorf("%s: heading %q lacks the paper's title %q", abl, text(all(sec, "h2", "")[0]), rep.Title)
		}
		var claims []table.Claim
		for _, cs := range rep.Claims {
			claims = append(claims, cs.Claims...)
		}
		lis := all(sec, "li", "claim")
		if len(lis) != len(claims) {
			t.Errorf("%s: %d claims shown, %d checked", abl, len(lis), len(claims))
		}
		for j := range min(len(lis), len(claims)) {
			got := text(lis[j])
			if !strings.Contains(got, string(claims[j].Verdict)) || !strings.Contains(got, claims[j].Detail) {
				t.Errorf("%s claim %d: %q lacks its verdict or numbers", abl, j, got)
			}
		}
		scale := text(all(sec, "div", "scale")[0])
		for _, sn := range rep.Scales {
			if !strings.Contains(scale, sn) {
				t.Errorf("%s: scale section lacks %q", abl, sn)
			}
		}
		if strings.Count(text(sec), "factors vs the paper's configuration") > len(rep.Scales) {
			t.Errorf("%s: the factors are printed more than once per profile", abl)
		}
		figs, err := plots.ForAblation(s, abl)
		if err != nil {
			t.Fatal(err)
		}
		shown := all(sec, "figure", "figure")
		if len(shown) != len(figs) || len(figs) == 0 {
			t.Errorf("%s: %d figures shown, exp plot draws %d", abl, len(shown), len(figs))
		}
		for j, fig := range shown {
			if j < len(figs) && attr(fig, "data-figure") != figs[j].Name {
				t.Errorf("%s figure %d is %q, want %q", abl, j, attr(fig, "data-figure"), figs[j].Name)
			}
			pngOK(t, abl, all(fig, "img", "")[0])
			if c := text(all(fig, "figcaption", "")[0]); !strings.Contains(c, `Runs of profile "`) {
				t.Errorf("%s: caption names no scale: %q", abl, c)
			}
		}
		lost := text(all(sec, "ul", "lost-runs")[0:min(1, len(all(sec, "ul", "lost-runs")))]...)
		switch abl {
		case "sharing":
			if !strings.Contains(lost, "E=768 sharing=ffn seed=2 (seed 2): diverged — loss NaN at step 812") {
				t.Errorf("sharing: the diverged run is not listed: %q", lost)
			}
		case "dropout":
			if !strings.Contains(lost, "dropout=0 seed=2 (seed 2): failed — out of memory at step 30") {
				t.Errorf("dropout: the failed run is not listed: %q", lost)
			}
		default:
			if lost != "" {
				t.Errorf("%s: lists lost runs it has not: %q", abl, lost)
			}
		}
	}

	notRun := text(all(doc, "section", "")[len(all(doc, "section", ""))-2])
	for _, want := range []string{
		`1 planned run(s) of profile "cpu" not in the database: E=768 sharing=all seed=3`, "exp run ablations/sharing.toml --profile cpu",
		`1 run(s) of profile "cpu" gave no result: E=768 sharing=ffn seed=2 (diverged)`, "exp run ablations/sharing.toml --profile cpu --retry",
		`paper row "not-shared E=64" has no run at any scale`, "exp run ablations/embedding.toml --profile paper",
		`1 run(s) of profile "cpu" gave no result: dropout=0 seed=2 (failed)`, "exp run ablations/dropout.toml --profile cpu --retry",
	} {
		if !strings.Contains(notRun, want) {
			t.Errorf("what was not run lacks %q:\n%s", want, notRun)
		}
	}
	prov := all(doc, "table", "provenance")
	if len(prov) != 1 {
		t.Fatal("no provenance table")
	}
	rows := all(all(prov[0], "tbody", "")[0], "tr", "")
	if len(rows) != 2 {
		t.Fatalf("%d provenance rows, want 2 (two commits)", len(rows))
	}
	pt := text(prov[0])
	for _, want := range []string{"1111111", "2222222", "dirty", "clean", "OpenBLAS 0.3.21 (openmp)", "1.13.1", "v0.9.1", "go1.26.0"} {
		if !strings.Contains(pt, want) {
			t.Errorf("provenance lacks %q", want)
		}
	}
}

// pngOK decodes a figure's data URI as a PNG at FigureDPI: its pixel size
// is the <img>'s CSS size times FigureDPI/96.
func pngOK(t *testing.T, abl string, img *html.Node) {
	t.Helper()
	const prefix = "data:image/png;base64,"
	src := attr(img, "src")
	if !strings.HasPrefix(src, prefix) {
		t.Errorf("%s: figure src %.40q is not an inlined PNG", abl, src)
		return
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(src, prefix))
	if err != nil {
		t.Errorf("%s: figure: %v", abl, err)
		return
	}
	im, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Errorf("%s: figure is not a PNG: %v", abl, err)
		return
	}
	w, _ := strconv.Atoi(attr(img, "width"))
	h, _ := strconv.Atoi(attr(img, "height"))
	if got := im.Bounds(); w < 400 || h < 300 || abs(got.Dx()-w*FigureDPI/96) > 2 || abs(got.Dy()-h*FigureDPI/96) > 2 {
		t.Errorf("%s: figure %v shown at %dx%d CSS px", abl, got, w, h)
	}
}

func abs(x int) int { return max(x, -x) }

// Named ablations only, in the paper's order whatever the order asked; an
// ablation without runs is listed under what was not run with the command
// that runs it; a database with none of the named ablations is an error.
func TestReportNamedAndMissing(t *testing.T) {
	s, err := results.Open(filepath.Join(t.TempDir(), "exp.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var runs []fixture.Run
	for _, r := range fixture.Runs() {
		if r.Experiments[0] == "sentence" || r.Experiments[0] == "dropout" {
			runs = append(runs, r)
		}
	}
	if err := fixture.Fill(s, runs); err != nil {
		t.Fatal(err)
	}
	p, page := buildPage(t, s, "dropout", "sentence", "depth")
	if len(p.Sections) != 2 || p.Sections[0].Ablation != "sentence" || p.Sections[1].Ablation != "dropout" {
		t.Fatalf("sections %v, want sentence then dropout", p.Sections)
	}
	if len(p.Missing) != 1 || p.Missing[0] != "depth" || !strings.Contains(page, "<code>exp run ablations/depth.toml</code>") {
		t.Errorf("missing %v; the page does not give depth's command", p.Missing)
	}
	if strings.Contains(page, `id="sharing"`) {
		t.Error("an ablation not asked for is shown")
	}
	if _, err := Build(s, []string{"width"}, Options{}); err == nil {
		t.Error("a report of nothing was built")
	}
}

// text, attr and all read parsed HTML (internal/htmltest).
var (
	text = htmltest.Text
	attr = htmltest.Attr
	all  = htmltest.All
)

// writePage writes the fixture report to a file for the browser test.
func writePage(t *testing.T) string {
	t.Helper()
	_, page := buildPage(t, fixtureStore(t))
	path := filepath.Join(t.TempDir(), "index.html")
	if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

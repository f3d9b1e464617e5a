package table

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/reproml/albert/results/paper"
)

// Formats are the output formats of Write.
var Formats = []string{"md", "csv", "tex", "html"}

// Write renders the report in format ("md", "csv", "tex" or "html"). CSV is
// one line per row × column (tidy), with the claims in WriteClaimsCSV; HTML
// is a fragment (a <section>) that `exp report` puts in its page.
func (rep *Report) Write(w io.Writer, format string) error {
	switch format {
	case "md", "":
		return rep.writeMarkdown(w)
	case "csv":
		return rep.WriteCSV(w)
	case "tex":
		return rep.writeTeX(w)
	case "html":
		return rep.WriteHTML(w)
	}
	return fmt.Errorf("table: unknown format %q (want md, csv, tex or html)", format)
}

// header is one rendered column heading with a function for its cell.
// group and sub split the label for two-row headings (HTML): a compared
// column's "MLM acc (%)" over "paper", "ours" and "Δ".
type header struct {
	label      string
	group, sub string
	cell       func(Row) string
}

func fmtNum(v float64, prec int) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

func fmtDelta(v float64, prec int) string {
	s := fmtNum(v, prec)
	if v >= 0 {
		s = "+" + s
	}
	return s
}

func fmtCount(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// headers expands the columns into the rendered layout: paper / ours / Δ
// sub-columns for compared quantities.
func (rep *Report) headers() []header {
	hs := []header{
		{label: "Row", group: "Row", cell: func(r Row) string { return r.Label }},
		{label: "Scale", group: "Scale", cell: func(r Row) string {
			if r.Profile == "" {
				return "—"
			}
			return r.Profile
		}},
		{label: "Runs", group: "Runs", cell: func(r Row) string { return r.RunsCell() }},
	}
	for _, c := range rep.Columns {
		c := c
		paperCell := func(r Row) string {
			cell := r.Cells[c.Key]
			if !cell.HasPaper {
				return ""
			}
			return paper.FormatValue(paperKey(c.Key), cell.Paper)
		}
		sub := func(part string, cell func(Row) string) header {
			return header{label: c.Label + " " + part, group: c.Label, sub: part, cell: cell}
		}
		switch c.Kind {
		case PaperOnly:
			hs = append(hs, sub("paper", paperCell))
		case NotMeasured, OursText:
			hs = append(hs, header{label: c.Label, group: c.Label, cell: func(r Row) string { return r.Cells[c.Key].Text }})
		case OursOnly:
			hs = append(hs, sub("ours", func(r Row) string { return oursCell(c, r.Cells[c.Key]) }))
		case Compared:
			hs = append(hs,
				sub("paper", paperCell),
				sub("ours", func(r Row) string { return oursCell(c, r.Cells[c.Key]) }),
				sub("Δ", func(r Row) string {
					cell := r.Cells[c.Key]
					if !cell.HasDelta {
						return ""
					}
					return fmtDelta(cell.Delta, c.Prec)
				}))
		}
	}
	return hs
}

func paperKey(col string) string {
	switch col {
	case "mlm_acc":
		return "mlm"
	case "nsp_acc":
		return "nsp"
	case "sop_acc":
		return "sop"
	}
	return col
}

func oursCell(c Column, cell Cell) string {
	if cell.Ours.N() == 0 {
		return "—"
	}
	if c.Key == "params_run" {
		return fmtCount(cell.Ours.Mean())
	}
	s := cell.Ours
	s.Lost = nil // the Runs column names them
	return s.Format(c.Prec)
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func (rep *Report) writeMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s — %s\n\n", rep.Ablation, rep.Title)
	hs := rep.headers()
	var line []string
	for _, h := range hs {
		line = append(line, mdEscape(h.label))
	}
	b.WriteString("| " + strings.Join(line, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat("---|", len(hs)) + "\n")
	for _, r := range rep.Rows {
		line = line[:0]
		for _, h := range hs {
			line = append(line, mdEscape(h.cell(r)))
		}
		b.WriteString("| " + strings.Join(line, " | ") + " |\n")
	}
	b.WriteString("\n")
	for _, bs := range rep.Baselines {
		b.WriteString(bs.Text() + "\n\n")
	}
	for _, n := range rep.Notes {
		b.WriteString("- " + n + "\n")
	}
	b.WriteString("\n")
	for _, cs := range rep.Claims {
		title := "Claims"
		if cs.Scale != "" {
			title += " (" + cs.Scale + ")"
		}
		b.WriteString("### " + title + "\n\n")
		for _, c := range cs.Claims {
			fmt.Fprintf(&b, "- **%s** — %s: %s.", c.VerdictText(), c.Claim, c.Detail)
			if c.Needs != "" {
				fmt.Fprintf(&b, " Needs: %s.", c.Needs)
			}
			fmt.Fprintf(&b, " Paper: %s.\n", c.Paper)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// CSVHeader is the header of WriteCSV.
// Records with kind "note" carry the table's footnotes (the verdict rule
// among them) in the note field. Records with kind "baseline" (the sentence
// table) are non-neural baselines on the same held-out pairs: row is the
// baseline, column the task's accuracy, ours_mean the accuracy in %, eval_se
// and eval_n its binomial standard error (%) and pair count.
var CSVHeader = []string{"ablation", "paper_table", "row", "profile", "scale", "runs_done", "runs_total",
	"column", "kind", "paper", "ours_mean", "ours_std", "ours_n", "delta", "note", "eval_se", "eval_n", "lost"}

func kindName(k ColumnKind) string {
	return [...]string{"paper", "ours", "compared", "not measured", "ours"}[k]
}

// WriteCSV writes one record per row × column; numbers unformatted.
func (rep *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	tbl := ""
	if rep.Table != nil {
		tbl = rep.Table.Title()
	} else if rep.Figure != nil {
		tbl = rep.Figure.Title()
	}
	num := func(v float64, ok bool) string {
		if !ok {
			return ""
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	for _, r := range rep.Rows {
		for _, c := range rep.Columns {
			cell := r.Cells[c.Key]
			n := cell.Ours.N()
			se, hasSE := cell.Ours.EvalSE()
			var lost []string
			for _, l := range cell.Ours.Lost {
				lost = append(lost, l.String())
			}
			rec := []string{rep.Ablation, tbl, r.Label, r.Profile, r.Scale, strconv.Itoa(r.Done()), strconv.Itoa(len(r.Runs)),
				c.Key, kindName(c.Kind), num(cell.Paper, cell.HasPaper),
				num(cell.Ours.Mean(), n > 0), num(cell.Ours.Std(), n > 1), strconv.Itoa(n), num(cell.Delta, cell.HasDelta), "",
				num(se, hasSE), num(cell.Ours.EvalN, hasSE), strings.Join(lost, "; ")}
			if c.Kind == NotMeasured {
				rec[14] = c.Why
			}
			if c.Kind == OursText {
				rec[14] = cell.Text
			}
			if cell.Ours.Acc && n > 0 && !hasSE {
				rec[14] = "eval size unknown"
			}
			if err := cw.Write(rec); err != nil {
				return fmt.Errorf("table: csv: %w", err)
			}
		}
	}
	for _, bs := range rep.Baselines {
		for _, x := range bs.Baselines {
			rec := make([]string, len(CSVHeader))
			rec[0], rec[1], rec[2], rec[3], rec[4] = rep.Ablation, tbl, x.Name, bs.Profile, bs.Scale
			rec[7], rec[8], rec[10], rec[14] = x.Task+"_acc", "baseline", num(100*x.Accuracy, true), "non-neural baseline on the same held-out pairs ("+BaselineCommand+")"
			rec[15], rec[16] = num(100*x.StdErr(), x.N > 0), strconv.Itoa(x.N)
			if err := cw.Write(rec); err != nil {
				return fmt.Errorf("table: csv: %w", err)
			}
		}
		if len(bs.Baselines) == 0 {
			rec := make([]string, len(CSVHeader))
			rec[0], rec[1], rec[3], rec[4], rec[8], rec[14] = rep.Ablation, tbl, bs.Profile, bs.Scale, "note", bs.Text()
			if err := cw.Write(rec); err != nil {
				return fmt.Errorf("table: csv: %w", err)
			}
		}
	}
	for _, note := range rep.Notes {
		rec := make([]string, len(CSVHeader))
		rec[0], rec[1], rec[8], rec[14] = rep.Ablation, tbl, "note", note
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("table: csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("table: csv: %w", err)
	}
	return nil
}

// ClaimsCSVHeader is the header of WriteClaimsCSV.
var ClaimsCSVHeader = []string{"ablation", "profile", "scale", "claim", "verdict", "why", "needs", "ours", "paper"}

// WriteClaimsCSV writes one record per claim and scale group, then the
// verdict rule as a record with claim "rule".
func (rep *Report) WriteClaimsCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(ClaimsCSVHeader)
	for _, cs := range rep.Claims {
		for _, c := range cs.Claims {
			cw.Write([]string{rep.Ablation, cs.Profile, cs.Scale, c.Claim, string(c.Verdict), c.Why, c.Needs, c.Detail, c.Paper})
		}
	}
	cw.Write([]string{rep.Ablation, "", "", "rule", "", "", "", Rule, ""})
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("table: claims csv: %w", err)
	}
	return nil
}

var texReplacer = strings.NewReplacer(`\`, `\textbackslash{}`, "&", `\&`, "%", `\%`, "$", `\$`, "#", `\#`, "_", `\_`,
	"{", `\{`, "}", `\}`, "~", `\textasciitilde{}`, "^", `\textasciicircum{}`, "±", `$\pm$`, "Δ", `$\Delta$`,
	"×", `$\times$`, "°", `$^\circ$`, "—", "--", "≫", `$\gg$`, "→", `$\to$`, "²", `$^2$`, "≥", `$\geq$`, "≤", `$\leq$`,
	"−", "-", "✔", `\checkmark{}`)

func texEscape(s string) string { return texReplacer.Replace(s) }

func (rep *Report) writeTeX(w io.Writer) error {
	var b strings.Builder
	hs := rep.headers()
	fmt.Fprintf(&b, "%% %s: %s\n", rep.Ablation, rep.Title)
	b.WriteString("\\begin{table}[ht]\n\\centering\\scriptsize\n")
	b.WriteString("\\begin{tabular}{" + strings.Repeat("l", len(hs)) + "}\n\\hline\n")
	var line []string
	for _, h := range hs {
		line = append(line, texEscape(h.label))
	}
	b.WriteString(strings.Join(line, " & ") + " \\\\\n\\hline\n")
	for _, r := range rep.Rows {
		line = line[:0]
		for _, h := range hs {
			line = append(line, texEscape(h.cell(r)))
		}
		b.WriteString(strings.Join(line, " & ") + " \\\\\n")
	}
	b.WriteString("\\hline\n\\end{tabular}\n")
	fmt.Fprintf(&b, "\\caption{%s (%s). Ours vs the paper.}\n\\end{table}\n", texEscape(rep.Title), texEscape(rep.Ablation))
	b.WriteString("\\begin{itemize}\n")
	for _, bs := range rep.Baselines {
		b.WriteString("\\item " + texEscape(strings.ReplaceAll(bs.Text(), "`", "")) + "\n")
	}
	for _, n := range rep.Notes {
		b.WriteString("\\item " + texEscape(n) + "\n")
	}
	for _, cs := range rep.Claims {
		for _, c := range cs.Claims {
			fmt.Fprintf(&b, "\\item \\textbf{%s} [%s] %s: %s.", texEscape(c.VerdictText()), texEscape(cs.Scale),
				texEscape(c.Claim), texEscape(c.Detail))
			if c.Needs != "" {
				fmt.Fprintf(&b, " Needs: %s.", texEscape(c.Needs))
			}
			fmt.Fprintf(&b, " Paper: %s.\n", texEscape(c.Paper))
		}
	}
	b.WriteString("\\end{itemize}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

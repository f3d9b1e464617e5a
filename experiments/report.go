package experiments

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/reproml/albert/bench"
	"github.com/reproml/albert/results"
)

// WritePlan prints a plan for --dry-run: one line per run with its label,
// hash prefix, exact parameter count, profile, estimated training cost and
// estimated wall time (EstimateDevice's measured throughput), then the
// totals and the profile's scale against the paper.
func WritePlan(w io.Writer, p *Plan) error {
	fmt.Fprintf(w, "%s (%s) — profile %s: %d runs", p.Experiment, p.File, p.Profile, len(p.Runs))
	if p.Duplicates > 0 {
		fmt.Fprintf(w, " (+%d duplicate grid points planned once)", p.Duplicates)
	}
	fmt.Fprintln(w)
	table, err := bench.Throughputs()
	if err != nil {
		return err
	}
	device := EstimateDevice(p.Profile)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "#\tlabel\thash\tparams\tprofile\tsteps\test. PFLOP\test. time\t")
	var total float64
	var wall float64 // seconds
	used := map[string]bool{}
	var notes []string
	for _, r := range p.Runs {
		fl := r.FLOPs()
		total += fl
		est, err := bench.EstimateTime(table, device, r.Train.PrecisionName(), fl, r.Train.Steps)
		if err != nil {
			return err
		}
		wall += est.Seconds
		if key := est.From.Command + est.From.What; !used[key] {
			used[key] = true
			notes = append(notes, fmt.Sprintf("  %s/%s on %s: %s\n    measured by: %s", est.From.Device, est.From.Precision, est.From.Machine, est.From.What, est.From.Command))
		}
		if est.Fallback != "" && !used[est.Fallback] {
			used[est.Fallback] = true
			notes = append(notes, "  "+est.Fallback)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%.4g\t%s\t\n", r.Index, r.Label, r.Hash[:12], commas(r.Params()), r.Profile, r.Train.Steps, fl/1e15, hours(est.Seconds))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "total estimated training cost: %.4g PFLOP\n", total/1e15)
	if len(p.Runs) > 0 {
		fmt.Fprintf(w, "total estimated time, one device (%s): %s (runs one after another, or --jobs sharing it; evaluation included only where the rate's measurement ran it)\n", device, hours(wall))
		fmt.Fprintf(w, "rates from bench/throughput.toml:\n%s\n", strings.Join(notes, "\n"))
		s := p.Runs[0].Scale
		if s.Exact() {
			fmt.Fprintf(w, "scale: the %s configuration itself\n", s.Reference)
		} else {
			fmt.Fprintf(w, "scale vs %s (run 0): %s\n", s.Reference, scaleText(s))
		}
	}
	_, err = fmt.Fprintln(w)
	return err
}

// EstimateDevice is the device kind a profile's time is estimated on: the
// "gpu" and "paper" profiles are for CUDA devices, the others for the CPU
// this project measures on.
func EstimateDevice(profile string) string {
	switch profile {
	case "gpu", "paper":
		return "cuda"
	}
	return "cpu"
}

// hours writes a duration in seconds as 1h02m, 12m05s, 40s, or in years.
func hours(sec float64) string {
	switch {
	case sec >= 1000*3600:
		return fmt.Sprintf("%.3gy", sec/3600/24/365)
	case sec >= 3600:
		return fmt.Sprintf("%dh%02dm", int(sec/3600), int(sec/60)%60)
	case sec >= 60:
		return fmt.Sprintf("%dm%02ds", int(sec/60), int(sec)%60)
	}
	return fmt.Sprintf("%.0fs", sec)
}

func scaleText(s Scale) string {
	var parts []string
	for _, k := range sortedKeys(s.Factors) {
		parts = append(parts, fmt.Sprintf("%s ×%g", k, s.Factors[k]))
	}
	if len(s.Changed) > 0 {
		parts = append(parts, "changed: "+strings.Join(s.Changed, ", "))
	}
	return strings.Join(parts, ", ")
}

// commas writes n with thousands separators, as the paper's counts read.
func commas(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// OpenExisting opens the store at path for reading commands, without
// creating a database that is not there.
func OpenExisting(path string) (*results.Store, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no database at %s (run `exp run` first, or pass --db)", path)
		}
		return nil, err
	}
	return results.Open(path)
}

var statusOrder = []results.Status{results.StatusDone, results.StatusRunning, results.StatusPending,
	results.StatusDiverged, results.StatusFailed}

// WriteExperiments prints `exp ls`: every experiment version with its runs'
// status counts; with name, that experiment's runs one per line.
func WriteExperiments(w io.Writer, st *results.Store, name string) error {
	exps, err := st.Experiments()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "experiment\tfile\tversion\tcreated\truns")
	found := false
	for _, e := range exps {
		if name != "" && e.Name != name {
			continue
		}
		found = true
		var counts []string
		for _, s := range statusOrder {
			if n := e.Runs[s]; n > 0 {
				counts = append(counts, fmt.Sprintf("%d %s", n, s))
			}
		}
		if len(counts) == 0 {
			counts = []string{"none"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Name, e.File, e.ContentHash[:min(8, len(e.ContentHash))],
			e.CreatedAt.Local().Format("2006-01-02 15:04"), strings.Join(counts, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if name == "" {
		return nil
	}
	if !found {
		return fmt.Errorf("no experiment %q in the database", name)
	}
	runs, err := st.Runs(results.RunFilter{Experiment: name})
	if err != nil {
		return err
	}
	fmt.Fprintln(w)
	return writeRuns(w, runs, time.Now())
}

// WriteStatus prints `exp status`: run progress (step/total, heartbeat age)
// of the runs matching f, running ones first.
func WriteStatus(w io.Writer, st *results.Store, f results.RunFilter) error {
	runs, err := st.Runs(f)
	if err != nil {
		return err
	}
	rank := map[results.Status]int{results.StatusRunning: 0, results.StatusPending: 1, results.StatusFailed: 2,
		results.StatusDiverged: 3, results.StatusDone: 4}
	sort.SliceStable(runs, func(i, j int) bool { return rank[runs[i].Status] < rank[runs[j].Status] })
	counts := map[results.Status]int{}
	for _, r := range runs {
		counts[r.Status]++
	}
	var parts []string
	for _, s := range statusOrder {
		parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
	}
	fmt.Fprintf(w, "%d runs: %s\n\n", len(runs), strings.Join(parts, ", "))
	return writeRuns(w, runs, time.Now())
}

func writeRuns(w io.Writer, runs []results.Run, now time.Time) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "id\tstatus\tstep\tlabel\thash\tprofile\tparams\theartbeat\towner/device\treason")
	for _, r := range runs {
		hb := "-"
		if !r.HeartbeatAt.IsZero() {
			hb = now.Sub(r.HeartbeatAt).Round(time.Second).String() + " ago"
		}
		who := r.Owner
		if r.Status != results.StatusRunning {
			who = r.Device
		}
		status := string(r.Status)
		if r.Retries > 0 {
			status += fmt.Sprintf(" (retry %d)", r.Retries)
		}
		reason := r.Reason
		if len(reason) > 60 {
			reason = reason[:57] + "..."
		}
		fmt.Fprintf(tw, "%d\t%s\t%d/%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, status, r.Step, r.TotalSteps, r.Name,
			r.ConfigHash[:min(12, len(r.ConfigHash))], r.Profile, commas(r.Params), hb, who, reason)
	}
	return tw.Flush()
}

package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/reproml/albert/distributed"
)

// Worker runs one timed run in a child process, so that each run's peak RSS
// is its own: argv is the command that prints one Result as JSON.
func Worker(argv []string, stderr io.Writer) (Result, error) {
	var out bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &out, stderr
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("bench: %s: %w", strings.Join(argv, " "), err)
	}
	var r Result
	if err := json.Unmarshal(lastLine(out.Bytes()), &r); err != nil {
		return r, fmt.Errorf("bench: %s printed no result: %w", strings.Join(argv, " "), err)
	}
	return r, nil
}

func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return lines[len(lines)-1]
}

// OursArgv is the child command for our implementation: this executable's
// hidden worker mode.
func OursArgv(s Spec, o Options) ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return []string{exe, "bench", "--worker", s.Name, "--steps", strconv.Itoa(o.Steps),
		"--warmup", strconv.Itoa(o.Warmup), "--device", o.Device, "--ops", strconv.Itoa(o.Ops),
		"--precision", o.precision()}, nil
}

// ReferenceArgv is the child command for the PyTorch-eager reference: the
// spec travels as JSON, so both sides build the same model.
func ReferenceArgv(python, script string, s Spec, o Options, threads int) ([]string, error) {
	js, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	opt := o.RefOptimizer
	if opt == "" {
		opt = RefOptimizers[0]
	}
	if err := CheckRefOptimizer(opt); err != nil {
		return nil, err
	}
	argv := []string{python, script, "--spec", string(js), "--steps", strconv.Itoa(o.Steps),
		"--warmup", strconv.Itoa(o.Warmup), "--threads", strconv.Itoa(threads), "--device", o.Device,
		"--precision", o.precision(), "--optimizer-impl", opt}
	if o.RefCompile {
		argv = append(argv, "--compile")
	}
	return argv, nil
}

// RefOptimizers are reference.py's forms of LAMB (--optimizer-impl), the
// default first: foreach (torch._foreach_* multi-tensor ops over all the
// parameters, PyTorch's best eager form) and loop (one parameter at a time,
// the form before; the same arithmetic).
var RefOptimizers = []string{"foreach", "loop"}

// CheckRefOptimizer says whether name is one of RefOptimizers.
func CheckRefOptimizer(name string) error {
	if !slices.Contains(RefOptimizers, name) {
		return fmt.Errorf("bench: the reference's optimizer %q: want one of %s", name, strings.Join(RefOptimizers, ", "))
	}
	return nil
}

// Check says whether res measured what the row asks: the precision
// (a reference.py from before --precision reports none).
func (r Row) Check(res Result) error {
	if res.Precision != r.Precision {
		got := res.Precision
		if got == "" {
			got = "no precision"
		}
		return fmt.Errorf("bench: %s: %s measured %s, want %s", r.Spec.Name, res.Impl, got, r.Precision)
	}
	return nil
}

// Row is one configuration's outcome: ours and, with --vs-pytorch, theirs
// (the best of the alternated rounds for each, by median).
type Row struct {
	Spec      Spec      `json:"spec"`
	Precision string    `json:"precision"` // both sides' arithmetic (fp32, tf32, bf16)
	FLOPs     float64   `json:"flops_per_step"`
	Ours      *Result   `json:"ours"`
	Theirs    *Result   `json:"pytorch,omitempty"`
	Ratio     float64   `json:"ratio,omitempty"` // our tokens/s ÷ theirs
	Rounds    []Result  `json:"rounds"`
	Targets   []Verdict `json:"targets"`
}

// Verdict is one of the targets checked against a row.
type Verdict struct {
	What string  `json:"what"`
	Got  float64 `json:"got"`
	Want float64 `json:"want"`
	Pass bool    `json:"pass"`
}

// better keeps the faster (lower median) of two results.
func better(a *Result, b Result) *Result {
	if a == nil || b.MsMedian < a.MsMedian {
		return &b
	}
	return a
}

// Judge fills the row's verdicts: tokens/s ≥ 1.1× PyTorch, GFLOP/s ≥ 65%
// (tiny) or 88% (base) of the ceiling, peak RSS ≤ PyTorch's.
func (r *Row) Judge() {
	r.Targets = nil
	want := 0.65
	if strings.HasPrefix(r.Spec.Name, "base") {
		want = 0.88
	}
	what := "fraction of matmul ceiling"
	if r.Ours.Precision != "" {
		what = "fraction of " + r.Ours.Precision + " matmul ceiling"
	}
	r.Targets = append(r.Targets, Verdict{What: what, Got: r.Ours.Fraction(), Want: want, Pass: r.Ours.Fraction() >= want})
	if r.Theirs != nil {
		r.Ratio = r.Ours.TokensPerSec / r.Theirs.TokensPerSec
		r.Targets = append(r.Targets,
			Verdict{What: "tokens/s ÷ PyTorch", Got: r.Ratio, Want: 1.1, Pass: r.Ratio >= 1.1},
			Verdict{What: "peak RSS ÷ PyTorch", Got: r.Ours.PeakRSSMiB / r.Theirs.PeakRSSMiB, Want: 1, Pass: r.Ours.PeakRSSMiB <= r.Theirs.PeakRSSMiB})
	}
}

// Add records one round's result.
// Its GFLOP/s is recomputed from the row's FLOPs (Spec.FLOPs), the one
// count, whatever the result was rated with (reference.py reports none).
func (r *Row) Add(res Result) {
	if r.FLOPs > 0 && res.MsMedian > 0 {
		res.GFLOPS = r.FLOPs / (res.MsMedian / 1000) / 1e9
	}
	r.Rounds = append(r.Rounds, res)
	if res.Impl == "pytorch" {
		r.Theirs = better(r.Theirs, res)
	} else {
		r.Ours = better(r.Ours, res)
	}
}

// WriteTable prints rows as an aligned table.
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "config\timpl\tprecision\ttokens/s\tms/step med\tmin\tmax\tGFLOP/s\t% ceiling (same precision)\tpeak RSS MiB\tours/theirs\t")
	for _, r := range rows {
		for _, res := range []*Result{r.Ours, r.Theirs} {
			if res == nil {
				continue
			}
			ratio := ""
			if res == r.Theirs {
				ratio = fmt.Sprintf("%.2f×", r.Ratio)
			}
			impl := res.Impl
			if res.Variant != "" {
				impl += " (" + res.Variant + ")"
			}
			prec := res.Precision
			if prec == "" {
				prec = "?"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t%.0f%% of %.0f\t%.0f\t%s\t\n", r.Spec.Name, impl, prec,
				res.TokensPerSec, res.MsMedian, res.MsMin, res.MsMax, res.GFLOPS, 100*res.Fraction(), res.CeilingGFLOPS, res.PeakRSSMiB, ratio)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rows { // a tf32 or bf16 rate against the fp32 ceiling too
		for _, res := range []*Result{r.Ours, r.Theirs} {
			if res != nil && res.CeilingFP32GFLOPS > 0 {
				fmt.Fprintf(w, "%s %s %s: %.1f GFLOP/s = %.0f%% of the %s matmul ceiling (%.0f), %.0f%% of the fp32 one (%.0f)\n",
					r.Spec.Name, res.Impl, res.Precision, res.GFLOPS, 100*res.Fraction(), res.Precision, res.CeilingGFLOPS,
					100*res.GFLOPS/res.CeilingFP32GFLOPS, res.CeilingFP32GFLOPS)
			}
		}
	}
	for _, r := range rows {
		for _, v := range r.Targets {
			mark := "PASS"
			if !v.Pass {
				mark = "FAIL"
			}
			fmt.Fprintf(w, "%s  %-10s %s: %.3f (target %s %.2f)\n", mark, r.Spec.Name, v.What, v.Got, map[bool]string{true: "≤", false: "≥"}[strings.HasPrefix(v.What, "peak")], v.Want)
		}
	}
	return nil
}

// WriteOps prints each row's per-op profile of our step (Options.Ops).
func WriteOps(w io.Writer, rows []Row) error {
	for _, r := range rows {
		if r.Ours == nil || len(r.Ours.Ops) == 0 {
			continue
		}
		var mean float64
		for _, t := range r.Ours.MsAll {
			mean += t / float64(len(r.Ours.MsAll))
		}
		fmt.Fprintf(w, "\n%s: where a step's %.0f ms go (mean of %d profiled steps; self = not in a nested op)\n", r.Spec.Name, mean, len(r.Ours.MsAll))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "self ms\t% of step\tcalls\ttotal ms\t  op")
		for _, op := range r.Ours.Ops {
			calls := fmt.Sprintf("%.0f", op.Calls)
			if op.Name == Outside {
				calls = ""
			}
			fmt.Fprintf(tw, "%.1f\t%.1f%%\t%s\t%.1f\t  %s\n", op.SelfMs, 100*op.SelfMs/mean, calls, op.TotalMs, op.Name)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// WorldWorker runs argv (OursArgv) as the n ranks of a local world
// (distributed.Launch) and returns rank 0's result: the world's step time,
// all-reduce included, for the global batch.
func WorldWorker(argv []string, n int, stderr io.Writer) (Result, error) {
	var out bytes.Buffer
	err := distributed.Launch(distributed.LaunchOptions{N: n, Program: argv[0], Args: argv[1:], Out: &out})
	if err != nil {
		stderr.Write(out.Bytes())
		return Result{}, fmt.Errorf("bench: %s over %d ranks: %w", strings.Join(argv, " "), n, err)
	}
	for _, line := range bytes.Split(out.Bytes(), []byte("\n")) {
		if js, ok := bytes.CutPrefix(line, []byte("[r0] {")); ok {
			var r Result
			if err := json.Unmarshal(append([]byte("{"), js...), &r); err != nil {
				return r, fmt.Errorf("bench: rank 0's result: %w", err)
			}
			return r, nil
		}
	}
	stderr.Write(out.Bytes())
	return Result{}, fmt.Errorf("bench: %s over %d ranks: rank 0 printed no result", strings.Join(argv, " "), n)
}

// Scaling is one configuration timed by one process and by a world.
type Scaling struct {
	Spec  Spec    `json:"spec"`
	N     int     `json:"nproc"`
	One   Result  `json:"one"`
	World Result  `json:"world"`
	Ratio float64 `json:"scaling"` // the world's tokens/s over one process's
}

// WriteScaling prints each configuration's tokens/s alone and over the
// world, and the ratio (N processes share this machine's cores: each rank
// runs cores/N threads, the one process all of them).
func WriteScaling(w io.Writer, rows []Scaling) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "config\tprocesses\tthreads each\ttokens/s\tms/step med\tscaling\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t1\t%d\t%.0f\t%.1f\t\t\n", r.Spec.Name, r.One.Threads, r.One.TokensPerSec, r.One.MsMedian)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.1f\t%.2f×\t\n", r.Spec.Name, r.N, r.World.Threads, r.World.TokensPerSec, r.World.MsMedian, r.Ratio)
	}
	return tw.Flush()
}

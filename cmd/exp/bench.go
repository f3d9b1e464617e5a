package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"

	"github.com/reproml/albert/backend"
	"github.com/reproml/albert/bench"
)

func init() {
	var (
		configs    []string
		steps      int
		warmup     int
		rounds     int
		device     string
		asJSON     bool
		vsPyTorch  bool
		python     string
		reference  string
		memory     bool
		memSteps   int
		memAt      int
		worker     string
		cpuprof    string
		ops        int
		nproc      int
		precision  string
		refOpt     string
		refCompile bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Time training steps of fixed configurations (tokens/s, GFLOP/s vs the matmul ceiling, peak RSS); --vs-pytorch, --memory",
		Long: `Times LAMB training steps of the issue's fixed configurations on synthetic
batches (20 masked predictions per sequence), each run in a fresh child
process so its peak RSS is its own. --vs-pytorch runs bench/reference.py
(PyTorch eager, the same model and step, Debian's python3-torch) alternating
with ours and prints our/their ratio. --memory trains tiny for --memory-steps
and checks RSS growth after step --memory-at (PASS/FAIL). --nproc N times each
configuration alone and as a data-parallel world of N local ranks (Gloo on the
CPU, cores/N threads each) at the same global batch, and prints the scaling.
--precision times both sides in fp32, tf32 (CUDA only) or bf16 (autocast on
the forward pass, fp32 master weights), each against the matmul ceiling in
that precision.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if precision == "" {
				precision = "fp32"
			}
			opts := bench.Options{Steps: steps, Warmup: warmup, Device: device, Ops: ops,
				Precision: precision, RefOptimizer: refOpt, RefCompile: refCompile}
			if worker != "" { // child process: one run, one JSON line
				s, err := bench.Lookup(worker)
				if err != nil {
					return err
				}
				g, _, err := joinWorld(device) // a rank of exp bench --nproc
				if err != nil {
					return err
				}
				if g != nil {
					defer g.Close()
					opts.World = g
				}
				if cpuprof != "" {
					fh, err := os.Create(cpuprof)
					if err != nil {
						return err
					}
					defer fh.Close()
					if err := pprof.StartCPUProfile(fh); err != nil {
						return err
					}
					defer pprof.StopCPUProfile()
				}
				r, err := bench.Run(s, opts)
				if err != nil {
					return err
				}
				if g != nil && g.Rank() > 0 {
					return nil // rank 0 reports the world's step
				}
				return json.NewEncoder(out).Encode(r)
			}
			if memory {
				if precision != "fp32" {
					return fmt.Errorf("bench: --memory times fp32 steps only, not --precision %s", precision)
				}
				s, err := bench.Lookup(configs[0])
				if err != nil {
					return err
				}
				r, err := bench.Memory(s, bench.MemoryOptions{Steps: memSteps, At: memAt, Device: device, Progress: os.Stderr})
				if err != nil {
					return err
				}
				if asJSON {
					if err := json.NewEncoder(out).Encode(r); err != nil {
						return err
					}
				} else {
					r.Write(out)
				}
				if !r.Pass {
					return fmt.Errorf("bench: peak RSS grew %.2f%% after step %d (limit ±%.0f%%)", r.GrowthPct, r.At, r.LimitPct)
				}
				return nil
			}
			if err := backend.Init(); err != nil {
				return err
			}
			// The children would refuse it one by one; say why once, first.
			dev, err := backend.Device(device)
			if err != nil {
				return err
			}
			if err := bench.CheckPrecision(precision, dev); err != nil {
				return err
			}
			if vsPyTorch {
				if err := bench.CheckRefOptimizer(refOpt); err != nil {
					return fmt.Errorf("--reference-optimizer: %w", err)
				}
			}
			if cmd.Flags().Changed("nproc") {
				if vsPyTorch {
					return fmt.Errorf("--nproc and --vs-pytorch: one comparison at a time")
				}
				return benchScaling(out, configs, nproc, opts, asJSON)
			}
			var rows []bench.Row
			for _, name := range configs {
				s, err := bench.Lookup(name)
				if err != nil {
					return err
				}
				rows = append(rows, bench.Row{Spec: s, Precision: precision, FLOPs: s.FLOPs()})
			}
			ours := func(s bench.Spec) ([]string, error) { return bench.OursArgv(s, opts) }
			theirs := func(s bench.Spec) ([]string, error) {
				return bench.ReferenceArgv(python, reference, s, opts, backend.Threads())
			}
			for round := 0; round < max(1, rounds); round++ {
				for i := range rows {
					order := []func(bench.Spec) ([]string, error){ours}
					if vsPyTorch {
						order = append(order, theirs)
						if round%2 == 1 { // alternate who goes first to cancel drift
							order[0], order[1] = order[1], order[0]
						}
					}
					for _, argv := range order {
						a, err := argv(rows[i].Spec)
						if err != nil {
							return err
						}
						fmt.Fprintf(os.Stderr, "bench: round %d %s: %s\n", round+1, rows[i].Spec.Name, shortArgv(a))
						r, err := bench.Worker(a, os.Stderr)
						if err != nil {
							return err
						}
						if err := rows[i].Check(r); err != nil {
							return err
						}
						rows[i].Add(r)
					}
				}
			}
			for i := range rows {
				rows[i].Judge()
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			if err := bench.WriteTable(out, rows); err != nil {
				return err
			}
			return bench.WriteOps(out, rows)
		},
	}
	f := cmd.Flags()
	var names []string
	for _, s := range bench.Specs() {
		names = append(names, s.Name)
	}
	var gpu []string
	for _, s := range bench.GPUSpecs() {
		gpu = append(gpu, s.Name)
	}
	f.StringSliceVar(&configs, "configs", names, "configurations to time (with --memory: the first one); GPU batches, by name only: "+strings.Join(gpu, ", "))
	f.IntVar(&steps, "steps", 10, "timed steps per run (after --warmup)")
	f.IntVar(&warmup, "warmup", 2, "untimed steps first")
	f.IntVar(&rounds, "rounds", 1, "alternated rounds per configuration; the best median of each side is reported")
	f.StringVar(&device, "device", "cpu", "auto | cpu | cuda | cuda:N")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.BoolVar(&vsPyTorch, "vs-pytorch", false, "also run bench/reference.py (PyTorch eager) and print our/their ratio")
	f.StringVar(&python, "python", defaultPython(), "python with torch for --vs-pytorch (Debian's python3-torch)")
	f.StringVar(&reference, "reference", "bench/reference.py", "the PyTorch reference script")
	f.BoolVar(&memory, "memory", false, "measure RSS growth over a long run of the first --configs (default tiny-all)")
	f.IntVar(&memSteps, "memory-steps", 2000, "steps of the --memory run")
	f.IntVar(&memAt, "memory-at", 200, "the step after which peak RSS must stay within ±5%")
	f.StringVar(&worker, "worker", "", "internal: run one configuration in this process and print JSON")
	f.MarkHidden("worker")
	f.IntVar(&ops, "ops", 0, "profile our timed steps per op and print the N ops with the most self time (the steps run a little slower)")
	f.IntVar(&nproc, "nproc", 2, "time each configuration alone and over N local ranks (data-parallel, same global batch) and print the scaling")
	f.StringVar(&precision, "precision", "fp32", "arithmetic of the timed steps, both sides: fp32 | tf32 (CUDA only) | bf16 (autocast forward, fp32 master weights)")
	f.StringVar(&refOpt, "reference-optimizer", "foreach", "reference.py's LAMB: foreach (torch._foreach_* over all parameters) | loop (one parameter at a time)")
	f.BoolVar(&refCompile, "reference-compile", false, "run reference.py's model under torch.compile (PyTorch 2.x; an error on 1.13)")
	f.StringVar(&cpuprof, "cpuprofile", "", "with --worker: write a Go CPU profile (cgo callers show where each op comes from)")
	root.AddCommand(cmd)
}

func shortArgv(a []string) string {
	s := strings.Join(a, " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// defaultPython is Debian's interpreter, where python3-torch installs, when
// present (a pyenv python3 first on PATH would lack torch).
func defaultPython() string {
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return "python3"
}

// benchScaling is exp bench --nproc N: each configuration timed by one
// process, then by a world of n ranks, alternating, as separate children.
func benchScaling(out io.Writer, configs []string, n int, opts bench.Options, asJSON bool) error {
	if n < 1 {
		return fmt.Errorf("--nproc %d: want at least 1", n)
	}
	var rows []bench.Scaling
	for _, name := range configs {
		s, err := bench.Lookup(name)
		if err != nil {
			return err
		}
		a, err := bench.OursArgv(s, opts)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench: %s alone: %s\n", s.Name, shortArgv(a))
		one, err := bench.Worker(a, os.Stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench: %s over %d ranks\n", s.Name, n)
		world, err := bench.WorldWorker(a, n, os.Stderr)
		if err != nil {
			return err
		}
		rows = append(rows, bench.Scaling{Spec: s, N: n, One: one, World: world, Ratio: world.TokensPerSec / one.TokensPerSec})
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	return bench.WriteScaling(out, rows)
}

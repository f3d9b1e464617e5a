package bench

import (
	_ "embed"
	"fmt"
	"math"
	"strings"

	"github.com/BurntSushi/toml"
)

// Throughput is one measured training throughput (bench/throughput.toml):
// Flop of arithmetic (model.Config.TrainStepFLOPs, summed over Steps
// steps) done in Seconds on Machine, as measured by Command.
type Throughput struct {
	Device       string  `toml:"device"`    // cpu | cuda
	Precision    string  `toml:"precision"` // fp32 | tf32 | bf16
	Machine      string  `toml:"machine"`
	What         string  `toml:"what"`
	File         string  `toml:"file"`          // an exp run entry: the ablation file it ran
	Profile      string  `toml:"profile"`       // … its profile
	RunsMatching string  `toml:"runs_matching"` // … the runs whose label contains this ("" = all)
	Flop         float64 `toml:"flop"`
	Steps        int     `toml:"steps"`
	Seconds      float64 `toml:"seconds"`
	Command      string  `toml:"command"`
}

// Rate is the entry's FLOP/s.
func (t Throughput) Rate() float64 { return t.Flop / t.Seconds }

// StepFlop is the arithmetic of one of its steps.
func (t Throughput) StepFlop() float64 { return t.Flop / float64(t.Steps) }

//go:embed throughput.toml
var throughputTOML string

// Throughputs is the table, in file order.
func Throughputs() ([]Throughput, error) {
	var f struct {
		Entry []Throughput `toml:"entry"`
	}
	md, err := toml.Decode(throughputTOML, &f)
	if err != nil {
		return nil, fmt.Errorf("bench: throughput.toml: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("bench: throughput.toml: unknown key %s", und[0])
	}
	for i, t := range f.Entry {
		if t.Device == "" || t.Precision == "" || t.Command == "" || t.Machine == "" || !(t.Flop > 0) || t.Steps <= 0 || !(t.Seconds > 0) {
			return nil, fmt.Errorf("bench: throughput.toml: entry %d (%s) needs device, precision, machine, command and positive flop, steps, seconds", i+1, t.What)
		}
	}
	return f.Entry, nil
}

// Estimate is a run's predicted wall time from the table.
type Estimate struct {
	Seconds float64 // not a time.Duration: paper-scale runs outlast its 292 years
	From    Throughput
	// Fallback says the table has no entry of the run's precision on
	// this device, so Time uses another precision's rate (fp32's).
	Fallback string
}

// EstimateTime predicts the wall time of flop of arithmetic in steps
// steps on device ("cpu" or "cuda") at precision: flop ÷ the rate of the
// entry of that device and precision whose step is nearest in ratio. With
// no entry of that precision, fp32's entries stand in (Fallback says so).
func EstimateTime(table []Throughput, device, precision string, flop float64, steps int) (Estimate, error) {
	if precision == "" {
		precision = "fp32"
	}
	pick := func(prec string) (Throughput, bool) {
		var best Throughput
		found, dist := false, math.Inf(1)
		step := flop / float64(max(steps, 1))
		for _, t := range table {
			if t.Device != device || t.Precision != prec {
				continue
			}
			if d := math.Abs(math.Log(step / t.StepFlop())); d < dist {
				best, dist, found = t, d, true
			}
		}
		return best, found
	}
	e := Estimate{}
	t, ok := pick(precision)
	if !ok && precision != "fp32" {
		if t, ok = pick("fp32"); ok {
			e.Fallback = fmt.Sprintf("no %s measurement on %s: fp32's rate", precision, device)
		}
	}
	if !ok {
		var kinds []string
		for _, t := range table {
			kinds = append(kinds, t.Device+"/"+t.Precision)
		}
		return e, fmt.Errorf("bench: no measured throughput for %s/%s (have: %s)", device, precision, strings.Join(kinds, ", "))
	}
	e.From = t
	e.Seconds = flop / t.Rate()
	return e, nil
}

package finetune

import (
	"fmt"
	"math/rand/v2"

	"github.com/reproml/albert/finetune/tasks"
)

// Data is one task's featurized splits: what a fine-tuning run trains on
// and scores.
type Data struct {
	Task  tasks.Task
	Train []tasks.Feature
	Evals []EvalSet // in the task's EvalSplits order; the first chooses the best checkpoint
}

// EvalSet is one evaluation split: its examples (for scoring) and features
// (for the model).
type EvalSet struct {
	Split    tasks.Split
	Examples []tasks.Example
	Features []tasks.Feature
}

// Options are the featurization limits of c.
func (c Config) Options() tasks.Options {
	return tasks.Options{MaxSeqLen: c.MaxSeqLen, MaxQueryLen: c.MaxQueryLen, DocStride: c.DocStride, MaxQALen: c.MaxQALen}
}

// Load reads task's training and evaluation splits under the data root and
// featurizes them with v under c (the first c.TrainExamples training and
// c.EvalExamples evaluation examples when those are set). A missing split
// is an error naming the path.
func Load(root string, task tasks.Task, v *tasks.Vocab, c Config) (*Data, error) {
	read := func(s tasks.Split, limit int) ([]tasks.Example, error) {
		set, err := tasks.Read(root, task, s)
		if err != nil {
			return nil, err
		}
		if !set.Present() {
			return nil, fmt.Errorf("finetune: %s: %s is absent", task.Name, set.Missing)
		}
		ex := set.Examples
		if limit > 0 && len(ex) > limit {
			ex = ex[:limit]
		}
		if len(ex) == 0 {
			return nil, fmt.Errorf("finetune: %s: %s has no examples", task.Name, set.Path)
		}
		return ex, nil
	}
	d := &Data{Task: task}
	train, err := read(task.TrainSplit, c.TrainExamples)
	if err != nil {
		return nil, err
	}
	if d.Train, err = tasks.Featurize(task, train, v, c.Options()); err != nil {
		return nil, err
	}
	for _, s := range task.EvalSplits {
		ex, err := read(s, c.EvalExamples)
		if err != nil {
			return nil, err
		}
		fs, err := tasks.Featurize(task, ex, v, c.Options())
		if err != nil {
			return nil, err
		}
		d.Evals = append(d.Evals, EvalSet{Split: s, Examples: ex, Features: fs})
	}
	if len(d.Train) == 0 || len(d.Evals) == 0 {
		return nil, fmt.Errorf("finetune: %s: no training features or no evaluation split", task.Name)
	}
	return d, nil
}

// order is the training order of one fine-tuning run: each epoch a
// permutation of the training features drawn from (seed, epoch), so the
// batch of any step is a function of (seed, step) and a resumed run sees
// the batches an uninterrupted one would.
type order struct {
	n     int
	seed  int64
	epoch int
	perm  []int
}

// batch returns the features of step (0-based) at batch size b.
func (o *order) batch(all []tasks.Feature, step, b int) []tasks.Feature {
	out := make([]tasks.Feature, b)
	for i := range out {
		k := step*b + i
		e := k / o.n
		if o.perm == nil || e != o.epoch {
			r := rand.New(rand.NewPCG(uint64(o.seed), uint64(e)+0x5eed))
			o.perm, o.epoch = r.Perm(o.n), e
		}
		out[i] = all[o.perm[k%o.n]]
	}
	return out
}

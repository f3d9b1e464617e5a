package train

import (
	"fmt"

	"github.com/sugarme/gotch/ts"

	"github.com/reproml/albert/backend"
)

// World is the data-parallel group a run trains in (package distributed's
// Group): N ranks, each with the same model and optimizer, each reading its
// own shard of every global batch. Rank 0 alone writes checkpoints,
// metrics and evals. A nil World trains alone.
type World interface {
	Rank() int
	Size() int
	Backend() string
	AllReduceMean([]*ts.Tensor) error
	AllReduceSum([]*ts.Tensor) error
	Broadcast([]*ts.Tensor, int) error
	Barrier() error
}

// worldSize is w's size, 1 for none.
func worldSize(w World) int {
	if w == nil {
		return 1
	}
	return w.Size()
}

// leads reports whether this process writes the run's results: alone, or
// rank 0 of its world.
func leads(w World) bool { return w == nil || w.Rank() == 0 }

// rankSeed is the dropout seed of a step on rank: rank 0 draws what a run
// alone draws, the others their own masks (the same masks on every rank
// would correlate their shards' dropout).
func rankSeed(seed int64, step, rank int) int64 {
	return stepSeed(seed, step) + int64(rank)*0x3c6ef372fe94f82b
}

// syncState makes every rank's parameters, optimizer state and position
// rank 0's: at the start of a run, whether rank 0 resumed a checkpoint or
// not (identical seeds give identical initial parameters already; this
// makes it a fact, not an assumption). It returns rank 0's step and cursor.
func syncState(w World, params []*ts.Tensor, opt *Optimizer, step int, cursor int64) (int, int64, error) {
	state := opt.State()
	xs := append([]*ts.Tensor{}, params...)
	byName := map[string]*ts.Tensor{}
	for _, n := range state {
		xs = append(xs, n.Tensor)
		byName[n.Name] = n.Tensor
	}
	pos := ts.MustOfSlice([]int64{int64(step), cursor})
	defer pos.MustDrop()
	xs = append(xs, pos)
	var err error
	backend.NoGrad(func() { err = w.Broadcast(xs, 0) })
	if err != nil {
		return 0, 0, fmt.Errorf("train: making every rank start from rank 0's state: %w", err)
	}
	if err := opt.Load(byName); err != nil { // reads opt_t back into the update count
		return 0, 0, err
	}
	v := pos.Int64Values()
	return int(v[0]), v[1], nil
}

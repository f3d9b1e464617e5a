package backend

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Scope owns the tensors made during one unit of work (a forward pass, a
// training step) and frees their C memory at once when the work is done.
// gotch tensors hold libtorch memory that Go's collector does not see, so
// relying on finalizers alone lets memory grow under load. Freeing a Go
// handle is safe even while autograd still needs the tensor: libtorch's
// graph keeps its own reference.
type Scope struct {
	owned []*ts.Tensor
}

// T takes ownership of t and returns it, so calls can be wrapped inline.
func (s *Scope) T(t *ts.Tensor) *ts.Tensor {
	s.owned = append(s.owned, t)
	return t
}

// Len is the number of tensors the scope will free.
func (s *Scope) Len() int { return len(s.owned) }

// Free drops every owned tensor; the scope can be reused afterwards.
func (s *Scope) Free() {
	for i, t := range s.owned {
		if t != nil {
			t.MustDrop()
		}
		s.owned[i] = nil
	}
	s.owned = s.owned[:0]
}

// Float64s copies t's values to host memory as float64 (a device sync for a
// GPU tensor). Use it instead of gotch's Float64Values, which leaves its
// float64 copy of the tensor to a finalizer: one handle per call that only the
// garbage collector frees.
func Float64s(t *ts.Tensor) []float64 {
	var s Scope
	defer s.Free()
	c := s.T(t.MustTotype(gotch.Double, false))
	if c.MustDevice() != gotch.CPU {
		c = s.T(c.MustTo(gotch.CPU, false))
	}
	n := c.Numel()
	v := make([]float64, n)
	c.MustCopyData(v, n)
	return v
}

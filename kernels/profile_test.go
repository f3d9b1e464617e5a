package kernels

import (
	"testing"

	"github.com/reproml/albert/backend"
)

// The profile sees ATen ops, autograd nodes and kernel entry points, with
// exact call counts, and self time never above total time.
func TestProfileCountsOps(t *testing.T) {
	defer need(t)()
	var s backend.Scope
	defer s.Free()
	x := leaf(&s, 1, 4, 8)
	w := leaf(&s, 1, 3, 8)
	b := leaf(&s, 1, 3)
	if err := ProfileStart(); err != nil {
		t.Fatal(err)
	}
	if err := ProfileStart(); err == nil {
		t.Fatal("a second ProfileStart did not fail")
	}
	NewPass()
	for range 3 {
		y := s.T(must(Linear(x, w, b)))
		s.T(y.MustRelu(false))
	}
	stats, err := ProfileStop()
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int64{}
	for _, st := range stats {
		calls[st.Name] = st.Calls
		if st.Self > st.Total || st.Self < 0 {
			t.Errorf("%s: self %v, total %v", st.Name, st.Self, st.Total)
		}
	}
	if calls["albert::linear"] != 3 || calls["aten::relu"] != 3 || calls["aten::addmm"] != 3 {
		t.Fatalf("calls: albert::linear %d, aten::relu %d, aten::addmm %d; want 3 each (all: %v)",
			calls["albert::linear"], calls["aten::relu"], calls["aten::addmm"], calls)
	}
	if _, err := ProfileStop(); err == nil {
		t.Fatal("ProfileStop without a profile did not fail")
	}
	// A new profile starts empty.
	if err := ProfileStart(); err != nil {
		t.Fatal(err)
	}
	stats, err = ProfileStop()
	if err != nil || len(stats) != 0 {
		t.Fatalf("empty profile: %d lines, err %v", len(stats), err)
	}
}

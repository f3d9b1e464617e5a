package backend

import (
	"reflect"
	"testing"
)

func TestSetEnvReplacesOrAppends(t *testing.T) {
	env := []string{"A=1", "LD_PRELOAD=/x.so", "B=2"}
	got := setEnv(setEnv(env, "LD_PRELOAD=/t.so:/x.so"), "OMP_WAIT_POLICY=PASSIVE")
	want := []string{"A=1", "LD_PRELOAD=/t.so:/x.so", "B=2", "OMP_WAIT_POLICY=PASSIVE"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("setEnv: %q, want %q", got, want)
	}
}

func TestMallocReadsLDPreload(t *testing.T) {
	t.Setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4")
	if got := Malloc(); got != "tcmalloc" {
		t.Errorf("Malloc() = %q with tcmalloc preloaded", got)
	}
	t.Setenv("LD_PRELOAD", "")
	if got := Malloc(); got != "glibc" {
		t.Errorf("Malloc() = %q without a preload", got)
	}
}

package main

import (
	"testing"

	"github.com/reproml/albert/internal/exptest"
)

// The end-to-end tests share one exp binary (exptest.Exp), removed at the end.
func TestMain(m *testing.M) { exptest.Main(m) }

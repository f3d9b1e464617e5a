// Package native holds the C++ source of the c10d binding
// (cpp/albert_dist.cpp), embedded so that torchbuild (no cgo, no gotch)
// can compile it into libalbert_dist.so wherever it builds the torch
// wrapper. The Go side is package distributed.
package native

import _ "embed"

// Source is cpp/albert_dist.cpp.
//
//go:embed cpp/albert_dist.cpp
var Source []byte

// Library is the file name torchbuild gives the compiled binding, next to
// libtch.so; package distributed opens it by this name.
const Library = "libalbert_dist.so"

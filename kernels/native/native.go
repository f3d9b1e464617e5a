// Package native holds the C++ source of the fused CPU kernels, embedded so
// that torchbuild (which has no cgo and no gotch) can compile it into
// libalbert_kernels.so wherever it builds the torch wrapper, the GPU machine
// included. The Go side is package kernels.
package native

import _ "embed"

// Source is cpp/albert_kernels.cpp.
//
//go:embed cpp/albert_kernels.cpp
var Source []byte

// Library is the file name torchbuild gives the compiled kernels, next to
// libtch.so; package kernels opens it by this name.
const Library = "libalbert_kernels.so"

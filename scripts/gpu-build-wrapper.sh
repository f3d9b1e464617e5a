#!/usr/bin/env bash
# Rebuild the torch wrapper (libtch.so) on a machine that has a C++ compiler and
# a libtorch (e.g. a CUDA PyTorch) but no Go, and print how to run exp against it.
#
# On the Go machine:   make gpu-bundle          (writes build/gpu: exp, torchbuild, gotch's libtch sources, this script)
# On the GPU machine:  eval "$(build/gpu/gpu-build-wrapper.sh)"; build/gpu/exp doctor
#
# The exp binary links only libtch.so, whose C API is gotch's and fixed, so the
# same binary runs against a wrapper rebuilt here. LIBTORCH defaults to the
# torch/ folder of python3's PyTorch.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${LIBTORCH:-}" ]; then
  LIBTORCH=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))') || {
    echo "gpu-build-wrapper: set LIBTORCH to a libtorch or PyTorch torch/ folder" >&2; exit 1; }
fi
lib=$("$here/torchbuild" -gotch-src "$here/gotch" -gotch-version v0.9.1 -no-go-module \
      -libtorch "$LIBTORCH" -out "$here/torch" -print-lib)
echo "export LD_LIBRARY_PATH=$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"

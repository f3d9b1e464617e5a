# The two commands a user needs:
#   make run    set up, build, and run the sharing ablation (paper Table 4) on the CPU profile
#   make test   set up and run the test suite
# LIBTORCH=/path selects another libtorch (a libtorch zip or a PyTorch torch/ folder).

SHELL    := /bin/bash
GO       ?= go
LIBTORCH ?= /usr
EXP      := bin/exp
DB       ?= out/exp.db

# Debian packages a fresh Debian 12 machine lacks. OpenBLAS (OpenMP build) replaces
# the reference BLAS that libtorch would otherwise load (about 40x slower here).
# tcmalloc, which exp preloads, keeps a training run's peak RSS flat (glibc's
# malloc fragments under libtorch's large short-lived tensors).
# chromium: the headless browser that loads `exp report`'s HTML in the tests.
APT_PACKAGES := g++ libopenblas0-openmp libtcmalloc-minimal4 sentencepiece chromium
# libgloo-dev: Gloo's headers. Debian's libtorch ships ProcessGroupGloo.hpp,
# which includes them, but not them (exp run --nproc, docs/DISTRIBUTED.md).
ifeq ($(LIBTORCH),/usr)
APT_PACKAGES += libtorch-dev libgloo-dev
endif

.PHONY: setup apt torch corpus build run test test-slurm slurm-apt bench bench-setup doctor clean gpu-bundle

## setup: idempotent; a second run checks and returns in seconds
setup: apt torch corpus

apt:
	@command -v $(GO) >/dev/null || { echo "setup: Go 1.26+ is required (https://go.dev/dl)"; exit 1; }
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The native torch wrapper (libtch.so), the patched gotch module and go.work;
# cached by (gotch version, libtorch, compiler) under build/torch.
torch: apt
	@GOWORK=off $(GO) build -o bin/torchbuild ./cmd/torchbuild
	@LIBTORCH=$(LIBTORCH) bin/torchbuild

corpus: build
	@$(EXP) data fetch

build: torch
	@$(GO) build -o $(EXP) ./cmd/exp

# Two one-thread runs at a time use 2 cores better than one two-thread run.
JOBS ?= $(shell nproc)

# Ends with the report page of everything in the database: out/report/index.html.
run: setup build
	$(EXP) run ablations/sharing.toml --db $(DB) --jobs $(JOBS)
	$(EXP) table sharing --db $(DB)
	$(EXP) report --db $(DB)

# The real-cluster Slurm test runs in test-slurm (which .ci/run calls), not twice.
test: setup
	OMP_WAIT_POLICY=PASSIVE $(GO) test -count=1 -timeout 60m -skip '^TestSlurmSweep' ./...

# A real single-node Slurm (munged, slurmctld, slurmd started by the test, no
# systemd) runs a tiny sweep with a preemption (about 2-3 minutes) and the 24-run sharing
# sweep at 50 steps against exp run (13 minutes on 2 loaded cores): docs/SLURM.md.
SLURM_PACKAGES := munge slurmctld slurmd slurm-client

slurm-apt:
	@missing=""; for p in $(SLURM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "test-slurm: installing$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

test-slurm: setup slurm-apt
	OMP_WAIT_POLICY=PASSIVE ALBERT_THREADS=1 $(GO) test -count=1 -timeout 45m -v -run '^(TestSlurmSweep|TestCluster)' ./slurm/...

# The PyTorch-eager side of `exp bench --vs-pytorch`: Debian's python3-torch,
# the same libtorch and OpenBLAS as ours.
bench-setup: setup
	@dpkg-query -W -f='$${Status}' python3-torch 2>/dev/null | grep -q "ok installed" || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends python3-torch >/dev/null; }

bench: bench-setup build
	$(EXP) bench --vs-pytorch

doctor: build
	@$(EXP) doctor

# Everything the GPU machine needs to rebuild the wrapper and run exp there
# (it has gcc, CUDA and PyTorch but no Go): see scripts/gpu-build-wrapper.sh.
# train.test: the train package's tests, for gpu-bench.sh's precision check.
gpu-bundle: build
	@rm -rf build/gpu && mkdir -p build/gpu/gotch
	@CGO_ENABLED=0 GOWORK=off $(GO) build -o build/gpu/torchbuild ./cmd/torchbuild
	@cp $(EXP) build/gpu/exp
	@$(GO) test -c -o build/gpu/train.test ./train
	@mkdir -p build/gpu/gotch/libtch && cp $$(GOWORK=off $(GO) list -m -f '{{.Dir}}' github.com/sugarme/gotch)/libtch/*.{h,cpp} build/gpu/gotch/libtch/ && chmod -R u+w build/gpu/gotch
	@cp scripts/gpu-build-wrapper.sh scripts/gpu-bench.sh bench/reference.py build/gpu/
	@echo "gpu-bundle: build/gpu ($$(du -sh build/gpu | cut -f1)); carry it and run build/gpu/gpu-build-wrapper.sh"

clean:
	rm -rf bin build/gpu

# Two commands on a fresh machine: `make demo` and `make test`.
# Everything installs into .venv at the repo root from the exact pins in requirements.txt.

PYTHON ?= python3.11
VENV := .venv
PY := $(CURDIR)/$(VENV)/bin/python
STAMP := $(VENV)/.installed
PROJECTS := glagcn drag zerocopy-gcn
PROJECT_MANIFESTS := $(wildcard shared/pyproject.toml glagcn/pyproject.toml drag/pyproject.toml zerocopy-gcn/pyproject.toml)
ARGS ?=
# pytest workers for `make test` (auto: one per CPU; the suite is mostly process start-up and
# single-threaded steps, so 2 CPUs finish it in about two thirds of the serial time)
TEST_WORKERS ?= auto

.PHONY: setup demo test lint clean train-glagcn evaluate-glagcn bench-glagcn train-drag bench-drag \
	train-zerocopy bench-zerocopy bench help gpu-check gpu-wheels

help:
	@echo "make demo            set up .venv and run every project's main job on synthetic data"
	@echo "make test            set up .venv and run the whole test suite"
	@echo "make train-glagcn    GLA-GCN training   (ARGS='+experiment=h36m_gt_243 ...')"
	@echo "make train-drag      DRAG: all stages   (ARGS='...')"
	@echo "make bench-zerocopy  zero-copy gather and training benchmarks"
	@echo "make bench           all benchmarks; make lint (ruff check + format --check); make clean"
	@echo "make gpu-check       on a lent CUDA machine, offline, <= 9 min: GPU tests + benchmarks -> OUT=DIR"
	@echo "make gpu-wheels      where PyPI is reachable: wheels for gpu-check into gpu-wheels/"

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt $(PROJECT_MANIFESTS)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	$(VENV)/bin/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e shared \
		$(foreach p,$(PROJECTS),$(if $(wildcard $(p)/pyproject.toml),-e $(p)))
	touch $(STAMP)

# Run a target of a project's own Makefile, or say the project is not built yet.
define project
	@if [ -f $(1)/Makefile ]; then \
		$(MAKE) --no-print-directory -C $(1) $(2) PY=$(PY) ARGS='$(ARGS)'; \
	else \
		echo "$(1): not built yet"; \
	fi
endef

demo: $(STAMP)
	$(call project,glagcn,demo)
	$(call project,drag,demo)
	$(call project,zerocopy-gcn,demo)

# Lint first: a formatting slip fails in a second, not after the whole suite.
# One torch/OpenMP thread per worker: the workers are the parallelism, and two workers of two
# spinning threads each on two cores made a 6 s test take 111 s.
test: lint
	OMP_NUM_THREADS=1 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

train-glagcn: $(STAMP)
	$(call project,glagcn,train)

evaluate-glagcn: $(STAMP)
	$(call project,glagcn,evaluate)

bench-glagcn: $(STAMP)
	$(call project,glagcn,bench)

train-drag: $(STAMP)
	$(call project,drag,train)

bench-drag: $(STAMP)
	$(call project,drag,bench)

train-zerocopy: $(STAMP)
	$(call project,zerocopy-gcn,train)

bench-zerocopy: $(STAMP)
	$(call project,zerocopy-gcn,bench)

bench: bench-glagcn bench-drag bench-zerocopy

# GPU check: one command of at most 9 minutes on a lent GPU machine, from that machine's own
# Python (GPU_PYTHON, default python3: the lent image has 3.12 with torch and CuPy), straight from
# the sources, without .venv.  It first installs what that Python lacks from $(GPU_WHEELS)/ (made
# by `make gpu-wheels` where PyPI is reachable; carry it along) into $(GPU_SITE)/, offline, in at
# most 30 s; the check itself keeps to its 490 s budget, and `timeout` ends it at 500 s.  The
# report is rewritten into $(OUT) after every phase: `make gpu-check OUT=$$OUT` on a lent
# machine.  `make gpu-check ARGS=--dry-run` shows the plan and budget on any machine.
GPU_PYTHON ?= python3
GPU_WHEELS ?= gpu-wheels
GPU_SITE ?= .gpu-site
GPU_PYTHON_VERSION ?= 3.12
GPU_PLATFORMS ?= manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64
OUT ?= outputs/gpu-check

gpu-check:
	@if [ -d "$(GPU_WHEELS)" ] && ! echo "$(ARGS)" | grep -q -- --dry-run; then \
		PYTHONPATH=$(CURDIR) timeout 30 $(GPU_PYTHON) -m gpucheck.wheels install $(GPU_WHEELS) --target $(GPU_SITE) \
			|| echo "offline wheel install did not finish; going on without it"; \
	fi
	@PYTHONPATH=$(CURDIR):$(CURDIR)/shared/src:$(CURDIR)/glagcn/src:$(CURDIR)/drag/src:$(CURDIR)/zerocopy-gcn/src:$(CURDIR)/$(GPU_SITE) \
		timeout --kill-after=8 500 $(GPU_PYTHON) -m gpucheck --out "$(OUT)" $(ARGS)

gpu-wheels: $(STAMP)
	$(PY) -m gpucheck.wheels download $(GPU_WHEELS) --python-version $(GPU_PYTHON_VERSION) \
		$(foreach p,$(GPU_PLATFORMS),--platform $(p))

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -exec rm -rf {} +
	rm -rf $(foreach p,$(PROJECTS),$(p)/outputs $(p)/multirun)

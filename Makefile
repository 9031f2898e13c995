# Two entry points: `make demo` (the main job, offline) and `make test` (the test suite).
# Both create .venv on first use and install the pinned dependencies; running them again
# reuses what is installed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.matloop-installed
DEMO_OUT ?= runs/demo
DEMO_QUERY ?= Find stable ternary oxides in the Ba-Ti-O system for dielectrics
PYTEST_ARGS ?=

.PHONY: install demo test test-fast browser clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,workflows]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/matloop campaign "$(DEMO_QUERY)" --yes --max-evaluations 40 --max-iterations 2 --out $(DEMO_OUT)

# Browser tests (report rendering, web app) drive Debian's Chromium; install it when we can
# (root with apt), otherwise those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1; } \
	  || echo "chromium is not installed: browser tests will be skipped (apt-get install chromium)"

test: $(STAMP) browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache

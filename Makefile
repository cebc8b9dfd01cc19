# craftnet: two commands on a fresh machine (Python 3.11): `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
STAMP_FUZZ := $(VENV)/.installed-fuzz

ASSETS := node/web/assets
ASSETS_STAMP := $(ASSETS)/node_modules/.package-lock.json

.PHONY: run test bench lab lint clean browser assets fuzz compiler

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN) assets
	$(BIN)/craftnet serve --demo

test: $(STAMP_TEST) browser assets compiler
	$(BIN)/python -m pytest -q

# The browser libraries the hub serves itself (three.js; axe-core for the tests), from the
# npm registry at the versions package-lock.json pins: nothing is copied in by hand.
assets: $(ASSETS_STAMP)
$(ASSETS_STAMP): $(ASSETS)/package.json $(ASSETS)/package-lock.json
	@command -v npm >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm)
	npm ci --prefix $(ASSETS) --no-audit --no-fund
	touch $@

# The web UI's browser tests drive Debian's chromium (never `playwright install`).
browser:
	@test -x /usr/bin/chromium || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# simnet's compiled mode (mypyc) needs a C compiler; its tests build it once per version.
compiler:
	@command -v cc >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y gcc)
	@$(PYTHON) -c "import os, sysconfig; assert os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h'))" 2>/dev/null \
		|| (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-dev)

$(STAMP_FUZZ): pyproject.toml $(STAMP_TEST)
	$(BIN)/python -m pip install --quiet -e '.[test,fuzz]'
	touch $@

# Coverage-guided fuzzing (atheris): FUZZ_RUNS inputs per decoder, each target starting
# from a copy of its committed seed corpus (tests/fuzz/corpus/) in build/fuzz/corpus/.
# Not part of `make test`, which replays the seeds and past crashes only.
FUZZ_RUNS ?= 100000
FUZZ_TARGETS := identifiers record frame car crdt_op
fuzz: $(STAMP_FUZZ)
	for t in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/corpus/$$t && cp tests/fuzz/corpus/$$t/* build/fuzz/corpus/$$t/ && \
		$(BIN)/python tests/fuzz/run.py $$t -runs=$(FUZZ_RUNS) -rss_limit_mb=2048 \
			-print_final_stats=1 build/fuzz/corpus/$$t || exit 1; \
	done
	$(BIN)/python tests/fuzz/run.py --summary

bench: $(STAMP_TEST) compiler
	$(BIN)/python -m pytest -q -s tests/bench -p no:cacheprovider

# The long lab run (docs/lab.md): 10 real hubs, >= 100 restarts; tens of minutes.
LAB_OUT ?= build/lab-$(shell date +%Y%m%d-%H%M%S)
lab: $(STAMP_RUN)
	$(BIN)/craftnet lab run long --out $(LAB_OUT)

# mypy --strict checks all six packages and the root (errors, tomlcheck). It cannot
# follow the editable install's import hook, so it checks a tree of symlinks laid out as
# the installed package.
TYPECHECK := build/typecheck
lint: $(STAMP_TEST)
	$(BIN)/ruff check .
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/craftnet
	for f in craftnet/*.py craftnet/py.typed; do ln -s "$(CURDIR)/$$f" $(TYPECHECK)/craftnet/; done
	for d in identity archive protocol node simnet cli; do ln -s "$(CURDIR)/$$d" $(TYPECHECK)/craftnet/$$d; done
	MYPYPATH=$(TYPECHECK) $(BIN)/mypy --strict -p craftnet

clean:
	rm -rf $(VENV) build *.egg-info $(ASSETS)/node_modules

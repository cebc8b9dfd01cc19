# craftnet: two commands on a fresh machine (Python 3.11): `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: run test bench lab lint clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	$(BIN)/craftnet serve --demo

test: $(STAMP_TEST) browser
	$(BIN)/python -m pytest -q

# The web UI's browser tests drive Debian's chromium (never `playwright install`).
browser:
	@test -x /usr/bin/chromium || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

bench: $(STAMP_TEST)
	$(BIN)/python -m pytest -q -s tests/bench -p no:cacheprovider

# The long lab run (docs/lab.md): 10 real hubs, >= 100 restarts; tens of minutes.
LAB_OUT ?= build/lab-$(shell date +%Y%m%d-%H%M%S)
lab: $(STAMP_RUN)
	$(BIN)/craftnet lab run long --out $(LAB_OUT)

# mypy cannot follow the editable install's import hook, so it checks a tree of
# symlinks laid out as the installed package.
TYPECHECK := build/typecheck
lint: $(STAMP_TEST)
	$(BIN)/ruff check .
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/craftnet
	for f in craftnet/*.py craftnet/py.typed; do ln -s "$(CURDIR)/$$f" $(TYPECHECK)/craftnet/; done
	for d in identity archive protocol node simnet cli; do ln -s "$(CURDIR)/$$d" $(TYPECHECK)/craftnet/$$d; done
	MYPYPATH=$(TYPECHECK) $(BIN)/mypy --strict -p craftnet.identity -p craftnet.archive -p craftnet.protocol

clean:
	rm -rf $(VENV) build *.egg-info

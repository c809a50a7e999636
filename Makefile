# Two commands on a fresh machine: `make demo` and `make test` (Python 3.11 and pip only).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all]"
	touch $(STAMP)

venv: $(STAMP)

# The memo is the run just made (re-created from its run.json: the same numbers as its summary.csv);
# the sensitivity analysis is a smaller run of its own, labelled as such in the memo.
demo: $(STAMP)
	$(BIN)/sibsim run scenarios/utrecht_colour_kitchen.toml --paths 100000 --seed 2015 --out out/colour_kitchen
	$(BIN)/sibsim report out/colour_kitchen --sensitivity --sensitivity-paths 10000 --out out/colour_kitchen_memo.html
	$(BIN)/sibsim report out/colour_kitchen --sensitivity --sensitivity-paths 10000 --lang nl --out out/colour_kitchen_memo_nl.html

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) out build *.egg-info

# `make run`: set up .venv and run the whole pipeline (dvc repro) on the default params.
# `make test`: set up .venv and run the test suite.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed
# dvc.yaml's commands call `python`: the venv's bin must come first on PATH
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: venv run test bench clean

$(STAMP): pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: a loose requirement would pull a multi-GB CUDA build
	$(VENV)/bin/pip install -r requirements.txt
	$(VENV)/bin/pip install -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/dvc repro

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) dvc_plots .pytest_cache

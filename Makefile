# The two commands of the README:
#   make run    set up .venv (first time) and train the default model on the embedded stimuli
#   make test   set up .venv (first time) and run the test suite
# Pass arguments to the trainer with ARGS, e.g.  make run ARGS="model=bl dataset.level=heavy"
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint info clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,torch]'
	@rm -f $(VENV)/.installed-*
	@touch $@

run: $(STAMP)
	$(BIN)/recbench $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check recbench tests scripts

info: $(STAMP)
	$(BIN)/recbench-info $(ARGS)

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache

# The two commands of the README:
#   make run    set up .venv (first time) and train the default model on the embedded stimuli
#   make test   set up .venv (first time) and run the test suite
# and the benchmark against its PyTorch references:
#   make bench  set up .venv with torch (first time) and run recbench-bench (recbench vs PyTorch, docs/performance.md §10)
# Pass arguments to the trainer with ARGS, e.g.  make run ARGS="model=bl dataset.level=heavy"
#
# Each command installs what it needs and nothing more: `make run` the package alone (no torch, whose CUDA
# wheels are several GB), `make test` the dev and torch extras too, `make bench` torch. What is installed is
# recorded by one stamp per part (base = the package and its dependencies, then one per extra), keyed on
# pyproject.toml's checksum, so `make run` after `make test` installs nothing and `make test` after `make run`
# installs only the extras. pip's output goes to $(LOG); it is printed only when the installation fails.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOG := $(VENV)/install.log
KEY := $(shell cksum < pyproject.toml | cut -d' ' -f1)

# $(call setup,EXTRAS): install the package with the (space-separated) EXTRAS unless every part has a stamp;
# one pip call for all the missing parts, quiet on the console.
define setup
	@set -e; key=$(KEY); need=; extras=; \
	for part in base $(1); do \
	  test -f "$(VENV)/.installed-$$key-$$part" && continue; \
	  need="$$need $$part"; test "$$part" = base || extras="$${extras:+$$extras,}$$part"; \
	done; \
	test -n "$$need" || exit 0; \
	case " $$need " in \
	  *" base "*) echo "recbench: installing the pinned stack$${extras:+ with $$extras} into $(VENV) (first run only; log: $(LOG))";; \
	  *) echo "recbench: adding $$extras to $(VENV) (log: $(LOG))";; \
	esac; \
	fresh=; test -x "$(BIN)/python" || { $(PYTHON) -m venv "$(VENV)"; fresh=1; }; \
	if { if test -n "$$fresh"; then "$(BIN)/python" -m pip install --upgrade pip; fi && \
	     "$(BIN)/python" -m pip install -e ".$${extras:+[$$extras]}"; } > "$(LOG)" 2>&1; then :; else \
	  cat "$(LOG)" >&2; echo "recbench: installation failed (log above; also in $(LOG))" >&2; exit 1; \
	fi; \
	for f in "$(VENV)"/.installed-*; do case "$$f" in *"/.installed-$$key-"*) ;; *) rm -f "$$f";; esac; done; \
	for part in $$need; do touch "$(VENV)/.installed-$$key-$$part"; done
endef

.PHONY: run test bench lint info clean

run:
	$(call setup,)
	$(BIN)/recbench $(ARGS)

test:
	$(call setup,dev torch)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench:
	$(call setup,torch)
	$(BIN)/recbench-bench $(ARGS)

lint:
	$(call setup,dev)
	$(BIN)/ruff check recbench tests scripts

info:
	$(call setup,)
	$(BIN)/recbench-info $(ARGS)

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache

# Two commands matter: `make run` and `make test`. Both build .venv from a fresh clone first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# Serves the API with chalice's local server on an embedded moto DynamoDB (see infra/local_server.py).
run: $(STAMP)
	$(BIN)/python infra/local_server.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Filtered lists against a full-table Scan on moto (bench/lists.py); BENCH_SIZES=1000 for a quick run.
bench: $(STAMP)
	$(BIN)/python -m bench.lists

clean:
	rm -rf $(VENV) .pytest_cache

# Two commands matter: `make run` and `make test`. Both build .venv from a fresh clone first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP    := $(VENV)/.bench-installed
BENCH_PACKAGES := 'langchain-community==0.4.2' 'langchain-core==1.8.3'

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

# Benchmarks on moto: filtered lists against a full-table Scan (bench/lists.py; BENCH_SIZES=1000 for a
# quick run), then conversation history against langchain-community's one-item-per-session history
# (bench/history.py).
bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m bench.lists
	$(BIN)/python -m bench.history

# langchain-community is for bench/history.py's comparison only: never a runtime or test dependency,
# so it is not in pyproject.toml. It goes into .venv under its own stamp, constrained to the versions
# already installed (pip freeze), so it can add packages but never upgrade or downgrade one the
# service and its tests rely on (pydantic v2, boto3, moto ...); pip fails instead.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable > $(VENV)/.bench-constraints.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		--constraint $(VENV)/.bench-constraints.txt $(BENCH_PACKAGES)
	touch $(BENCH_STAMP)

clean:
	rm -rf $(VENV) .pytest_cache

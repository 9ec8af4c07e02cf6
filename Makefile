# Two commands: `make serve` (set up, then run the server on the demo models) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup serve lint browser test bench bench-replicas clean

setup: $(STAMP)
	$(BIN)/pointsman demo-models

# reinstall only when the dependency list changes
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[export,dev]"
	touch $@

serve: setup
	$(BIN)/pointsman serve --host 127.0.0.1 --http-port 8000 --grpc-port 8001 --metrics-port 8002

# ruff's rules are in pyproject.toml; CI runs lint through `make test`
lint: $(STAMP)
	$(BIN)/ruff check .

# the console's browser tests drive Debian's chromium through chromium-driver (installed when missing)
browser:
	bash tests/console/install_browser.sh

# tests/postgres/start_postgres.sh starts (or installs) a local PostgreSQL, idempotently, and
# prints the URL of the tests' database: the replica and PostgreSQL store tests need it
test: setup lint browser
	url="$$(bash tests/postgres/start_postgres.sh)" && POINTSMAN_TEST_DATABASE_URL="$$url" $(BIN)/pytest -q

# the quick benchmarks, each against its baseline in the same run (see README for the rest)
bench: setup
	$(BIN)/python -m pointsman.loadtests.bench_selection
	$(BIN)/python -m pointsman.loadtests.bench_serving
	$(BIN)/python -m pointsman.loadtests.bench_engine

# usage records from two replicas on PostgreSQL against two on SQLite, under locust (docs/replicas.md)
bench-replicas: setup
	url="$$(bash tests/postgres/start_postgres.sh)" && $(BIN)/python -m pointsman.loadtests.bench_replicas --database-url "$$url"

clean:
	rm -rf $(VENV) build .pointsman reports model_repository/gpt2 model_repository/distilgpt2 model_repository/codegen \
		model_repository/gpt2_stream model_repository/distilgpt2_stream model_repository/codegen_stream

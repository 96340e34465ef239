# x-reco: two commands on a fresh machine — `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export PYTHONUNBUFFERED := 1
DEMO_PARTITION ?= synthetic
# pytest-xdist workers for `make test` (one per core of the 2-core CI machine).
TEST_WORKERS ?= 2

.PHONY: install lock demo test test-slow test-services test-gpu ui bench bench-full clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	# MovieLens-100K ships inside the RecBole wheel; its dependencies (torch, ray) are not needed.
	$(BIN)/pip install -q --no-deps recbole==1.2.1
	@touch $(STAMP)

install: $(STAMP)

# Re-pin requirements.lock to what the venv resolved (run after changing dependencies, then test).
lock: $(STAMP)
	@{ echo "# Exact versions that x-reco was tested with, used as pip constraints by \`make install\`."; \
	  echo "# Regenerate with \`make lock\` after changing pyproject.toml dependencies."; \
	  $(BIN)/pip freeze --exclude-editable | grep -iv '^x-reco=='; } > requirements.lock

# The instance's storage is created here, once: two first runs on a never-used DAGSTER_HOME race to
# create its SQLite schema (Dagster 1.13.27: `UNIQUE constraint failed: alembic_version`).
$(DAGSTER_HOME)/dagster.yaml: deploy/dagster.yaml $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	cp deploy/dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster instance migrate > /dev/null

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dg launch --job demo_job --partition $(DEMO_PARTITION)

# lint-imports checks the layer contracts in pyproject.toml ([tool.importlinter]) before the tests run.
test: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --durations=15

# The services the slow tests start themselves: a PostgreSQL server (tests/slow/test_postgres_instance.py)
# and headless Chromium (tests/slow/test_ui_browser.py). Debian packages, installed when missing.
test-services:
	@missing=""; \
	  { command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || missing="$$missing postgresql"; \
	  command -v chromium >/dev/null || missing="$$missing chromium chromium-driver"; \
	  if [ -z "$$missing" ]; then echo "test-services: postgresql and chromium present"; \
	  elif [ "$$(id -u)" != 0 ]; then echo "test-services: not root, not installing:$$missing (the slow tests that need them fail)"; \
	  else apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

test-slow: $(STAMP) test-services
	$(BIN)/python -m pytest -q -m slow

# Inference benchmark: raw.json, table.md and latency plots under bench_out/ (reduced CPU grid;
# `make bench-full` runs the spec grid, meant for a GPU machine).
BENCH_OUT ?= bench_out/$(shell hostname)
bench: $(STAMP)
	$(BIN)/python -m x_reco.bench --out $(BENCH_OUT)
	$(BIN)/python -m x_reco.bench.host --out $(BENCH_OUT)/host_assembly.json
	$(BIN)/python -m x_reco.bench.feed --out $(BENCH_OUT)
	$(BIN)/python -m x_reco.bench.training --out $(BENCH_OUT)

bench-full: $(STAMP)
	$(BIN)/python -m x_reco.bench --out $(BENCH_OUT)-full --full

test-gpu: $(STAMP)
	$(BIN)/python -m pytest -q -m gpu

ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dg dev

clean:
	rm -rf $(VENV) .dagster_home .pytest_cache .import_linter_cache

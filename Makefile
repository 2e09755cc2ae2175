# Two commands on a fresh machine (Python 3.11 and the package registries):
#   make run   - set up, then run the pipeline on the committed demo export
#   make test  - set up (including Chromium for the dashboard tests), then run every test
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test system-deps bench lint clean

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/clinic run

# What the tests need from Debian: Chromium drives the dashboard tests headless (no downloaded
# browser builds), and a Java runtime (17 or newer) runs Spark for the --engine spark tests.
system-deps:
	@command -v chromium >/dev/null && command -v java >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO apt-get install -y -qq chromium default-jre-headless >/dev/null; }

test: setup system-deps
	$(BIN)/ruff check pipelines dashboards tests benchmarks
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python -m benchmarks.run --scale $${SCALE:-M}

clean:
	rm -rf $(VENV) data/marts data/warehouse.duckdb data/dagster_home

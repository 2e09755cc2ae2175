# Two commands on a fresh machine (Python 3.11 and the package registries):
#   make run   - set up, then run the pipeline on the committed demo export
#   make test  - set up, add the test tools and pyspark (requirements-test.lock), Chromium and Java,
#                then run every test
#   make test-setup - only the test tools (then e.g. .venv/bin/python -m pytest -m "not slow")
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: setup test-setup run test system-deps bench lint clean

# The app: requirements.lock (no pyspark, no test tools; no Java needed).
$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	@echo "Setting up $(VENV): the pinned dependencies of requirements.lock (a minute or two the first time) ..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	@# setuptools warns that folders named like the packages take precedence: they are the packages.
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# The tests add requirements-test.lock: pytest and friends, playwright, pyspark (--engine spark).
$(TEST_STAMP): $(STAMP) requirements-test.lock
	@echo "Adding the test tools and pyspark (requirements-test.lock; a few minutes the first time) ..."
	$(BIN)/pip install --quiet -r requirements-test.lock
	touch $(TEST_STAMP)

setup: $(STAMP)

test-setup: $(TEST_STAMP)

run: setup
	$(BIN)/clinic run

# What the tests need from Debian: Chromium drives the dashboard tests headless (no downloaded
# browser builds), and a Java runtime (17 or newer) runs Spark for the --engine spark tests.
system-deps:
	@command -v chromium >/dev/null && command -v java >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO apt-get install -y -qq chromium default-jre-headless >/dev/null; }

# Every test, the slow, spark and browser ones included (`-m "not slow"` for a quick answer).
test: test-setup system-deps
	$(BIN)/ruff check pipelines dashboards tests benchmarks
	$(BIN)/python -m pytest -q

bench: test-setup  # it times --engine spark too (pyspark is in the test lock)
	$(BIN)/python -m benchmarks.run --scale $${SCALE:-M}

clean:
	rm -rf $(VENV) data/marts data/warehouse.duckdb data/dagster_home

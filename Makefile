# The single entry point. `make demo` and `make test` set up what they need first (once).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMPS := var/.stamps
MVN    := mvn -q -B -Dmaven.repo.local=$(CURDIR)/var/m2
PYTEST_ARGS ?=

export PYSPARK_PYTHON := $(CURDIR)/$(BIN)/python

.PHONY: help setup demo airflow dbt-docs test test-fast lint format bench kafka-start kafka-stop clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: $(STAMPS)/python $(STAMPS)/jars  ## Virtualenv + Python packages + JVM jars (skips what is done)

$(STAMPS)/python: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/python -m pip check
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/jars: jvm/spark/pom.xml jvm/kafka/pom.xml
	@command -v mvn >/dev/null || { echo "error: mvn not found (Maven resolves the JVM jars)"; exit 1; }
	rm -rf var/jars/spark var/jars/kafka
	cd jvm/spark && $(MVN) dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/var/jars/spark
	cd jvm/kafka && $(MVN) dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/var/jars/kafka
	@mkdir -p $(STAMPS) && touch $@

demo: setup  ## Run the platform end to end on the embedded default and print a summary
	$(BIN)/cdp demo

airflow: setup  ## Airflow's scheduler and UI (SQLite, LocalExecutor) in the foreground until Ctrl-C
	$(BIN)/cdp airflow

dbt-docs: setup  ## dbt docs of the gold marts, generated on the lake, at http://localhost:8080
	$(BIN)/cdp dbt-docs --serve

test: setup  ## All tests (unit, DAG integrity, integration with real Spark/Kafka/Airflow/dbt/GX)
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: setup  ## Only the fast tests
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

lint: setup  ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup  ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup  ## Benchmarks -> bench/results/ and docs/benchmarks.md
	$(BIN)/python -m bench.run

kafka-start: setup  ## Start the local Kafka broker
	$(BIN)/cdp kafka start

kafka-stop: setup  ## Stop the local Kafka broker
	$(BIN)/cdp kafka stop

clean:  ## Remove the lake, logs and state (keeps the virtualenv and jars)
	-$(BIN)/cdp kafka stop 2>/dev/null
	rm -rf var/lake var/landing var/exports var/airflow var/checkpoints var/kafka var/dbt

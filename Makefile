# fusioncast: `make run` runs the main job on the embedded default, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= data/demo
WORKDIR ?= fusioncast-output

export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: bootstrap run forecast test lint format bench clean

# The environment is (re)built whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

bootstrap: $(VENV)/.installed

## Generate the demo dataset and retrain on it under Prefect's temporary server; prints where the forecasts are.
run: bootstrap
	$(BIN)/fusioncast quickstart --data $(DATA) --workdir $(WORKDIR)

## Forecast again with the registered champion (no training).
forecast: bootstrap
	$(BIN)/fusioncast forecast --data $(DATA) --workdir $(WORKDIR)

## The whole test suite, two test files at a time (most tests wait on servers and child
## processes; on 2 cores this takes about 0.64x the time of one at a time).
test: bootstrap
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=20

lint: bootstrap
	$(BIN)/ruff check src flows tasks tests benchmarks deployments
	$(BIN)/ruff format --check src flows tasks tests benchmarks deployments

format: bootstrap
	$(BIN)/ruff format src flows tasks tests benchmarks deployments

## Every benchmark (benchmarks/text_encoder.py needs the pretrained extra: wordllama's bundled encoder).
bench: bootstrap
	$(BIN)/python -m pip install --quiet -e '.[dev,pretrained]'
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(WORKDIR) $(DATA)

# --- Running on a Prefect server (docs/deployment.md) -----------------------------------------------
.PHONY: prefect-local deploy serve browser test-deployments

## A Prefect server with its UI (http://127.0.0.1:4200), the deployments and a worker, in the foreground.
prefect-local: bootstrap
	test -e $(DATA) || $(BIN)/fusioncast demo --out $(DATA)
	scripts/prefect-local.sh

## Register the deployments of deployments/prefect.yaml on the server in PREFECT_API_URL.
deploy: bootstrap
	scripts/deploy.sh

## The single-process alternative: serve both flows on their schedules (PREFECT_API_URL set).
serve: bootstrap
	$(BIN)/python deployments/serve.py

## Install Chromium and playwright-core for the browser check of the Prefect UI (idempotent).
browser:
	scripts/install-browser.sh

## The PostgreSQL-backed server test and the browser check only.
test-deployments: bootstrap
	$(BIN)/python -m pytest -q tests/test_deployments.py tests/test_ui.py

# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 7071

.PHONY: venv node run test test-oldest-functions lint lint-python sim consent connector bench soak soak-events clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

## venv: create .venv and install runtime and development dependencies
venv: $(STAMP)

# Azurite (the local Azure Storage emulator), pinned in package.json + package-lock.json.
NODE_STAMP := node_modules/.installed

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## node: install the pinned npm tools (Azurite) into node_modules
node: $(NODE_STAMP)

## run: serve the function app on 127.0.0.1:$(PORT)/api (local simulator when no credentials are set,
##      Azurite when AzureWebJobsStorage is not set)
run: venv node
	PORT=$(PORT) $(BIN)/python -m gateway.devserver

## consent: the service user's one-time consent (sign in with MFA), stored in Key Vault
# Options: make consent CONSENT_ARGS="--port 8400 --no-browser" (python -m gateway.consent --help).
consent: venv
	$(BIN)/python -m gateway.consent $(CONSENT_ARGS)

## sim: run the local Entra ID + Partner Center simulator on its own
sim: venv
	$(BIN)/python -m simulator

## test: lint, type-check, infrastructure checks, the whole test suite, then the API tests on the oldest azure-functions
test: lint node
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory test-oldest-functions

# Started from a placeholder (Consumption, Flex Consumption), the Python worker runs the app on the
# azure-functions it bundles, not on the pinned one: the HTTP API's tests run on the oldest bundled
# one too, in a venv of its own (requirements.txt without its azure-functions pin).
OLDEST_VENV  := .venv-func122
OLDEST_STAMP := $(OLDEST_VENV)/.installed

$(OLDEST_STAMP): requirements.txt tests/e2e/requirements-oldest-functions.txt
	rm -rf $(OLDEST_VENV)
	$(PYTHON) -m venv $(OLDEST_VENV)
	grep -v '^azure-functions==' requirements.txt > $(OLDEST_VENV)/requirements-app.txt
	$(OLDEST_VENV)/bin/python -m pip install --quiet -r $(OLDEST_VENV)/requirements-app.txt -r tests/e2e/requirements-oldest-functions.txt
	touch $@

## test-oldest-functions: the HTTP API and host-rule tests on the oldest azure-functions the worker bundles
test-oldest-functions: $(OLDEST_STAMP)
	$(OLDEST_VENV)/bin/python -c "import azure.functions as f; print('azure-functions', f.__version__)"
	$(OLDEST_VENV)/bin/python -m pytest --quiet --no-header -p no:cacheprovider tests/e2e/test_api.py tests/e2e/test_host_rules.py

## lint: ruff, mypy and the infrastructure checks
lint: lint-python lint-infra

lint-python: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# >>> infrastructure checks (owned by infra/)
# checkov and pycep-parser 0.7.1 live in venvs of their own: checkov pins pycep-parser 0.5.1 (the
# same `pycep` package) and ~100 other packages. Installed once; the stamps skip it afterwards.
INFRA_VENV  := .venv-infra
PYCEP_VENV  := .venv-pycep
INFRA_STAMP := $(INFRA_VENV)/.installed
PYCEP_STAMP := $(PYCEP_VENV)/.installed

.PHONY: lint-infra

$(INFRA_STAMP): requirements-infra.txt
	rm -rf $(INFRA_VENV)
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet -r requirements-infra.txt
	touch $@

$(PYCEP_STAMP): tests/infra/requirements-pycep.txt
	rm -rf $(PYCEP_VENV)
	$(PYTHON) -m venv $(PYCEP_VENV)
	$(PYCEP_VENV)/bin/python -m pip install --quiet -r tests/infra/requirements-pycep.txt
	touch $@

## lint-infra: the templates against Azure's resource type definitions and the Flex Consumption rules, checkov on infra/ (no failed check, every file and resource scanned), pycep-parser 0.7.1 on every template, settings contract, pipeline files
lint-infra: venv $(INFRA_STAMP) $(PYCEP_STAMP)
	$(BIN)/python -m tests.infra.check_templates infra
	$(INFRA_VENV)/bin/python tests/infra/run_checkov.py infra
	$(PYCEP_VENV)/bin/python tests/infra/parse_bicep.py infra
	$(BIN)/python -m pytest --quiet --no-header tests/infra
# <<< infrastructure checks

## connector: regenerate the Power Automate connector's OpenAPI 2.0 definition from the code
connector: venv
	$(BIN)/python -m gateway.openapi --write connector/apiDefinition.swagger.json

## bench: the gateway against the naive way on the same simulated upstream (prints a table)
# Options: make bench BENCH_ARGS="--quick" (see python -m bench --help).
bench: venv node
	$(BIN)/python -m bench $(BENCH_ARGS)

## soak: 200 concurrent callers for 30 s through the local host, 1% injected faults
soak: venv node
	$(BIN)/python -m bench.soak

## soak-events: Partner Center events for 20 s through receiver, queue and callbacks, with 1% storage faults, failing callbacks and a host restart
soak-events: venv node
	$(BIN)/python -m bench.events_soak

clean:
	rm -rf $(VENV) .venv-* node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis

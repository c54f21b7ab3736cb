# One entry point per task. Virtual environments are rebuilt only when their lock changes.
PYTHON ?= python3.11
VENV := .venv
EMU_VENV := .venv-emulators
INFRA_VENV := .venv-infra
PIP_FLAGS := --quiet --disable-pip-version-check

.PHONY: install emulators infra-tools browser test unit lint tf-check access-audit demo bench stack-down clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/dev.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -c requirements/dev.lock -e '.[dev]'
	touch $@

# The BigQuery and Storage emulators live in their own environment: bqemulator pins its own
# google-cloud versions, which must not constrain the product's.
emulators: $(EMU_VENV)/.installed

$(EMU_VENV)/.installed: requirements/emulators.lock scripts/install_emulators.sh
	PYTHON=$(PYTHON) bash scripts/install_emulators.sh $(EMU_VENV)
	touch $@

# checkov and the google provider's schema bindings, for the offline Terraform checks.
infra-tools: $(INFRA_VENV)/.installed

$(INFRA_VENV)/.installed: requirements/infra-tools.lock
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/pip install $(PIP_FLAGS) -r requirements/infra-tools.lock
	touch $@

# Debian's Chromium, for the tests that look at pages as a person does (Playwright drives it;
# it never downloads a browser of its own).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; }
	@command -v chromium >/dev/null || { echo "chromium is required: apt-get install -y chromium" >&2; exit 1; }

lint: install
	$(VENV)/bin/ruff check shared functions tests scripts
	$(VENV)/bin/ruff format --check shared functions tests scripts
	$(VENV)/bin/lint-imports

# The offline Terraform verification on its own (it also runs inside `make test`).
tf-check: install infra-tools
	PYTHONPATH=scripts $(VENV)/bin/python -m tfcheck terraform

test: install emulators infra-tools browser lint
	$(VENV)/bin/pytest

# The access audit alone: the integration tests run the four functions behind the recording proxy,
# and their last test checks every recorded call against terraform/function_access.json
# (report in build/access-audit.txt). `make test` runs the same test.
access-audit: install emulators browser
	$(VENV)/bin/pytest tests/integration

unit: install
	$(VENV)/bin/pytest tests/unit

demo: install emulators
	$(VENV)/bin/python scripts/demo.py

bench: install emulators
	$(VENV)/bin/python scripts/bench.py

stack-down: install
	$(VENV)/bin/pharmaseg stack down

clean:
	rm -rf $(VENV) $(EMU_VENV) $(INFRA_VENV) .venv-functions .pytest_cache build *.egg-info shared/*.egg-info

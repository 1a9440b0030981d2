# Set-up and the two everyday commands: `make run` and `make test` (see README).
VENV := .venv
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
PYTHON ?= python3

.PHONY: run test quick

$(STAMP): pyproject.toml
	rm -f $(VENV)/.installed-*
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/fieldchat serve --demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	bash .ci/prepare
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider

# the inner loop while working: unit, integration (SQLite half) and contract tests. Compiled modules are cached in the
# venv even where the environment says not to write them (each test worker would compile everything again)
quick: $(STAMP)
	env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX=$(VENV)/pycache $(VENV)/bin/python -m pytest -q -p no:cacheprovider -m "not slow"

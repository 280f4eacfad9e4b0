# The appliance's commands. `make help` lists them; the README's two commands are `make run` and
# `make test`, and CI runs `make test` on a fresh Debian machine, so every install step is here.

SHELL := /bin/bash
PYTHON_SYSTEM ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
CONFIG ?=
DATA ?= var
PYTEST_ARGS ?=
# Debian packages the tests drive as real peers: DCMTK's storescu/findscu/getscu/movescu/storescp, a
# PostgreSQL server (the index must work on PostgreSQL as well as on SQLite), nginx (the box's site in
# front of appliance-web, with TLS), and Debian's chromium that Playwright drives for the console's
# browser tests (no browser download).
TEST_DEBIAN_PACKAGES := dcmtk postgresql nginx chromium fonts-dejavu-core
export TCP_NODELAY := 1

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this list of targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON_SYSTEM) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --require-hashes -r requirements.lock
	$(PYTHON) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the Python environment from the lock file

.PHONY: debian-packages
debian-packages: ## Install the Debian packages the tests use (as root, once)
	@missing=$$(for package in $(TEST_DEBIAN_PACKAGES); do dpkg -s $$package >/dev/null 2>&1 || echo $$package; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$$( [ $$(id -u) -eq 0 ] || echo sudo ) apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive $$( [ $$(id -u) -eq 0 ] || echo sudo ) apt-get install -y -qq $$missing >/dev/null; \
	fi

.PHONY: run
run: venv ## Run the whole appliance in the foreground (CONFIG=file, else development defaults in ./var)
	$(PYTHON) -m appliance.daemons.supervisor $(if $(CONFIG),--config $(CONFIG),--data $(DATA))

.PHONY: lint
lint: venv ## Lint and check formatting (ruff)
	$(VENV)/bin/ruff check appliance tests
	$(VENV)/bin/ruff format --check appliance tests

.PHONY: typecheck
typecheck: venv ## Type-check the package (mypy --strict)
	$(VENV)/bin/mypy appliance

.PHONY: test
test: debian-packages venv lint typecheck ## Install what the tests need, lint, type-check, run the suite, then build and boot-test the image
	$(PYTHON) -m pytest $(PYTEST_ARGS)
	$(MAKE) test-image

.PHONY: test-quick
test-quick: debian-packages venv lint typecheck ## Everything but the image (unit and integration tests, a few minutes)
	$(PYTHON) -m pytest $(PYTEST_ARGS)

.PHONY: bench
bench: debian-packages venv ## Run the benchmarks and print their figures (archive, worklist, HL7, console)
	@for script in tests/bench/bench_*.py; do echo "== $$script"; $(PYTHON) $$script || exit 1; done

.PHONY: fuzz
fuzz: debian-packages venv ## Fuzz the daemons' DICOM (and HL7) ports with malformed input and print the tallies
	@for script in tests/fuzz/fuzz_*.py; do echo "== $$script"; $(PYTHON) $$script || exit 1; done

.PHONY: config-reference
config-reference: venv ## Regenerate appliance/config/REFERENCE.md from the schema
	$(VENV)/bin/appliance config reference > appliance/config/REFERENCE.md

WEB := appliance/web
.PHONY: translations
translations: venv ## Extract the console's texts and update and compile the French catalogues
	@for folder in $(WEB) $$(ls -d $(WEB)/*/translations | xargs -n1 dirname); do \
		if [ "$$folder" = "$(WEB)" ]; then inputs="$$(ls $(WEB)/*.py) $(WEB)/templates"; else inputs="$$folder"; fi; \
		catalogue=$$folder/translations; \
		$(VENV)/bin/pybabel --quiet extract -F $(WEB)/babel.cfg -k lazy --no-location --sort-output --project="appliance console" --copyright-holder="" --msgid-bugs-address="" -o $$catalogue/messages.pot $$inputs || exit 1; \
		[ -f $$catalogue/fr/LC_MESSAGES/messages.po ] || $(VENV)/bin/pybabel --quiet init -l fr -i $$catalogue/messages.pot -d $$catalogue; \
		$(VENV)/bin/pybabel --quiet update -l fr -i $$catalogue/messages.pot -d $$catalogue --no-fuzzy-matching --ignore-pot-creation-date; \
		$(VENV)/bin/pybabel --quiet compile -d $$catalogue || exit 1; \
		rm $$catalogue/messages.pot; \
	done

.PHONY: clean
clean: ## Remove the development data folder and caches (not the venv)
	rm -rf $(DATA) .pytest_cache .mypy_cache .ruff_cache

-include image/image.mk

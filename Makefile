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
# browser tests (no browser download); NUT's upsd and dummy-ups driver for the UPS readings; an sshd
# the backup and tunnel tests start on loopback as the off-site repository's host and the bastion,
# and autossh; Orthanc as the remote PACS of the forwarding tests (started by the tests, never the
# system service); Pango for WeasyPrint's PDF and poppler's pdftoppm to look at its first page; node
# (20.19 or later, with its npm: NodeSource's package, as Debian 12's own nodejs 18 is too old for
# vite 7) that builds the viewer, dicom3tools' dciodvfy that checks the key-object documents the
# console makes, xmllint that checks Weasis manifests against Weasis's schema, and strace with which
# `make bench` counts the sync calls each archive makes per stored image, and what each makes durable.
TEST_DEBIAN_PACKAGES := dcmtk postgresql nginx chromium fonts-dejavu-core nut-server nut-client openssh-server openssh-client \
	autossh orthanc strace libpango-1.0-0 libpangoft2-1.0-0 poppler-utils nodejs dicom3tools libxml2-utils
# What pip needs to build borg 1.4 from its source (PyPI has no wheel of it): a C compiler and the
# headers of the libraries it links to.
BUILD_DEBIAN_PACKAGES := gcc python3-dev python3-venv pkg-config libacl1-dev liblz4-dev libzstd-dev libxxhash-dev libssl-dev
export TCP_NODELAY := 1

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this list of targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.lock requirements-borg-build.lock requirements-borg.lock pyproject.toml
	@$(MAKE) --no-print-directory build-packages
	$(PYTHON_SYSTEM) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --require-hashes -r requirements.lock
	$(PYTHON) -m pip install --quiet --require-hashes -r requirements-borg-build.lock
	$(PYTHON) -m pip install --quiet --require-hashes --no-build-isolation -r requirements-borg.lock
	$(PYTHON) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the Python environment from the lock file

.PHONY: build-packages
build-packages: ## Install the Debian packages the Python environment needs to build (as root, once)
	@missing=$$(for package in $(BUILD_DEBIAN_PACKAGES); do dpkg -s $$package >/dev/null 2>&1 || echo $$package; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$$( [ $$(id -u) -eq 0 ] || echo sudo ) apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive $$( [ $$(id -u) -eq 0 ] || echo sudo ) apt-get install -y -qq $$missing >/dev/null; \
	fi

.PHONY: debian-packages
debian-packages: ## Install the Debian packages the tests use (as root, once)
	@missing=$$(for package in $(TEST_DEBIAN_PACKAGES); do dpkg -s $$package >/dev/null 2>&1 || echo $$package; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$$( [ $$(id -u) -eq 0 ] || echo sudo ) apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive $$( [ $$(id -u) -eq 0 ] || echo sudo ) apt-get install -y -qq $$missing >/dev/null; \
	fi

# The console's built-in viewer (cornerstone3D), built with vite from viewer/package-lock.json by the
# machine's node and npm (`npm ci`: exactly the locked versions) into appliance/web/viewer/dist, which
# the console serves. Rebuilt only when the lock file or a source changes.
VIEWER_DIST := appliance/web/viewer/dist/.vite/manifest.json
VIEWER_SOURCES := viewer/package.json viewer/package-lock.json viewer/vite.config.js $(wildcard viewer/src/*)

$(VIEWER_DIST): $(VIEWER_SOURCES)
	@node -e 'const [major, minor] = process.versions.node.split(".").map(Number); process.exit(major > 20 || (major === 20 && minor >= 19) ? 0 : 1)' \
		|| { echo "the viewer needs node 20.19 or later (found $$(node --version)): install NodeSource's nodejs 20"; exit 1; }
	cd viewer && npm ci --no-audit --no-fund --loglevel=error && npx --no-install vite build --logLevel warn
	touch $@

.PHONY: viewer
viewer: $(VIEWER_DIST) ## Build the built-in viewer (npm ci + vite build, about 40 s)

.PHONY: run
run: venv viewer ## Run the whole appliance in the foreground (CONFIG=file, else development defaults in ./var)
	$(PYTHON) -m appliance.daemons.supervisor $(if $(CONFIG),--config $(CONFIG),--data $(DATA))

.PHONY: lint
lint: venv ## Lint and check formatting (ruff)
	$(VENV)/bin/ruff check appliance tests
	$(VENV)/bin/ruff format --check appliance tests

.PHONY: typecheck
typecheck: venv ## Type-check the package (mypy --strict)
	$(VENV)/bin/mypy appliance

.PHONY: test
test: debian-packages venv viewer lint typecheck ## Install what the tests need, lint, type-check, run the suite, then build and boot-test the image
	$(PYTHON) -m pytest $(PYTEST_ARGS)
	$(MAKE) test-image

.PHONY: test-quick
test-quick: debian-packages venv viewer lint typecheck ## Everything but the image (unit and integration tests, a few minutes)
	$(PYTHON) -m pytest $(PYTEST_ARGS)

.PHONY: bench
bench: debian-packages venv viewer ## Run the benchmarks and print their figures (archive, worklist, HL7, console, DICOMweb, viewer, backup, health)
	@for script in tests/bench/bench_*.py; do echo "== $$script"; $(PYTHON) $$script || exit 1; done

.PHONY: fuzz
fuzz: fuzz-dicom fuzz-hl7 ## Run the fuzzers against the real daemons and print their tallies

.PHONY: fuzz-dicom
fuzz-dicom: debian-packages venv ## Fuzz the archive's DICOM port: malformed PDUs and datasets, fixed seed; fails on a crash or a loss
	PYTHONPATH=. $(PYTHON) tests/fuzz/fuzz_dicom.py

.PHONY: fuzz-hl7
fuzz-hl7: venv ## Fuzz the HL7 listener: thousands of broken frames, fixed seed; fails on a crash or a bad value stored
	PYTHONPATH=. $(PYTHON) tests/fuzz/fuzz_hl7.py

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

# Mis-deposit recovery engine: developer entry points. Needs only python3, npm and make.
#
#   make install   virtualenv in .venv with the package and its dev extras; anvil from npm; the compiled catalogs
#   make run       the whole dev stack in the foreground (Temporal, anvils, worker, API)
#   make test      pytest (extra arguments: make test PYTEST_ARGS='-k devstack -x')
#   make bench     every bench/bench_*.py module, in order (extra arguments: BENCH_ARGS=...)
#   make screenshots  the engineers' guide's screenshots of the Temporal Web UI into docs/img (needs chromium)
#   make fee-report-screenshot  the finance guide's docs/img/fee-report.png (needs chromium)
#   make lint      ruff and mypy
#   make catalogs  re-extract the texts users read into messages.pot, update every language's .po, compile them
#   make clean     caches and install stamps;  make distclean  also .venv, node_modules and .data

PYTHON3 ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
PY_STAMP  := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
LOCKFILE  := $(wildcard package-lock.json)
PYTEST_ARGS ?=
BENCH_ARGS  ?=
LINT_PATHS = $(wildcard recovery store fees chains services workflows api cli devstack bench worker.py)

# Message catalogs (docs/i18n.md): the template is extracted from the code, each language's .po is its
# translation (kept in git), each .mo is compiled from it at install (a build artifact, ignored by git).
PYBABEL      := $(VENV)/bin/pybabel
CATALOG_DIR  := recovery/catalogs
POT_FILE     := $(CATALOG_DIR)/messages.pot
PO_FILES     := $(wildcard $(CATALOG_DIR)/*/LC_MESSAGES/messages.po)
MO_FILES     := $(PO_FILES:.po=.mo)
I18N_SOURCES := $(wildcard recovery store fees chains services workflows api cli)
EXTRACT_KEYWORDS := --no-default-keywords -k N_ -k Message -k translate:2

.DEFAULT_GOAL := help
.PHONY: help install run test bench screenshots fee-report-screenshot lint catalogs clean distclean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

install: $(PY_STAMP) $(NPM_STAMP) $(MO_FILES)

$(PY):
	$(PYTHON3) -m venv $(VENV)

# Re-installs only when pyproject.toml changes (the install is editable: code changes need nothing).
$(PY_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	@touch $@

# npm ci empties node_modules first, so the stamp is written after it.
$(NPM_STAMP): package.json $(LOCKFILE)
	@if [ -f package-lock.json ]; then \
		npm ci --no-audit --no-fund; \
	else \
		npm install --no-audit --no-fund; \
	fi
	@touch $@

# A language's compiled catalog, remade when its .po changes (fuzzy entries are left out, as untranslated).
$(CATALOG_DIR)/%/LC_MESSAGES/messages.mo: $(CATALOG_DIR)/%/LC_MESSAGES/messages.po | $(PY_STAMP)
	$(PYBABEL) -q compile -i $< -o $@ -l $*

catalogs: $(PY_STAMP)
	$(PYBABEL) -q extract -F babel.cfg $(EXTRACT_KEYWORDS) --sort-output --add-location=file --width=120 \
		--project=misdeposit-recovery --copyright-holder="misdeposit-recovery contributors" \
		-o $(POT_FILE) $(I18N_SOURCES)
	$(PYBABEL) -q update -i $(POT_FILE) -d $(CATALOG_DIR) -D messages --ignore-obsolete --width=120
	$(MAKE) --no-print-directory $(MO_FILES)
	@echo "catalogs updated: translate every empty or fuzzy entry in $(CATALOG_DIR)/*/LC_MESSAGES/messages.po"

run: install
	$(PY) -m devstack

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: install
	$(PY) -m bench $(BENCH_ARGS)

screenshots: install
	$(PY) -m devstack.screenshots --out docs/img

fee-report-screenshot: install
	$(PY) -m devstack.fee_report_screenshot --out docs/img/fee-report.png

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(LINT_PATHS)

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache *.egg-info build dist $(PY_STAMP) $(NPM_STAMP)
	find . -path ./$(VENV) -prune -o -path ./node_modules -prune -o -name __pycache__ -type d -print \
		| xargs rm -rf

distclean: clean
	rm -rf $(VENV) node_modules .data

# Every target bootstraps .venv by itself, so a fresh clone needs nothing but python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench lint clean venv plugin

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/cacherr demo --once

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# The Unraid plugin into dist/: both packages and cacherr.plg (unraid-plugin/RELEASING.md).
# PLUGIN_VERSION (default: HEAD's date), REPO (OWNER/NAME), RELEASE=1 (the release checks);
# PBS_TARBALL with PBS_SHA256 and PBS_PYTHON_VERSION: a python-build-standalone tarball you
# have (default: download the one pinned in unraid-plugin/runtime-pin.env); PLUGIN_FLAGS:
# more make_plugin.py options.
PLUGIN_ARGS = $(if $(PLUGIN_VERSION),--version '$(PLUGIN_VERSION)') $(if $(REPO),--repo '$(REPO)') \
	$(if $(RELEASE),--release) $(if $(PBS_TARBALL),--tarball '$(PBS_TARBALL)') \
	$(if $(PBS_SHA256),--sha256 '$(PBS_SHA256)') \
	$(if $(PBS_PYTHON_VERSION),--python-version '$(PBS_PYTHON_VERSION)') $(PLUGIN_FLAGS)

plugin: $(STAMP)
	$(PY) unraid-plugin/make_plugin.py $(PLUGIN_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check cacherr tests bench

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info

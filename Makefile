# Two commands matter: `make run` (the platform on embedded defaults) and `make test`.
# Both create .venv and install what they need.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint install system-packages

$(STAMP): pyproject.toml $(shell find protos -name '*.proto')
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/justice run

# xmlsec1 (the independent signature verifier), SoftHSM (PKCS#11) and poppler's pdfsig and
# pdftotext (signed PDF checks) come from Debian.
system-packages:
	@if ! command -v xmlsec1 >/dev/null || ! command -v softhsm2-util >/dev/null \
	    || ! command -v pdfsig >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xmlsec1 softhsm2 poppler-utils >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check services tests infra
	$(BIN)/ruff format --check services tests infra
	$(BIN)/mypy

test: $(STAMP) system-packages lint
	$(BIN)/python -m pytest tests/unit tests/api tests/integration tests/e2e -q -ra

bench: $(STAMP) system-packages
	$(BIN)/python -m tests.benchmarks $(ONLY)

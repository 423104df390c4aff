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

# xmlsec1 (the independent signature verifier), SoftHSM (PKCS#11), Ceph's radosgw (the
# second S3 implementation of the evidence conformance suite), poppler's pdftotext and pdfsig
# (independent checks of signed PDFs: seizure receipts, fine letters) and the DejaVu font the
# fine letters embed come from Debian.
system-packages:
	@if ! command -v xmlsec1 >/dev/null || ! command -v softhsm2-util >/dev/null \
	    || ! command -v radosgw >/dev/null || ! command -v ceph-mon >/dev/null \
	    || ! command -v ceph-osd >/dev/null || ! command -v pdfsig >/dev/null \
	    || ! command -v pdftotext >/dev/null \
	    || ! test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends xmlsec1 softhsm2 radosgw ceph-mon ceph-osd poppler-utils \
	    fonts-dejavu-core >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check services tests infra
	$(BIN)/ruff format --check services tests infra
	$(BIN)/mypy

test: $(STAMP) system-packages lint
	$(BIN)/python -m pytest tests/unit tests/api tests/integration tests/e2e -q -ra

# Every figure on each database: `make bench DATABASES=postgres ONLY=security`.
DATABASES ?= sqlite postgres

bench: $(STAMP) system-packages
	JUSTICE_BENCH_DATABASES="$(DATABASES)" $(BIN)/python -m tests.benchmarks $(ONLY)

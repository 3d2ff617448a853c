# The two commands: `make run` (the app with demo content) and `make test` (the whole suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(abspath $(VENV))/bin
PORT ?= 8000
export PATH := $(BIN):$(PATH)

.PHONY: run test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

## run: web server, Celery worker and Celery beat with demo content (Ctrl-C stops all three)
run: $(VENV)/.installed
	DEBUG=true $(BIN)/python manage.py migrate --noinput
	DEBUG=true $(BIN)/python manage.py load_demo
	@echo ""
	@echo "Newsreader is running at http://127.0.0.1:$(PORT)/  (admin: http://127.0.0.1:$(PORT)/admin/)"
	@echo ""
	DEBUG=true PORT=$(PORT) $(BIN)/honcho start --no-prefix -f Procfile.dev 2>&1 || true

## test: the whole suite; uses PostgreSQL and Redis when DATABASE_URL and REDIS_URL are set
test: $(VENV)/.installed
	DEBUG=true $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed
	$(BIN)/python bench/pages.py

clean:
	rm -rf $(VENV) var staticfiles

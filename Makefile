# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

## run: the worker (with its beat) on the configured targets, or on a demo SQLite database under var/
run: $(STAMP)
	$(BIN)/python -m worker run

## test: the whole suite, against throwaway PostgreSQL, Redis, MariaDB, RabbitMQ and S3 servers it starts itself,
## in 3 processes (pytest-xdist; each file on one process, each process with servers of its own)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -n 3 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

## bench: every path against pg_dump / psql / sqlite3 at 1M rows and 5x (prints a table, writes bench/results/)
bench: $(STAMP)
	$(BIN)/pip install --quiet -r bench/requirements.txt
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache

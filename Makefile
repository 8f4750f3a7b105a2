# Two entry points for a newcomer: `make run` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[postgres]'
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test,postgres]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/infoshare init
	@echo "infoshare: console http://$(HOST):$(PORT)/console/  TAXII http://$(HOST):$(PORT)/taxii2/  (Ctrl-C stops)"
	$(BIN)/infoshare serve --host $(HOST) --port $(PORT)

# The browser tests drive Debian's chromium, installed here when missing (as root only);
# Playwright's own browser download is never used.
test: $(VENV)/.installed-test
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ]; then \
		apt-get update && apt-get install -y chromium; \
	fi
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check infoshare feeds distribution tests bench

bench: $(VENV)/.installed-test
	$(BIN)/python bench/taxii_poll.py

clean:
	rm -rf $(VENV) var .pytest_cache

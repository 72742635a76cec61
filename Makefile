# Everything the project needs is installed into .venv by these targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A second venv with the lowest versions pyproject.toml allows (make test-floor).
FLOOR_VENV := .venv-floor
FLOOR_BIN := $(FLOOR_VENV)/bin
FLOOR_STAMP := $(FLOOR_VENV)/.installed

.PHONY: setup demo test test-floor lint typecheck unit bench coverage clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cli,dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/polyfeed demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict src
	$(BIN)/mypy tests

coverage: $(STAMP)
	$(BIN)/coverage run --branch --source=src/polyfeed -m pytest -q
	$(BIN)/coverage report --skip-covered

unit: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck unit

# The pins are generated from pyproject.toml (tests/floor_pins.py), so they cannot drift from the
# declared floors; the pinned packages must come as wheels (a floor without a wheel for this Python
# is no floor). The test tools resolve against the floors in the same pip run.
$(FLOOR_STAMP): pyproject.toml tests/floor_pins.py
	test -x $(FLOOR_BIN)/python || $(PYTHON) -m venv $(FLOOR_VENV)
	echo '*' > $(FLOOR_VENV)/.gitignore
	$(FLOOR_BIN)/python tests/floor_pins.py > $(FLOOR_VENV)/floor-pins.txt
	$(FLOOR_BIN)/python -m pip install --quiet --upgrade pip
	$(FLOOR_BIN)/python -m pip install --quiet \
		--only-binary "$$(cut -d= -f1 $(FLOOR_VENV)/floor-pins.txt | paste -sd, -)" \
		--constraint $(FLOOR_VENV)/floor-pins.txt -e '.[cli,dev]'
	touch $(FLOOR_STAMP)

test-floor: $(FLOOR_STAMP)
	$(FLOOR_BIN)/python tests/floor_pins.py --check-installed
	$(FLOOR_BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_decode.py
	$(BIN)/python benchmarks/bench_stream.py
	$(BIN)/python benchmarks/bench_book.py

clean:
	rm -rf $(VENV) $(FLOOR_VENV) build src/*.egg-info

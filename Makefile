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

# The modules setup.py compiles: the install (which compiles them in place, next to their source)
# is redone when one changes, so that tests never run a stale build (tests/conftest.py checks).
COMPILED_SOURCES := $(wildcard src/polyfeed/core/book/*.py) src/polyfeed/core/book_hash.py \
	src/polyfeed/core/websocket.py src/polyfeed/aio/event_queue.py

$(STAMP): pyproject.toml setup.py $(COMPILED_SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cli,dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/polyfeed demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks setup.py
	$(BIN)/ruff format --check src tests benchmarks setup.py

typecheck: $(STAMP)
	$(BIN)/mypy --strict src
	$(BIN)/mypy tests

# Measured on the pure build (a compiled module runs no Python line coverage could see): the
# in-place extensions are removed, and so is the stamp, so the next target compiles again.
coverage: $(STAMP)
	find src -name '*.so' -delete
	rm -f $(STAMP)
	POLYFEED_TEST_BUILD=pure $(BIN)/coverage run --branch --source=src/polyfeed -m pytest -q
	$(BIN)/coverage report --skip-covered

# The Redis sink tests need a redis-server (Debian: redis-server): they get its URL in
# POLYFEED_TEST_REDIS_URL. When that is not set already (.ci/run sets it), a throwaway server is
# started on a free loopback port for the run and stopped afterwards (trap); without the binary
# the Redis tests skip, except under CI=true, where they fail.
REDIS_SERVER ?= redis-server
define with_redis
	if [ -z "$${POLYFEED_TEST_REDIS_URL:-}" ] && command -v $(REDIS_SERVER) >/dev/null 2>&1; then \
		redis_dir=$$(mktemp -d); \
		trap 'test -s "$$redis_dir/pid" && kill "$$(cat "$$redis_dir/pid")"; rm -rf "$$redis_dir"' EXIT; \
		port=$$($(1) -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
		$(REDIS_SERVER) --port "$$port" --bind 127.0.0.1 --save '' --appendonly no \
			--daemonize yes --dir "$$redis_dir" --pidfile "$$redis_dir/pid" \
			--logfile "$$redis_dir/log" || exit 1; \
		export POLYFEED_TEST_REDIS_URL="redis://127.0.0.1:$$port/0"; \
	fi; \
	$(1) -m pytest -q
endef

# The build the unit tests must find installed (tests/conftest.py): compiled, since this venv's
# install compiles the core. Without a C compiler the install falls back to pure Python; run
# `make test EXPECT_BUILD=pure` there.
EXPECT_BUILD ?= compiled

unit: $(STAMP)
	@$(call with_redis,POLYFEED_TEST_BUILD=$(EXPECT_BUILD) $(BIN)/python)

test: lint typecheck unit

# The pins are generated from pyproject.toml (tests/floor_pins.py), so they cannot drift from the
# declared floors; the pinned packages must come as wheels (a floor without a wheel for this Python
# is no floor). The test tools resolve against the floors in the same pip run. This venv installs
# the pure-Python build (POLYFEED_PURE_PYTHON=1), so CI runs the whole suite on both builds; not
# editable, since the main venv's compiled modules sit beside the sources (hence every source a
# prerequisite).
$(FLOOR_STAMP): pyproject.toml setup.py tests/floor_pins.py $(shell find src -name '*.py')
	test -x $(FLOOR_BIN)/python || $(PYTHON) -m venv $(FLOOR_VENV)
	echo '*' > $(FLOOR_VENV)/.gitignore
	$(FLOOR_BIN)/python tests/floor_pins.py > $(FLOOR_VENV)/floor-pins.txt
	$(FLOOR_BIN)/python -m pip install --quiet --upgrade pip
	POLYFEED_PURE_PYTHON=1 $(FLOOR_BIN)/python -m pip install --quiet \
		--only-binary "$$(cut -d= -f1 $(FLOOR_VENV)/floor-pins.txt | paste -sd, -)" \
		--constraint $(FLOOR_VENV)/floor-pins.txt '.[cli,dev]'
	touch $(FLOOR_STAMP)

test-floor: $(FLOOR_STAMP)
	$(FLOOR_BIN)/python tests/floor_pins.py --check-installed
	@$(call with_redis,POLYFEED_TEST_BUILD=pure $(FLOOR_BIN)/python)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_decode.py
	$(BIN)/python benchmarks/bench_stream.py
	$(BIN)/python benchmarks/bench_book.py
	$(BIN)/python benchmarks/bench_apply.py
	$(BIN)/python benchmarks/bench_record.py
	$(BIN)/python benchmarks/bench_latency.py
	$(BIN)/python benchmarks/bench_memory.py
	$(BIN)/python benchmarks/bench_merge.py
	$(BIN)/python benchmarks/bench_pool.py

clean:
	rm -rf $(VENV) $(FLOOR_VENV) build src/*.egg-info
	find src -name '*.so' -delete

# The two set-up commands the README promises: `make serve` (blocks until Ctrl-C) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA_DIR ?= ./data
PORT   ?= 3476
# The shared harness (../shared/bench, read-only) and where its datasets and anchors go.
SIZE         ?= S
SHARED_BENCH ?= $(or $(STONETOWN_SHARED_BENCH),$(abspath $(CURDIR)/../shared/bench))
BENCH_DATA   ?= /tmp/benchdata
ANCHORS_DIR  ?= /tmp/anchors

.PHONY: serve test lint protos bench bench-engine bench-http bench-relations bench-fleet bench-anchors clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The sources setup.py compiles with mypyc (listed in storage/compiled.py): an edit to one
# rebuilds them, or the import guard would load them all from source.
COMPILED := $(shell $(PYTHON) -c 'import runpy; print(*(m.replace(".", "/") + ".py" \
	for m in runpy.run_path("storage/compiled.py")["MODULES"]))')

# Reinstall whenever pyproject.toml, setup.py or a compiled source changes.
$(VENV)/.installed: pyproject.toml setup.py storage/compiled.py $(COMPILED) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml setup.py storage/compiled.py $(COMPILED) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# The HTTP server on the LevelDB store in $(DATA_DIR); Ctrl-C stops it gracefully.
serve: $(VENV)/.installed
	$(BIN)/stonetown serve --data-dir $(DATA_DIR) --port $(PORT)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy setup.py

# Permify's Node.js SDK, which tests/grpc/test_node_sdk.py drives against `stonetown serve`, at the
# version package-lock.json pins. Without npm the test skips, saying why (it fails when CI is set).
NODE_SDK := tests/grpc/node/node_modules/.package-lock.json
$(NODE_SDK): tests/grpc/node/package-lock.json
	if command -v npm >/dev/null; then cd tests/grpc/node && npm ci --no-audit --no-fund; \
	else echo "npm not found: the Node SDK test will skip (fail under CI)"; fi

# Plugins named here instead of auto-loaded: auto-loading also marks every module of each plugin's
# distribution (all of hypothesis and schemathesis) for pytest's assertion rewriting, which, with
# no bytecode cache, costs each worker about 7 s before the first test.
test: lint $(NODE_SDK)
	PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(BIN)/python -m pytest -p xdist.plugin -p _hypothesis_pytestplugin

# Regenerates api/grpc/generated from proto/ (the modules are committed): messages and their
# typing stubs; the services are registered from the descriptors (api/grpc/server.py).
protos: $(VENV)/.installed-dev
	rm -rf api/grpc/generated/base
	$(BIN)/python -m grpc_tools.protoc -I proto --python_out=api/grpc/generated \
		--pyi_out=api/grpc/generated proto/base/v1/*.proto
	sed -i 's/^from base\.v1 import/from api.grpc.generated.base.v1 import/' \
		api/grpc/generated/base/v1/*.py api/grpc/generated/base/v1/*.pyi
	touch api/grpc/generated/base/__init__.py api/grpc/generated/base/v1/__init__.py

bench: $(VENV)/.installed
	$(BIN)/python bench/dsl_bench.py
	$(BIN)/python bench/cel_bench.py
	$(BIN)/python bench/storage_bench.py

# dataset.py is deterministic, so a missing size is regenerated outside the read-only ../shared.
$(BENCH_DATA)/%/tuples.jsonl:
	$(PYTHON) -B $(SHARED_BENCH)/dataset.py --size $* --out $(BENCH_DATA)

# Run alone on the machine, right after bench-anchors, and compare ratios, not absolutes.
bench-engine: $(VENV)/.installed $(BENCH_DATA)/$(SIZE)/tuples.jsonl
	STONETOWN_SHARED_BENCH=$(SHARED_BENCH) $(BIN)/python bench/run_stonetown.py \
		--size $(SIZE) --data $(BENCH_DATA)

# Check over HTTP against a bare aiohttp echo, same run (~40 s); uses wrk when it is on PATH.
bench-http: $(VENV)/.installed
	$(BIN)/python bench/http_bench.py

# The relations layer over HTTP: 100,000 contact relationship records created, then list pages at
# every depth (minutes; figures in bench/README.md).
bench-relations: $(VENV)/.installed
	$(BIN)/python bench/relations_bench.py

# A mixed HTTP load (80% check / 20% write) on LevelDB and on PostgreSQL with 1 and 2 workers, on
# a throwaway PostgreSQL cluster (~5 min; figures in bench/README.md).
bench-fleet: $(VENV)/.installed
	$(BIN)/python bench/fleet_bench.py

# -B: the anchors' python would otherwise leave __pycache__ in ../shared/bench.
bench-anchors: $(BENCH_DATA)/$(SIZE)/tuples.jsonl
	ANCHORS_DIR=$(ANCHORS_DIR) bash $(SHARED_BENCH)/setup_anchors.sh >&2
	$(ANCHORS_DIR)/venv/bin/python -B $(SHARED_BENCH)/run_pemba.py --size $(SIZE) --data $(BENCH_DATA)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

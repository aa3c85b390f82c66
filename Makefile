# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Where `make run` serves: `make run PORT=8001` beside a server already on 8000.
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint format bench bench-import bench-generate bench-matching bench-linkage bench-feed bench-pathological openapi schema swagger-ui clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "crc-gateway needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/crc-gateway migrate
	$(BIN)/crc-gateway serve --demo-key --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python bench/ingest.py $(BENCH_ARGS)

bench-import: $(STAMP)
	$(BIN)/python bench/import_memory.py $(BENCH_ARGS)

bench-generate: $(STAMP)
	$(BIN)/python bench/generate.py $(BENCH_ARGS)

bench-matching: $(STAMP)
	$(BIN)/python bench/matching.py $(BENCH_ARGS)

bench-linkage: $(STAMP)
	$(BIN)/python bench/linkage.py --trained --orders $(BENCH_ARGS)

bench-feed: $(STAMP)
	$(BIN)/python bench/feed.py $(BENCH_ARGS)

bench-pathological: $(STAMP)
	$(BIN)/python bench/pathological.py $(BENCH_ARGS)

openapi: $(STAMP)
	$(BIN)/crc-gateway openapi

schema: $(STAMP)
	$(BIN)/python -m schemas.export

# Swagger UI's assets ship in the package so /docs works with no internet; this refreshes them
# from the npm registry (npm checks the tarball's integrity). Bump the version, run, commit.
SWAGGER_UI_VERSION := 5.36.0
SWAGGER_UI_DIR := gateway/api/static/swagger-ui
SWAGGER_UI_FILES := swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css \
	favicon-32x32.png LICENSE NOTICE

swagger-ui:
	@command -v npm >/dev/null || { echo "swagger-ui needs npm (e.g. apt-get install npm)"; exit 1; }
	@# Fetched into a scratch directory first: a failed download leaves the vendored copy as it was.
	tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	  (cd $$tmp && npm pack --silent swagger-ui-dist@$(SWAGGER_UI_VERSION) >/dev/null && \
	   tar -xzf swagger-ui-dist-$(SWAGGER_UI_VERSION).tgz) && \
	  mkdir $$tmp/vendored && \
	  for file in $(SWAGGER_UI_FILES); do cp $$tmp/package/$$file $$tmp/vendored/ || exit 1; done && \
	  echo $(SWAGGER_UI_VERSION) > $$tmp/vendored/VERSION && \
	  rm -rf $(SWAGGER_UI_DIR) && mkdir -p $$(dirname $(SWAGGER_UI_DIR)) && \
	  cp -R $$tmp/vendored $(SWAGGER_UI_DIR)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

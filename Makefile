# Targets in pydantic-core's shape; .ci/run calls `lint` and `test-all`.
PYTHON ?= python3

.PHONY: install build-dev format lint test test-all bench all

# Through .ci/pip-install, which retries: the dev extras are about 3 GB of wheels.
install:
	.ci/pip-install $(PYTHON) -q --upgrade pip
	.ci/pip-install $(PYTHON) -q '.[dev]'

build-dev:
	.ci/pip-install $(PYTHON) -q '.[dev]'

format:
	cargo fmt --all
	$(PYTHON) -m ruff format python tests examples benches data dashboards
	$(PYTHON) -m ruff check --fix python tests examples benches data dashboards

lint: portable
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings
	$(PYTHON) -m ruff check python tests examples benches data dashboards
	$(PYTHON) -m ruff format --check python tests examples benches data dashboards
	$(PYTHON) -m mypy.stubtest carbonmeter._core
	$(PYTHON) -m mypy --strict python/carbonmeter

# The Rust unit and integration tests, then pytest on the installed package less the tests
# marked `slow` (pyproject.toml deselects them: subprocesses, torchrun, notebooks, servers).
test: install
	cargo test --all-targets --locked
	$(PYTHON) -m pytest

# Every test, the slow ones included (`-m ""` lifts the default deselection): what CI runs.
test-all: install
	cargo test --all-targets --locked
	$(PYTHON) -m pytest -m ""

# carbonmeter beside CodeCarbon, one run (about 10 min; --quick: under a minute). The Rust hot
# paths: `cargo bench --bench hot_paths`.
bench:
	.ci/pip-install $(PYTHON) -q '.[bench]'
	$(PYTHON) benches/compare.py
	$(PYTHON) benches/warm.py

# The docs site (docs/ and mkdocs.yml, mkdocs-material) into site/; --strict fails on a page left
# out of the nav or a link to a missing page or anchor.
# The non-Linux paths (no /proc, no signals, no fork hooks: what macOS and Windows build),
# compiled and unit-tested on Linux with `--cfg carbonmeter_portable`, with the platforms'
# stand-in tests (IOReport, EMI, Grace). In a target dir of its own: other flags, other builds.
PORTABLE = RUSTFLAGS="--cfg carbonmeter_portable" CARGO_TARGET_DIR=target/portable
.PHONY: portable
portable:
	$(PORTABLE) cargo clippy --all-targets --locked -- -D warnings
	$(PORTABLE) cargo test --locked --lib --test ioreport_fake --test emi_fake --test grace_tree

.PHONY: docs
docs:
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict

all: format lint test-all

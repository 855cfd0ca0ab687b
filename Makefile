# The commands a person runs. `make demo` shows the main job; `make test` runs every check.
VENV ?= .venv
PY := $(VENV)/bin/python
export CARGO_TERM_COLOR ?= never

.PHONY: venv develop wheel lint test test-rust test-python demo bench bench-scale fuzz clean

venv: $(VENV)/.installed
$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Builds the Python extension into the venv (its own target dir, so that cargo test and
# maturin do not rebuild each other).
develop: venv
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH CARGO_TARGET_DIR=target/maturin \
		maturin develop -q -m crates/diskstore-py/Cargo.toml

wheel: venv
	$(VENV)/bin/maturin build --release -m crates/diskstore-py/Cargo.toml -o dist

lint: venv
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/ruff check .

test-rust:
	cargo nextest run --workspace --exclude diskstore-py --no-fail-fast
	cargo test --doc -p diskstore

test-python: develop
	$(PY) -m pytest -q crates/diskstore-py/tests

test: lint test-rust test-python

demo:
	bash scripts/demo.sh

bench:
	bash scripts/bench.sh

# Latency, len() and bulk load against store size, 1e4..1e7 keys (ARGS="--huge" adds 1e8).
bench-scale:
	bash scripts/bench.sh --scale $(ARGS)

fuzz:
	bash scripts/fuzz.sh $(or $(SECONDS),60)

clean:
	rm -rf target dist $(VENV)

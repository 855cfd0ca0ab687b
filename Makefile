# The commands a person runs. `make demo` shows the main job; `make test` runs every check.
VENV ?= .venv
PY := $(VENV)/bin/python
export CARGO_TERM_COLOR ?= never

.PHONY: venv develop wheel lint test test-rust test-python demo bench bench-writers bench-scale fuzz powerloss clean

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
	cargo nextest run -p diskstore --features postgres,redis,tls --lib --test remote_conformance --test remote_cache_shared --test remote_failures --test remote_read --test remote_tls --test remote_redis --no-fail-fast
	cargo test --doc -p diskstore

test-python: develop
	$(PY) -m pytest -q crates/diskstore-py/tests

test: lint test-rust test-python

demo:
	bash scripts/demo.sh

bench:
	bash scripts/bench.sh

# Many writers (issue 16): the seed's core benchmark (ours, the original 0.1.0, diskcache's
# Index; -p 1 and -p 8) and autocommitted sets from 1/2/4/8 threads. Results in bench/results/.
bench-writers:
	bash scripts/bench.sh --setup-only
	CARGO_TARGET_DIR=target/h-bench cargo build --release -q -p diskstore --example writer_threads
	bench/.venv/bin/python bench/seed_core.py -p 1 -p 8
	bench/.venv/bin/python bench/threads_bench.py

# Latency, len() and bulk load against store size, 1e4..1e7 keys (ARGS="--huge" adds 1e8).
bench-scale:
	bash scripts/bench.sh --scale $(ARGS)

fuzz:
	bash scripts/fuzz.sh $(or $(SECONDS),60)

# Simulated power cuts and I/O faults (docs/reliability.md): N= cuts (default 3000),
# FAULTS= fault runs, SEED= replays a campaign, CASE= one case.
powerloss:
	N=$(N) FAULTS=$(FAULTS) SEED=$(SEED) CASE=$(CASE) bash scripts/powerloss.sh

clean:
	rm -rf target dist $(VENV)

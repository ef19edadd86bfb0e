# heapvis — common tasks. `make test` is what CI runs (.ci/run).
SHELL := bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
SAMPLE := data/sample

.PHONY: all build test test-python python-package test-deps bench sample docs run-sample fmt lint clean

all: build

build:
	cargo build --release

# Installs what the tests need (Python packages for the reference analyser and the
# DuckDB/Polars round trips), then runs every test twice: in a release build, and
# in a debug build, whose overflow checks turn unchecked arithmetic on input bytes
# into failures. Tests that need the reference in ../shared/oracle skip with a
# notice when it is absent; HEAPVIS_REQUIRE_ORACLE=1 (set by CI) fails them instead.
# The last line totals every test binary's results ("N passed, N failed").
test: test-deps
	mkdir -p target
	cargo test --release --all-targets 2>&1 | tee target/test.log
	@# The binary alone, as users build it: the library's API only, no `internals`.
	cargo build --release --bin heapvis
	cargo test --release --doc 2>&1 | tee -a target/test.log
	cargo test --tests 2>&1 | tee -a target/test.log
	$(MAKE) --no-print-directory test-python
	@grep -h '^SKIPPED' target/test.log || true
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "heapvis tests: %d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' target/test.log

# The Python package: `pip install .` (maturin builds the binding into the
# shared target/), then its pytest suite, which holds it to the CLI.
test-python: python-package
	HEAPVIS_BIN=$(CURDIR)/target/release/heapvis $(PYTHON) -m pytest -q -p no:cacheprovider 2>&1 | tee -a target/test.log

python-package:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --force-reinstall --no-deps .

# ffmpeg (MP4/WebM tests, ffprobe), Graphviz (ownership graph), gdb (the
# capture script, run on a host program) and Chromium (the HTML report, opened
# headless) and a Java runtime (Spark reads the Dask fan-out's dataset) from Debian;
# click, DuckDB, Polars, pyarrow, pandas, Dask, PySpark and pytest from PyPI.
test-deps:
	@if ! command -v ffmpeg >/dev/null || ! command -v dot >/dev/null || ! command -v gdb >/dev/null \
			|| ! command -v chromium >/dev/null || ! command -v java >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg graphviz gdb chromium \
			default-jre-headless >/dev/null; \
	fi
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r requirements-test.txt

# Criterion benches (decoding throughput per board).
bench:
	cargo build --release
	cargo bench --bench decode --bench render --bench stages --bench soak --bench report --bench follow
	$(MAKE) --no-print-directory python-package
	$(PYTHON) benches/dask_fanout.py

# Regenerates the committed sample capture (deterministic: same bytes every time).
sample:
	cargo run --release -- synth $(SAMPLE) --board samd21 --snapshots 240 --seed 42

# The pictures in the README, from the committed sample.
docs: build
	target/release/heapvis analyze $(SAMPLE) -o target/docs -q --overwrite --frames --frame-step 6 --movie docs/sample.gif
	cp target/docs/frames/heap_layout000234.png docs/frame.png
	target/release/heapvis graph $(SAMPLE) --snapshot 239 -o docs/ownership.svg

run-sample:
	cargo run --release -- analyze $(SAMPLE) -o out

fmt:
	cargo fmt

lint:
	cargo clippy --all-targets -- -D warnings

clean:
	cargo clean
	rm -rf out

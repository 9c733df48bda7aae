# Two commands do all the set-up on a fresh machine:
#   make demo   - the main job on built-in synthetic data (creates .venv, installs, runs `macbdf demo`; ~5 min)
#   (make demo-compare - the six-model fair comparison on the synthetic benchmark, ~15 min on 2 cores)
#   make test   - installs what the tests need (incl. Debian chromium for the browser test) and runs them
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# no wheel cache: a fresh machine installs once, and the cache would double the ~3 GB the install takes on disk
PIP := $(PY) -m pip --no-cache-dir
# CPU machines take the local CPU wheel; GPU users: `make install TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"`
# (or install torch into .venv first: an already satisfied pin installs nothing).
TORCH ?= torch==2.13.0
DEMO_OUT ?= demo_out
COMPARE_OUT ?= demo_compare
PYTEST_ARGS ?=

BENCH_FLAGS = $(if $(BENCH_RESULTS),--write-results $(BENCH_RESULTS))

.PHONY: install install-test browser demo demo-compare test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(PY) pyproject.toml
	@$(PY) -c "import shutil; f = shutil.disk_usage('$(VENV)').free / 2**30; f < 4 and print(f'warning: {f:.1f} GiB free on the disk of $(VENV); the install needs about 3 GiB')"
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e .
	touch $@

install: $(VENV)/.installed

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps 'avdeepfake1m==0.0.4' || echo "note: avdeepfake1m not installed; its comparison test will be skipped"
	touch $@

install-test: $(VENV)/.installed-test

# The browser end-to-end test drives Debian's chromium through Playwright (no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null && apt-get clean) \
	      || echo "warning: could not install chromium; the browser test will be skipped"; \
	  else echo "note: chromium not installed and not root; the browser test will be skipped"; fi; }

demo: install
	$(VENV)/bin/macbdf demo --out $(DEMO_OUT)

demo-compare: install
	$(VENV)/bin/macbdf demo --preset compare --out $(COMPARE_OUT)

test: install-test browser
	$(PY) -m pytest -q $(PYTEST_ARGS)

# prints the figures (results are copied into benchmarks/RESULTS.md by hand); `make bench BENCH_RESULTS=FILE`
# also writes pareto_overhead's section of FILE
bench: install
	$(PY) benchmarks/prepare_speed.py
	$(PY) benchmarks/model_speed.py
	$(PY) benchmarks/pareto_overhead.py $(BENCH_FLAGS)
	$(PY) benchmarks/detect_speed.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache

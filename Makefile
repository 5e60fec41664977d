# Two commands for a new machine (see README.md):
#   make demo   set up, then run the main job on the embedded default
#   make test   set up, then run the test suite
PY := .venv/bin/python
DEMO_OUT ?= out/demo

.PHONY: setup demo test test-slow test-gpu bench clean

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh $(DEMO_OUT)

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

test-gpu: setup
	$(PY) -m pytest -q -m gpu

bench: setup
	$(PY) -m pytest -q benchmarks --benchmark-only -p no:cacheprovider

clean:
	rm -rf out .pytest_cache .benchmarks

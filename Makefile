# Two commands for a new machine (see README.md):
#   make demo   set up, show the shipped zoo (bundled models), then run the pipeline on its teacher (a check)
#   make test   set up, then run the test suite
PY := .venv/bin/python
DEMO_OUT ?= out/demo

.PHONY: setup demo test test-slow test-gpu bench bench-ci gpu-table figures clean mlflow-ui

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

# Benchmarks save their JSON: .benchmarks/<machine>/NNNN_<commit>_<date>.json (compare two runs with
# `.venv/bin/pytest-benchmark compare NNNN MMMM`) and the latest run as $(BENCH_OUT)/<target>.json.
BENCH_OUT ?= out/bench
BENCH_SAVE = --benchmark-autosave --benchmark-json=$(BENCH_OUT)/$@.json

bench: setup
	mkdir -p $(BENCH_OUT)
	$(PY) -m pytest -q benchmarks --benchmark-only -p no:cacheprovider $(BENCH_SAVE)

# The CI regression gates (marker ci_gate; run by .ci/run after `make test`): same-run ratios against the
# project's own reference paths and a fixed reference kernel, one thread; run twice, at the CPU's own
# instruction set and with oneDNN and ATen capped at AVX2 (the thresholds hold for both), ~1 minute each
# on 2 cores.  Both passes run; the target fails if either does.
BENCH_CI = $(PY) -m pytest -q benchmarks -m ci_gate --benchmark-only -p no:cacheprovider --benchmark-autosave
AVX2_ENV = ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2

bench-ci: setup
	mkdir -p $(BENCH_OUT)
	@rc=0; \
	echo "bench-ci: gates at this CPU's own ISA"; \
	$(BENCH_CI) --benchmark-json=$(BENCH_OUT)/bench-ci.json || rc=1; \
	echo "bench-ci: gates with $(AVX2_ENV)"; \
	$(AVX2_ENV) $(BENCH_CI) --benchmark-json=$(BENCH_OUT)/bench-ci-avx2.json || rc=1; \
	exit $$rc

# The sample grids of docs/images and README, one per bundled entry (scripts/figures.sh says how they are drawn).
figures: setup
	bash scripts/figures.sh

# GPU latency table of docs/gpu.md (stylegan2-ffhq 1024 px, every width, batch 48; needs CUDA).
gpu-table:
	$(PY) scripts/gpu_table.py --out docs/gpu.md

# MLflow's own UI on a tracking store (default: the study's).  The `mlflow` extra is mlflow-skinny, which has
# no UI server, and MLflow refuses a store whose schema is newer than itself, so the full `mlflow` package
# goes into its own venv (.venv-mlflow-ui) at exactly the mlflow-skinny version of .venv, which is never changed.
MLFLOW_STORE ?= sqlite:///$(HOME)/.cache/ganzoo/study/mlruns.db
MLFLOW_PORT ?= 5000

mlflow-ui:
	@v=$$($(PY) -c 'import mlflow; print(mlflow.__version__)') || { echo "make mlflow-ui: no mlflow in .venv (make setup)"; exit 2; }; \
	.venv-mlflow-ui/bin/python -c "import mlflow, sys; sys.exit(mlflow.__version__ != '$$v')" 2>/dev/null || \
	  { python3 -m venv .venv-mlflow-ui && .venv-mlflow-ui/bin/pip install -q "mlflow==$$v"; } || \
	  { echo "make mlflow-ui: could not install mlflow==$$v (the UI must be the version that writes the store)"; exit 1; }; \
	echo "MLflow $$v UI on $(MLFLOW_STORE): http://127.0.0.1:$(MLFLOW_PORT)"; \
	exec .venv-mlflow-ui/bin/mlflow ui --backend-store-uri "$(MLFLOW_STORE)" --host 127.0.0.1 --port $(MLFLOW_PORT)

clean:
	rm -rf out .pytest_cache .benchmarks

# Two commands for a new machine (see README.md):
#   make demo   set up, then run the main job on the embedded default
#   make test   set up, then run the test suite
PY := .venv/bin/python
DEMO_OUT ?= out/demo

.PHONY: setup demo test test-slow test-gpu bench clean mlflow-ui

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

#!/usr/bin/env bash
# GPU checks for export/bench on a fresh CUDA machine, in one command (about 5-9 minutes on an H100):
#   1. make ganzoo importable: `pip install -e '.[dev]'` when the registry is reachable, otherwise the
#      machine's own torch/onnx/onnxruntime with the repo on PYTHONPATH; then try onnxruntime-gpu;
#   2. `zoo bench` on cuda, stylegan2-ffhq (random weights) at ch_mul 1, 1/2, 1/4, 1/8, batch 1/8/48:
#      eager fp32, eager fp16, ONNX Runtime CUDA (if available), torch.compile (last: it compiles);
#   3. the gpu-marked tests (tests/test_export_gpu.py).
# Every step has its own timeout, clipped to what is left of GPU_CHECK_BUDGET seconds (default 540, under
# a 10-minute command limit), and writes under $OUT (default out/gpu_check), so whatever finished is
# kept even if a later step is cut off.  Run:  bash scripts/gpu_check.sh
# The docs/gpu.md table (FFHQ-1024, batch 48: eager fp16, torch.compile + CUDA graphs, TensorRT) is a
# separate command, `python scripts/gpu_table.py` (`make gpu-table`); GPU_CHECK_TABLE=1 runs it here first,
# into $OUT/gpu.md, with what is left of the budget.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-out/gpu_check}"
mkdir -p "$OUT"
PY="${PY:-python3}"
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
BUDGET="${GPU_CHECK_BUDGET:-540}"
log() { echo "[gpu_check $(date +%T)] $*" | tee -a "$OUT/summary.txt"; }
limit() {  # limit SECONDS -> min(SECONDS, what is left of the budget - 5), at least 1
  local left=$((BUDGET - SECONDS - 5)); local want=$1
  ((left < want)) && want=$left; ((want < 1)) && want=1; echo "$want"
}

# ---- 1. environment ----------------------------------------------------------------------------------
INSTALL="${GPU_CHECK_INSTALL:-1}"   # 0: use the interpreter as it is
if [ "$INSTALL" = 1 ] && ! $PY -c "import torch, safetensors, numpy, tqdm, PIL, onnx, onnxruntime, onnxscript" 2>/dev/null; then
  log "installing dglgan-zoo[dev]"
  timeout "$(limit 240)" $PY -m pip install -q --retries 0 --timeout 15 -e '.[dev]' >"$OUT/pip.log" 2>&1 \
    || log "pip install -e '.[dev]' failed (see pip.log)"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # works whether or not the editable install did
if [ "$INSTALL" = 1 ] && ! $PY -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null; then
  timeout "$(limit 90)" $PY -m pip install -q --retries 0 --timeout 15 onnxruntime-gpu >>"$OUT/pip.log" 2>&1 \
    && log "installed onnxruntime-gpu" || log "onnxruntime-gpu not installable here: ONNX Runtime CUDA steps skip"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$OUT/env.txt" 2>&1
$PY - >>"$OUT/env.txt" 2>&1 <<'EOF'
import importlib.metadata as md, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.is_available() and torch.cuda.get_device_name(0))
for name in ("onnx", "onnxruntime", "onnxruntime-gpu", "onnxscript", "tensorrt", "torch_tensorrt"):
    try: print(name, md.version(name))
    except md.PackageNotFoundError: print(name, "-")
import onnxruntime; print("ort providers", onnxruntime.get_available_providers())
EOF
cat "$OUT/env.txt"
$PY -c "import torch, sys; sys.exit(not torch.cuda.is_available())" || { log "torch sees no CUDA device: stopping"; exit 1; }

# ---- 2. latency tables (the headline numbers first) ---------------------------------------------------
if [ "${GPU_CHECK_TABLE:-0}" = 1 ]; then
  log "gpu_table: scripts/gpu_table.py --out $OUT/gpu.md"
  t=$(limit 420)
  timeout "$t" $PY scripts/gpu_table.py --out "$OUT/gpu.md" --budget-s $((t - 60 > 30 ? t - 60 : 30)) >"$OUT/gpu_table.log" 2>&1
  log "gpu_table rc=$? :: $(tail -n 1 "$OUT/gpu_table.log")"
fi
bench() {  # bench NAME TIMEOUT ARGS...
  local name=$1 seconds; seconds=$(limit "$2"); shift 2
  ((seconds > 20)) || { log "bench $name skipped: GPU_CHECK_BUDGET spent"; return; }
  log "bench $name: zoo bench stylegan2-ffhq $*"
  if timeout "$seconds" $PY -m zoo.cli bench stylegan2-ffhq --ch-mul 1,1/2,1/4,1/8 --batch 1,8,48 --device cuda \
       --out "$OUT/bench_$name.json" "$@" >"$OUT/bench_$name.txt" 2>"$OUT/bench_$name.err"; then
    cat "$OUT/bench_$name.txt"
  else
    log "bench $name failed or timed out (rc=$?): $(tail -c 400 "$OUT/bench_$name.err")"
  fi
}
bench eager_fp32 120 --backend eager --dtype fp32 --warmup 3 --iters 20
bench eager_fp16 90 --backend eager --dtype fp16 --warmup 3 --iters 20

# ---- 3. gpu-marked tests ----------------------------------------------------------------------------
log "pytest -m gpu tests/test_export_gpu.py"
timeout "$(limit 200)" $PY -m pytest -q -m gpu -p no:cacheprovider tests/test_export_gpu.py >"$OUT/gpu_tests.log" 2>&1
log "gpu tests rc=$? :: $(tail -n 1 "$OUT/gpu_tests.log")"

if $PY -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null; then
  bench onnx_cuda 120 --backend onnx --dtype fp32 --warmup 3 --iters 20
fi
bench compile 240 --backend compile --dtype fp32 --warmup 2 --iters 20
log "done; files in $OUT"

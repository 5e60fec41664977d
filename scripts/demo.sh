#!/usr/bin/env bash
# `make demo`: the shipped zoo, then a pipeline check on its teacher (~1.5 minutes on 2 idle CPU cores after set-up).
#
# Part 1, the shipped zoo: the entries bundled in the package (zoo/weights/registry: Fashion-MNIST teachers
#   and whatever DGL-GAN student widths ship), listed, sampled into grids and compared (params, MACs, KID,
#   latency and speedup as measured when they were bundled).  Nothing is trained.
# Part 2, a pipeline check: compress the shipped stylegan2-fashion-mnist teacher to ch_mul 1/4 with DGL-GAN on a
#   short schedule (stage I plain GAN, stage II + lambda * Adv(G, D_bar) against the teacher's frozen D), then
#   evaluate, export to ONNX, benchmark against the teacher, publish into a local registry and sample.  The
#   schedule is minutes, not hours: the student shows that every step works, it is not a good generator.
#
# Everything lands under $OUT (default out/demo); what part 2 publishes goes to $OUT/registry
# (GANZOO_REGISTRY), MLflow runs to $OUT/runs/mlruns.db.  Run it again to resume: finished steps are skipped.
# Environment: DEMO_STAGE1_KIMG / DEMO_STAGE2_KIMG (student schedule), DEMO_TRAIN_ARGS (more `zoo train`
# options, e.g. "--metrics none"), DEMO_EVAL_N (images for `zoo eval`),
# DEMO_ZOO / DEMO_PYTHON (the zoo command and the Python that has the package; default .venv's).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/demo}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
ZOO=${DEMO_ZOO:-.venv/bin/zoo}
PY=${DEMO_PYTHON:-.venv/bin/python}
STAGE1_KIMG=${DEMO_STAGE1_KIMG:-4}  # the demo preset's T and S: ~2 CPU-minutes of training, final KID included
STAGE2_KIMG=${DEMO_STAGE2_KIMG:-2}
EVAL_N=${DEMO_EVAL_N:-512}
read -ra TRAIN_ARGS <<< "${DEMO_TRAIN_ARGS:-}"
CONFIG=stylegan2-fashion-mnist
WIDTH=1/4
RUN=dgl-1_4
DATA=$OUT/data/fashion-mnist-32
RUNS=$OUT/runs
SHIPPED=$OUT/shipped
PIPE=$OUT/pipeline
export GANZOO_REGISTRY="$OUT/registry"
mkdir -p "$SHIPPED" "$PIPE"

say() { printf '\n== %s  [%d:%02d elapsed]\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }
BUNDLED=$($PY scripts/demo_zoo.py bundled)

# ----------------------------------------------------------------------------------- 1. the shipped zoo
say "Part 1: the shipped zoo (entries bundled in the package, $BUNDLED)"
if [ ! -f "$BUNDLED/index.json" ]; then
  echo "demo: this package ships no trained entries ($BUNDLED/index.json is missing)." >&2
  echo "demo: the demo shows the shipped zoo and compresses its stylegan2-fashion-mnist teacher; it cannot run" >&2
  echo "      without them (a source checkout without zoo/weights/registry is incomplete)." >&2
  exit 1
fi
$ZOO list --registry "$BUNDLED"
ENTRIES=$($PY scripts/demo_zoo.py entries --registry "$BUNDLED")
if [ -z "$ENTRIES" ]; then
  echo "demo: the bundled registry $BUNDLED holds no entries; the demo needs its trained models." >&2
  exit 1
fi
# Sampling must show the shipped entries, not same-named ones this demo publishes into $GANZOO_REGISTRY on an
# earlier run (the default chain searches $GANZOO_REGISTRY first): an empty user registry for part 1.
NO_USER_REGISTRY=$SHIPPED/.no-user-registry
mkdir -p "$NO_USER_REGISTRY"
echo
while read -r name ch_mul version classes; do
  png="$SHIPPED/$name-${ch_mul/\//_}-v$version.png"
  if [ "$classes" -gt 0 ]; then
    # class-conditional: seed i draws class i % classes; classes x classes images make one column per class
    seeds="0-$((classes * classes - 1))"; what="columns = classes 0..$((classes - 1))"
  else
    seeds="0-15"; what="seeds 0-15"
  fi
  [ -f "$png" ] || GANZOO_REGISTRY="$NO_USER_REGISTRY" $ZOO sample "$name" --ch-mul "$ch_mul" --version "$version" \
    --seeds "$seeds" --out "$png" >/dev/null
  echo "demo: $name ch_mul=$ch_mul v$version -> $png ($what)"
done <<< "$ENTRIES"
echo "demo: each width of a model is drawn from the same seeds (the same z), but every student was trained"
echo "      from scratch (DGL-GAN uses only the teacher's discriminator), so the same z gives a different"
echo "      image at each width: compare the grids for quality, not image by image."
for name in $(cut -d' ' -f1 <<< "$ENTRIES" | sort -u); do
  echo
  echo "$name (shipped):"
  $ZOO compare "$name" --registry "$BUNDLED" | tee "$SHIPPED/$name.txt"
done

# -------------------------------------------------------------- 2. pipeline check on the shipped teacher
say "Part 2: pipeline check on the shipped $CONFIG teacher (a short schedule: not a good generator)"
if ! $ZOO info $CONFIG --ch-mul 1 --registry "$BUNDLED" >/dev/null 2>&1; then
  echo "demo: the bundled registry has no $CONFIG teacher (ch_mul 1); part 2 compresses it." >&2
  exit 1
fi
[ -f "$DATA/dataset.json" ] || $ZOO data build fashion-mnist --out "$DATA"

if [ -f "$RUNS/$RUN/final/config.json" ]; then
  echo "demo: $RUN already trained"
else
  resume=(); [ -d "$RUNS/$RUN/state" ] && resume=(--resume)
  echo "demo: training a DGL-GAN student at ch_mul $WIDTH: stage I $STAGE1_KIMG kimg, stage II $STAGE2_KIMG kimg"
  echo "      against the frozen discriminator of the shipped teacher (registry entry $CONFIG, checksums verified)"
  $ZOO train --config $CONFIG --preset demo --ch-mul $WIDTH --teacher $CONFIG \
    --stage1-kimg "$STAGE1_KIMG" --stage2-kimg "$STAGE2_KIMG" \
    --data "$DATA" --out "$RUNS/$RUN" "${resume[@]}" "${TRAIN_ARGS[@]}"
fi

echo
if [ -f "$PIPE/eval-$RUN.json" ]; then
  echo "demo: $RUN already evaluated"
else
  echo "demo: zoo eval: KID, precision/recall, SWD of $EVAL_N images against the data"
  $ZOO eval --real "$DATA" --fake "$RUNS/$RUN/final" --metrics kid,pr,swd --n "$EVAL_N" --json --quiet \
    > "$PIPE/eval-$RUN.json.tmp"
  mv "$PIPE/eval-$RUN.json.tmp" "$PIPE/eval-$RUN.json"
fi
$PY -c "import json, sys; from zoo.train.metrics.evaluation import format_result
print(format_result(json.load(open(sys.argv[1]))))" "$PIPE/eval-$RUN.json"

EXPORT=$OUT/exports/$RUN
if [ -f "$EXPORT/export.json" ]; then
  echo "demo: $RUN already exported"
else
  $ZOO export "$RUNS/$RUN/final" --backend onnx --dynamic-batch 1:8:64 --out "$EXPORT"
fi

echo
if [ -f "$PIPE/bench.json" ]; then
  echo "demo: already benchmarked ($PIPE/bench.json)"
  $PY -c "import json, sys; from zoo.export.bench import format_table
print(format_table(json.load(open(sys.argv[1]))))" "$PIPE/bench.json"
else
  echo "demo: zoo bench: the shipped teacher and the student (eager PyTorch, and its ONNX export) in one run"
  $ZOO bench $CONFIG "$RUNS/$RUN/final" "$EXPORT" --ch-mul 1 --backend eager --batch 1,8 --iters 10 \
    --out "$PIPE/bench.json.tmp"
  mv "$PIPE/bench.json.tmp" "$PIPE/bench.json"
fi

echo
if $ZOO info $CONFIG --ch-mul $WIDTH --registry "$GANZOO_REGISTRY" >/dev/null 2>&1; then
  echo "demo: $CONFIG ch_mul=$WIDTH already published in $GANZOO_REGISTRY"
else
  $ZOO publish "$RUNS/$RUN" --name $CONFIG --ch-mul $WIDTH --alias demo --registry "$GANZOO_REGISTRY"
fi
$ZOO sample $CONFIG --ch-mul $WIDTH --seeds 0-15 --out "$PIPE/$RUN.png" >/dev/null
echo "demo: sampled the published student (seeds 0-15) -> $PIPE/$RUN.png"
echo
echo "$CONFIG, the demo's registry over the shipped one (as zoo.load sees them with GANZOO_REGISTRY=$GANZOO_REGISTRY):"
$ZOO compare $CONFIG | tee "$PIPE/compare.txt"
echo "  (the demo's student was published without latency rows: the zoo bench table above measured it)"

say "demo: done"
echo "  shipped zoo:     grids $SHIPPED/*.png, tables $SHIPPED/*.txt"
echo "  pipeline check:  run $RUNS/$RUN, metrics $PIPE/eval-$RUN.json, ONNX $EXPORT, latency $PIPE/bench.json,"
echo "                   grid $PIPE/$RUN.png, registry $GANZOO_REGISTRY"
echo "  load it:  GANZOO_REGISTRY=$GANZOO_REGISTRY $PY -c \"import zoo; print(zoo.load('$CONFIG', ch_mul='$WIDTH'))\""
echo "  the shipped models need no GANZOO_REGISTRY:  zoo.load('$CONFIG')   # the teacher"

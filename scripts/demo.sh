#!/usr/bin/env bash
# The main job on the embedded default, on 2 CPU cores in roughly 15 minutes:
#   1. build the emoji-portrait dataset (64 px, ~1.1k images) from Debian's Noto colour emoji font
#   2. train a small full-width StyleGAN2 teacher           (zoo train --ch-mul 1 --stage2-kimg 0)
#   3. train a 1/2-width DGL-GAN student against its frozen D (stage I plain GAN, stage II + lambda*Adv(G, D_bar))
#   4. train the same student as the baseline (lambda = 0, same T + S)
#   5. evaluate both (KID / precision-recall / SWD in offline feature networks)
#   6. publish all three into a local registry, compare them, and sample each
# Everything lands under $OUT (default out/demo); MLflow runs in $OUT/runs/mlruns.db.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/demo}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
ZOO=.venv/bin/zoo
export GANZOO_REGISTRY="$OUT/registry"
CONFIG=stylegan2-emoji
DATA=$OUT/data/emoji-portrait-64
RUNS=$OUT/runs
mkdir -p "$OUT"

[ -f "$DATA/dataset.json" ] || $ZOO data build emoji --res 64 --subset portrait --out "$DATA"

train() {  # train NAME ARGS...: resumes an interrupted run, skips a finished one
  local name=$1; shift
  if [ -f "$RUNS/$name/final/config.json" ]; then echo "demo: $name already trained"; return; fi
  local resume=(); [ -d "$RUNS/$name/state" ] && resume=(--resume)
  echo "demo: training $name (a pipeline check on a short schedule, not a good generator)"
  $ZOO train --config $CONFIG --preset demo --data "$DATA" --out "$RUNS/$name" "${resume[@]}" "$@"
}
train teacher --ch-mul 1 --stage2-kimg 0
train dgl-1_2 --ch-mul 1/2 --teacher "$RUNS/teacher/final"
train baseline-1_2 --ch-mul 1/2 --teacher "$RUNS/teacher/final" --baseline --stage1-from "$RUNS/dgl-1_2"

for run in teacher dgl-1_2 baseline-1_2; do
  if $ZOO eval --help >/dev/null 2>&1; then
    $ZOO eval --real "$DATA" --fake "$RUNS/$run/final" --metrics kid,pr,swd --n 512 --json > "$OUT/eval-$run.json" \
      || echo "demo: eval of $run failed (see above)"
  fi
done

$ZOO list --json > /dev/null 2>&1 || true
if ! $ZOO info $CONFIG --ch-mul 1 >/dev/null 2>&1; then
  $ZOO publish "$RUNS/teacher" --name $CONFIG --ch-mul 1 --alias stable
  $ZOO publish "$RUNS/baseline-1_2" --name $CONFIG --ch-mul 1/2 --alias baseline
  $ZOO publish "$RUNS/dgl-1_2" --name $CONFIG --ch-mul 1/2 --alias stable
fi
$ZOO compare $CONFIG | tee "$OUT/compare.txt"
$ZOO sample $CONFIG --ch-mul 1 --seeds 0-15 --out "$OUT/teacher.png"
$ZOO sample $CONFIG --ch-mul 1/2 --seeds 0-15 --out "$OUT/dgl-1_2.png"
$ZOO sample $CONFIG --ch-mul 1/2 --version baseline --seeds 0-15 --out "$OUT/baseline-1_2.png"
echo "demo: done. Grids: $OUT/*.png; metrics: $OUT/eval-*.json; registry: $GANZOO_REGISTRY"
echo "      load it:  GANZOO_REGISTRY=$GANZOO_REGISTRY python -c \"import zoo; print(zoo.load('$CONFIG', ch_mul='1/2'))\""

#!/usr/bin/env bash
# make figures: the sample grids of docs/ and README, drawn from the package's bundled registry.
#   docs/images/<name>-teacher.png (ch_mul 1) and docs/images/<name>-<ch_mul as a_b>.png (students)
# Unconditional models: seeds 0-63 (8 x 8); class-conditional: classes x classes seeds, one column per class.
# Every width is drawn from the same seeds, but each student was trained from scratch, so the same z gives a
# different image at each width.  Pixel scale 2 (nearest neighbour) so that 32-px images are visible.
# Bit-exact across CPUs is not promised: the committed teacher grids, made on an Intel Xeon, differ from an
# AMD EPYC's in ~0.01 % of pixel values, by 1.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-docs/images}
BUNDLED=$($PY scripts/demo_zoo.py bundled)
mkdir -p "$OUT"
while read -r name ch_mul version classes; do
  tag=$([ "$ch_mul" = 1 ] && echo teacher || echo "${ch_mul/\//_}")
  if [ "$classes" -gt 0 ]; then
    args=(--seeds "0-$((classes * classes - 1))" --cols "$classes")
  else
    args=(--seeds 0-63)
  fi
  # the bundled entries only: a same-named entry in the user's $GANZOO_REGISTRY must not stand in for them
  GANZOO_REGISTRY="$BUNDLED" $PY -m zoo.cli sample "$name" --ch-mul "$ch_mul" --version "$version" "${args[@]}" \
    --scale 2 --out "$OUT/$name-$tag.png"
done <<< "$($PY scripts/demo_zoo.py entries --registry "$BUNDLED")"

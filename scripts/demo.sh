#!/usr/bin/env bash
# The main job on the embedded default (2 CPU cores): sample grids and size/MAC reports per width.
# (Replaced by the full DGL-GAN pipeline once training lands.)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/demo}
ZOO=.venv/bin/zoo
mkdir -p "$OUT"
for name in stylegan2-emoji biggan-emoji; do
  for w in 1 1/2 1/4; do
    $ZOO sample "$name" --ch-mul "$w" --seeds 0-15 --out "$OUT/${name}-${w/\//_}.png"
  done
  $ZOO stats "$name" --all-widths | tee "$OUT/${name}-stats.txt"
done

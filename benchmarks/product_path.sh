#!/usr/bin/env bash
# A real data set through the product path: the data-set adapter, then the import, train and
# evaluate commands a user runs, with their default options.
#   benchmarks/product_path.sh hydraulic|skab|cmapss
#   FOLD=2 benchmarks/product_path.sh hydraulic   (hydraulic: the grouped fold held out, 0-4)
# Writes everything under $OUT (default benchmarks/results/product-<data set>[-fold<N>]);
# docs/benchmarks.md has the figures.
set -euo pipefail
SET=${1:?usage: benchmarks/product_path.sh hydraulic|skab|cmapss}
STRIDE=()
case "$SET" in
  hydraulic) DEFAULT_DATA=../shared/data/uci_hydraulic_1hz ;;
  skab) DEFAULT_DATA=../shared/data/skab ;;
  # Engines run 128-362 cycles: the default stride (one 60-cycle window) would give 2-6
  # windows per engine, so windows start every 10 cycles, as a user with short runs would ask.
  cmapss) DEFAULT_DATA=../shared/data/cmapss_fd001; STRIDE=(--stride 10) ;;
  *) echo "unknown data set '$SET': hydraulic, skab or cmapss" >&2; exit 2 ;;
esac
DATA=${DATA:-$DEFAULT_DATA}
FOLD=${FOLD:-0}
SUFFIX=""
[ "$FOLD" != 0 ] && SUFFIX="-fold$FOLD"
OUT=${OUT:-benchmarks/results/product-$SET$SUFFIX}
SEED=${SEED:-0}
G=${CLI:-gnn-service}
rm -rf "$OUT/runs" "$OUT/model"
$G benchmark adapt "$SET" --data-dir "$DATA" --out "$OUT" --seed "$SEED" --fold "$FOLD"
for side in train test; do
  $G import "$OUT/$side.csv" --spec "$OUT/spec.yaml" --labels "$OUT/labels.csv" \
    --run-column run --time-column t_s --out "$OUT/runs/$side" > "$OUT/import-$side.log"
done
$G train --data "$OUT/runs/train" --out "$OUT/model" --name "$SET" --version 1 \
  --seed "$SEED" "${STRIDE[@]}" | tee "$OUT/train.log"
$G evaluate "$OUT/model/$SET.gnnckpt" --data "$OUT/runs/test" "${STRIDE[@]}" \
  --json "$OUT/evaluate.json" | tee "$OUT/evaluate.log"

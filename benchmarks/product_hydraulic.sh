#!/usr/bin/env bash
# The UCI hydraulic rig through the product path: the data-set adapter, then the import,
# train and evaluate commands a user runs, with their default options. Writes everything
# under $OUT (default benchmarks/results/product-hydraulic); docs/benchmarks.md has the figures.
set -euo pipefail
DATA=${DATA:-../shared/data/uci_hydraulic_1hz}
OUT=${OUT:-benchmarks/results/product-hydraulic}
SEED=${SEED:-0}
G=${CLI:-gnn-service}
rm -rf "$OUT/runs" "$OUT/model"
$G benchmark adapt hydraulic --data-dir "$DATA" --out "$OUT" --seed "$SEED"
for side in train test; do
  $G import "$OUT/$side.csv" --spec "$OUT/spec.yaml" --labels "$OUT/labels.csv" \
    --run-column run --time-column t_s --out "$OUT/runs/$side" > "$OUT/import-$side.log"
done
$G train --data "$OUT/runs/train" --out "$OUT/model" --name hydraulic --version 1 \
  --seed "$SEED" | tee "$OUT/train.log"
$G evaluate "$OUT/model/hydraulic.gnnckpt" --data "$OUT/runs/test" \
  --json "$OUT/evaluate.json" | tee "$OUT/evaluate.log"

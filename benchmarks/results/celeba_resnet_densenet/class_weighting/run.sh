#!/usr/bin/env bash
# #19: DenseNet121 at the paper's selected point, 3 epochs on all 8,000 training images, class weighting balanced vs none;
# bf16 on for both (measured 1.80x for DenseNet121 on this CPU, benchmarks/RESULTS.md), so that timing under load cannot give them different precisions
set -euo pipefail
for w in balanced none; do
  .venv/bin/python -m celeba_resnet_densenet reproduce --scale cpu --data-root ../shared/data --models densenet121 \
    --learning-rates 0.001 --dropouts 0.3 --grid-subset-size 100000 --grid-epochs 0 --epochs 3 \
    --class-weighting $w --bf16 on --no-progress --out results/crd_weighting/$w
done
.venv/bin/python -m celeba_resnet_densenet compare results/crd_weighting/balanced/test_predictions_densenet121.npz \
  results/crd_weighting/none/test_predictions_densenet121.npz --names "balanced" "none" --out results/crd_weighting/compare

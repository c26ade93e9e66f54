#!/usr/bin/env bash
# #18 real-data run: reduced SE-ResNeXt x2 (5.9 M parameters) at 109x89, bf16 on (timed 1.44x / 2.46x over fp32
# for this network on this CPU, both under load), 18 epochs on the identity-disjoint 7,001 / 1,000 / 1,999 split.
set -euo pipefail
.venv/bin/python -m celeba_ffhq_labels reproduce --scale cpu --data-root ../shared/data --model reduced-x2 \
  --bf16 on --epochs 18 --out results/celeba_ffhq_labels_cpu --no-progress

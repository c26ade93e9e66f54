#!/usr/bin/env bash
# #18 real-data run: reduced SE-ResNeXt x2 (5.9 M parameters) at 109x89, bf16 auto (timed 1.61x over fp32 for this
# network on this CPU: on), 54 epochs on the identity-disjoint 7,001 / 1,000 / 1,999 split (= --scale cpu's defaults).
# Interrupted runs resume from results/celeba_ffhq_labels_cpu54/train/last.pt when the same command is run again.
set -euo pipefail
OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m celeba_ffhq_labels reproduce --scale cpu --data-root ../shared/data \
  --epochs 54 --out results/celeba_ffhq_labels_cpu54 --no-progress

#!/usr/bin/env bash
# The real-data run committed here (repository root, 2-core AMD EPYC, nothing else running): 74.7 min wall.
# Started at commit 76e43f5 (the cpu scale at 128x128); the package code it ran is that commit's.
set -euo pipefail
export OMP_WAIT_POLICY=PASSIVE
.venv/bin/python -m attribute_inversion reproduce --scale cpu --data-root ../shared/data \
    --out results/attribute_inversion_cpu128
# The training curves (the run predates their place in reproduce's outputs) and the training logs:
.venv/bin/python -c "from pathlib import Path; from attribute_inversion.figures import save_training_curves; \
save_training_curves(Path('results/attribute_inversion_cpu128/train'), ['Eyeglasses', 'Male'], \
Path('benchmarks/results/attribute_inversion/cpu_real_128'))"
# The shipped generators and their model cards (attribute_inversion/pretrained/):
for attribute in Eyeglasses Male; do
    .venv/bin/python -m attribute_inversion export --checkpoint results/attribute_inversion_cpu128 --attribute "$attribute"
done

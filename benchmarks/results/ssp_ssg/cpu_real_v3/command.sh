#!/usr/bin/env bash
# #17 real-data run, cpu scale (1,200 attribute steps): 2-core AMD EPYC with AVX-512 + AVX512_BF16, idle.
set -euo pipefail
make masks DATA=../shared/data   # the pseudo parsing masks, once (under 2 minutes)
# Run at commit a0cc8ef, when the cpu scale kept AdaGrad's lr constant and validated every 200 steps; the two --set
# options give the same configuration with today's code (the cpu scale now anneals the lr by a cosine).
OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m ssp_ssg reproduce --scale cpu --data-root ../shared/data \
  --out results/ssp_ssg_cpu_v3 --bf16 on --channels-last --no-progress \
  --set optim.lr_schedule=constant --set eval_every=200                    # 69 min 25 s wall
.venv/bin/python -m ssp_ssg ship --checkpoint results/ssp_ssg_cpu_v3      # shipped model + card, 71 s
D=../shared/data/celeba/img_align_celeba_89x109
.venv/bin/python -m ssp_ssg predict $D/000005.jpg $D/000007.jpg $D/000011.jpg $D/000012.jpg \
  --out benchmarks/results/ssp_ssg/cpu_real_v3/predict_examples --attributes Smiling Bangs Eyeglasses Wearing_Lipstick

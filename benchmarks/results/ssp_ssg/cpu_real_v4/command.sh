#!/usr/bin/env bash
# #17 real-data run, cpu scale (1,200 attribute steps, AdaGrad lr annealed to 0 by a cosine): 2-core AMD EPYC with
# AVX-512 + AVX512_BF16 (no AMX). Run at commit 2615b29 (the same ssp_ssg code as today's main).
set -euo pipefail
make masks DATA=../shared/data   # the pseudo parsing masks, once (under 2 minutes)
# Three processes on 2026-11-30 (stopped twice with SIGTERM to give the machine to CI, each time resumed from the
# networks' last.pt by this same command): 11:45-12:18 (16 min of it beside the test suite), 12:27-13:11,
# 13:34-13:48; 91 min wall in all. run.json's wall_seconds is the last process's only.
OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m ssp_ssg reproduce --scale cpu --data-root ../shared/data \
  --out results/ssp_ssg_cpu_v4 --bf16 on --channels-last --no-progress
.venv/bin/python -m ssp_ssg ship --checkpoint results/ssp_ssg_cpu_v4      # shipped model + card, 69 s
D=../shared/data/celeba/img_align_celeba_89x109
.venv/bin/python -m ssp_ssg predict $D/000005.jpg $D/000007.jpg $D/000011.jpg $D/000012.jpg \
  --out benchmarks/results/ssp_ssg/cpu_real_v4/predict_examples --attributes Smiling Bangs Eyeglasses Wearing_Lipstick

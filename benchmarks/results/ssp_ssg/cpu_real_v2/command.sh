OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m ssp_ssg reproduce --scale cpu --data-root ../shared/data --out results/ssp_ssg_cpu --bf16 on --channels-last --no-progress

OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m mtfl_compare reproduce --scale cpu --data-root ../shared/data --out results/mtfl_compare_cpu

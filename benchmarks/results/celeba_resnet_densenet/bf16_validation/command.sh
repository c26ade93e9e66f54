OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m benchmarks.bf16_validation --data-root ../shared/data --out results/bf16_validation

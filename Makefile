# Reproduction monorepo for facial-attribute research. `make help` lists the targets.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?=
SCALE  ?= smoke
RESULTS ?= results
DATA_ARG := $(if $(DATA),--data-root $(DATA),)
# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning threads made
# the same smoke run 3x slower (celeba_ffhq_labels/README.md); results are unchanged.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: help venv test bench tables expected clean masks \
        reproduce-all reproduce-ssp reproduce-celeba-ffhq reproduce-resnet-densenet \
        reproduce-mtfl reproduce-inversion

help:
	@echo "make reproduce-ssp              SSP/SSG (Kalayeh et al. CVPR'17), Tables 2-4, Figs 4-5"
	@echo "make reproduce-celeba-ffhq      SE-ResNeXt-101 CelebA labels + transfer to HQ faces"
	@echo "make reproduce-resnet-densenet  ResNet50 vs DenseNet121"
	@echo "make reproduce-mtfl             InceptionV3 transfer vs Cascade CNN / TCDCN on MTFL"
	@echo "make reproduce-inversion        attribute inversion GAN vs CycleGAN, FID / DFN"
	@echo "make test                       the test suite (what CI runs)"
	@echo "  DATA=../shared/data  real data instead of synthetic faces;  SCALE=paper  paper-scale"

# The venv is (re)built only when missing or when pyproject.toml changed.
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[torch,tf,dev]"
	touch $@

test: venv
	$(PY) -m pytest -q

reproduce-all: reproduce-ssp reproduce-celeba-ffhq reproduce-resnet-densenet reproduce-mtfl reproduce-inversion

reproduce-ssp: venv
	$(PY) -m ssp_ssg reproduce --scale $(SCALE) $(DATA_ARG) --out $(RESULTS)/ssp_ssg

# Pseudo parsing masks for real CelebA images (ssp_ssg): mediapipe needs protobuf<5, TensorFlow
# protobuf>=6, so it gets its own venv. DATA is a CelebA root or a folder holding celeba/ (../shared/data).
masks:
	test -x .venv-masks/bin/python || $(PYTHON) -m venv .venv-masks
	.venv-masks/bin/pip install -q mediapipe==0.10.14 pillow numpy tqdm
	.venv-masks/bin/python -m ssp_ssg.pseudo_masks --images $(if $(wildcard $(DATA)/celeba),$(DATA)/celeba,$(DATA)) --out $(RESULTS)/.pseudo_masks/celeba

reproduce-celeba-ffhq: venv
	$(PY) -m celeba_ffhq_labels reproduce --scale $(SCALE) $(DATA_ARG) --out $(RESULTS)/celeba_ffhq_labels

reproduce-resnet-densenet: venv
	$(PY) -m celeba_resnet_densenet reproduce --scale $(SCALE) $(DATA_ARG) --out $(RESULTS)/celeba_resnet_densenet

reproduce-mtfl: venv
	$(PY) -m mtfl_compare reproduce --scale $(SCALE) $(DATA_ARG) --out $(RESULTS)/mtfl_compare

reproduce-inversion: venv
	$(PY) -m attribute_inversion reproduce --scale $(SCALE) $(DATA_ARG) --out $(RESULTS)/attribute_inversion

# CPU benchmarks (metrics vs scikit-learn, FID step, generator, parsing); GPU part where a GPU is present.
bench: venv
	$(PY) -m benchmarks.cpu
	$(PY) -m benchmarks.throughput

# Re-measure benchmarks/expected/<package>.json: every smoke reproduction over 5 seeds on the native
# and the portable kernel paths plus seed 0 on the AVX2 path (11 runs per package, two at a time;
# about 65 min on 2 cores as measured on 2026-11-29; resumes from results/.expected_runs). Review the diff before committing.
expected: venv
	$(PY) -m benchmarks.expected --measure --write

# Rebuild benchmarks/README.md from the committed results.
tables: venv
	$(PY) -m benchmarks.report

clean:
	rm -rf $(RESULTS) .pytest_cache

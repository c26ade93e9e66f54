"""Hyper-parameters of Kalayeh, Gong & Shah, "Improving Facial Attribute Prediction using
Semantic Segmentation" (CVPR 2017).

Every dataclass default is the paper's value, with the section it comes from. The three
scales of ``python -m ssp_ssg reproduce`` are constructors of :class:`ReproduceConfig`:

* :meth:`ReproduceConfig.paper` — the paper: 218x178 input, full width (64..1024 filters),
  40K attribute / 75K segmentation iterations (§5).
* :meth:`ReproduceConfig.cpu` — the real-data run on a 2-core CPU: native 109x89 input of the
  shared CelebA copy, 1/16 width, a few thousand images, minutes.
* :meth:`ReproduceConfig.smoke` — synthetic faces in about a minute on 2 CPU cores: 80x64
  input, 1/16 width, a few hundred images and steps.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ArchitectureConfig:
    """Table 1 and §3.1.1 / §3.2."""

    #: Encoder filters of the four conv blocks (Conv1x..Conv4x), Table 1.
    encoder_channels: tuple[int, int, int, int] = (64, 128, 256, 512)
    #: The attribute net's last four conv layers: two of 512, max-pool, two of 1024 (§3.1.1).
    head_channels: tuple[int, int] = (512, 1024)
    #: Scales every filter count; 1.0 is the paper. Smoke / CPU runs shrink the width only.
    width_multiplier: float = 1.0
    #: background, hair, face skin, eyes, eyebrows, mouth, nose (§4.1).
    num_regions: int = 7
    num_attributes: int = 40
    #: Which max-pool layers SSG replaces (§3.1.3, Fig. 1). The paper gates with the Deconv33
    #: output, whose 1/4 resolution is that of Conv32, the layer before MaxPool3.
    ssg_pools: tuple[str, ...] = ("pool3",)
    #: SPPNet* baseline: "a pyramid of two levels" (§4.3.1): 1x1 and 2x2 bins.
    spp_levels: tuple[int, ...] = (1, 2)
    #: BBox baseline (§4.3.1): boxes of 1:1, 1:2, 2:1 aspect on each of the 5 landmarks plus the
    #: whole image = 16 regions. The box area is missing from the text we have; 1/16 of the
    #: image (about 49x49 px at 218x178) is our choice.
    bbox_aspect_ratios: tuple[float, ...] = (1.0, 0.5, 2.0)
    bbox_area_fraction: float = 1.0 / 16.0

    def scaled(self, channels: int) -> int:
        """Filter count after the width multiplier (at least 4)."""
        return max(4, int(round(channels * self.width_multiplier)))


@dataclass(frozen=True)
class OptimConfig:
    """§5: AdaGrad, mini-batch 32, learning rate 0.001, weight decay 0.0005."""

    learning_rate: float = 0.001
    weight_decay: float = 0.0005
    batch_size: int = 32
    #: §5: attribute nets 40K iterations, the segmentation net 75K.
    attribute_steps: int = 40_000
    segmentation_steps: int = 75_000
    #: Joint attribute + parsing training of Table 4 (§4.4); not given, we use the
    #: segmentation net's 75K.
    joint_steps: int = 75_000
    #: Weighted-BCE fine-tuning for the balanced-accuracy column (§4.3.1); the length is not
    #: given in the paper, we use 5K iterations.
    balanced_finetune_steps: int = 5_000
    #: Data augmentation: random horizontal flip (§5).
    hflip: bool = True


@dataclass(frozen=True)
class DataConfig:
    """Which images, at which size, and how they are split."""

    #: Network input (height, width); CelebA's aligned images are 218x178 (Table 1).
    image_size: tuple[int, int] = (218, 178)
    #: Synthetic faces written when no --data-root is given (and their size).
    synthetic_n: int = 2_000
    synthetic_size: tuple[int, int] = (218, 178)
    #: Attribute images used (None = all available). Held-out fraction carved by identity
    #: when the official test split is not available (the shared copy is train-split only).
    max_images: int | None = None
    #: Official CelebA partitions that form the held-out set (§4.2: train on "train", test on
    #: "test"); when the data has no test partition an identity split takes test_fraction.
    test_partitions: tuple[str, ...] = ("test",)
    test_fraction: float = 0.2
    max_test_images: int | None = None
    #: Parsing training / test images. The paper uses Helen with Smith et al.'s labels
    #: (2,000 / 230 / 100, §4.1); without Helen, faces with masks (synthetic or pseudo) are used.
    parsing_train_images: int = 2_000
    parsing_test_images: int = 100
    seed: int = 0


@dataclass(frozen=True)
class ReproduceConfig:
    """Everything ``python -m ssp_ssg reproduce`` needs."""

    scale: str = "paper"
    architecture: ArchitectureConfig = field(default_factory=ArchitectureConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    #: Evaluation / logging cadence (0 = only at the end).
    eval_every: int = 0
    checkpoint_every: int = 1_000
    log_every: int = 50
    num_workers: int = 4
    #: Images shown in Fig. 5 and the segmentation examples.
    figure_images: int = 6
    #: CPU threads for torch (None = torch's default). The smoke scale uses 1: its convs are
    #: too small to gain from a second thread, and on a shared CPU two threads wait on each
    #: other (measured here: 26 img/s with one thread, 4.4 img/s with two, under load).
    torch_threads: int | None = None
    #: Training runs side by side (separate processes); see ssp_ssg.jobs.
    parallel_jobs: int = 1
    seed: int = 0

    @classmethod
    def paper(cls) -> "ReproduceConfig":
        """The paper's architecture, iterations and input size (§3, §5)."""
        return cls()

    @classmethod
    def cpu(cls) -> "ReproduceConfig":
        """Real CelebA images on a shared 2-core CPU in about a quarter of an hour.

        Reductions: native 109x89 input of the shared copy (the paper: 218x178), 1/16 width
        (4..64 filters), 3,000 images (2,400 train / 600 held out by identity), 400 / 200
        images with pseudo masks for the parser, 200 iterations of batch 16, lr 0.005, two
        networks side by side on one thread each.
        """
        return cls(
            scale="cpu",
            architecture=ArchitectureConfig(width_multiplier=0.0625),
            optim=OptimConfig(learning_rate=0.005, batch_size=16, attribute_steps=200,
                              segmentation_steps=200, joint_steps=200,
                              balanced_finetune_steps=30),
            data=DataConfig(image_size=(109, 89), max_images=3_000, test_fraction=0.2,
                            parsing_train_images=400, parsing_test_images=200),
            checkpoint_every=50, log_every=20, num_workers=0, torch_threads=1,
            parallel_jobs=2,
        )

    @classmethod
    def smoke(cls) -> "ReproduceConfig":
        """Synthetic faces, about a minute on 2 CPU cores.

        Reductions: 80x64 input, 1/16 width (4..64 filters), 640 faces (held out: the
        synthetic val + test partitions, about 20 %), 120 iterations of batch 16, lr 0.005
        (AdaGrad at 0.001 barely moves in so few steps; 0.005 beat 0.002, 0.01 and 0.03 here),
        two networks trained side by side on one CPU thread each.
        """
        return cls(
            scale="smoke",
            architecture=ArchitectureConfig(width_multiplier=0.0625),
            optim=OptimConfig(learning_rate=0.005, batch_size=16, attribute_steps=120,
                              segmentation_steps=120, joint_steps=120,
                              balanced_finetune_steps=20),
            data=DataConfig(image_size=(80, 64), synthetic_n=640, synthetic_size=(80, 64),
                            test_partitions=("val", "test"), parsing_train_images=160,
                            parsing_test_images=96),
            checkpoint_every=0, log_every=20, num_workers=0, figure_images=4, torch_threads=1,
            parallel_jobs=2,
        )

    @classmethod
    def for_scale(cls, scale: str) -> "ReproduceConfig":
        constructors = {"smoke": cls.smoke, "cpu": cls.cpu, "paper": cls.paper}
        if scale not in constructors:
            raise ValueError(f"unknown scale {scale!r}; choose one of {sorted(constructors)}")
        return constructors[scale]()


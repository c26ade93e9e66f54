"""Configuration of the face attribute inversion reproduction (Tu et al., "Face Attribute Inversion").

Every dataclass default is the paper's value where the paper gives one (the comment names the
section); values the paper omits are the widely used defaults of the works it builds on
(pix2pix [4], CycleGAN [5], StarGAN [8]) and are listed under "Deviations" in README.md.

``ReproduceConfig.smoke()`` is the CPU smoke scale on synthetic faces, ``ReproduceConfig.cpu()``
the real-data scale that fits the 2-core CPU here, ``ReproduceConfig.paper()`` the paper's scale.
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: The five attributes of Table 1 / §3.2, in the paper's column order.
PAPER_ATTRIBUTES: tuple[str, ...] = ("No_Beard", "Mouth_Slightly_Open", "Eyeglasses", "Young", "Male")
#: Where the cpu scale keeps its decoded-image cache (``ReproduceConfig.image_cache_dir``), the
#: folder the other packages' cpu scales use (each cache is named by its key, so they share it).
DEFAULT_IMAGE_CACHE_DIR = "results/.image_cache"


@dataclass
class UNetConfig:
    """Modified U-Net generator, §2.2 and Fig. 1(b), built on the U-Net of pix2pix [4]."""

    base_channels: int = 64  # pix2pix [4] encoder C64-C128-C256-C512-...
    max_channels: int = 512  # pix2pix [4]: channels stop doubling at 512
    #: Stride-2 stages; ``None`` -> log2(image_size), a 1x1 bottleneck as pix2pix's unet_128 (7 at 128).
    num_downsamplings: int | None = None
    #: §2.2: "the number of 1x1 filters for high-level skip connections was set to half of the
    #: number of input feature maps, while one quarter for low-level ones".
    high_level_skip_ratio: float = 0.5
    low_level_skip_ratio: float = 0.25
    #: The paper does not say where "low" ends; ``None`` -> the shallower half of the skips
    #: (rounded down) are low-level, the deeper ones high-level.
    num_low_level_skips: int | None = None
    dropout: float = 0.5  # pix2pix [4] §3.2: dropout in the innermost 512-channel decoder stages


@dataclass
class DiscriminatorConfig:
    """Auxiliary-classifier discriminator D with heads D_s and D_cls, §2.2 and Fig. 1(a).

    The paper gives no layer list; the body is StarGAN's [8] (4x4 stride-2 convolutions with
    LeakyReLU 0.01, channels doubling), whose auxiliary classifier the paper follows (§1)."""

    base_channels: int = 64  # StarGAN [8]
    max_channels: int = 2048  # StarGAN [8]: 64 -> 2048 over 6 layers at 128x128
    #: ``None`` -> log2(image_size) - 1 layers, i.e. a 2x2 final map (StarGAN: 6 at 128x128).
    num_layers: int | None = None


@dataclass
class InversionLossConfig:
    """Loss weights of Eqs. 6-7; §3.1: "lambda_1, lambda_3, lambda_4 were set to 1, while lambda_2 was set to 10"."""

    lambda_cls_fake: float = 1.0  # lambda_1, Eq. 6
    lambda_rec: float = 10.0  # lambda_2, Eq. 6
    lambda_fm: float = 1.0  # lambda_3, Eq. 6
    lambda_cls_real: float = 1.0  # lambda_4, Eq. 7
    #: G's side of Eq. 1. "minimax" minimises E[log(1 - D_s(G(x)))] literally; "non_saturating"
    #: minimises -E[log D_s(G(x))], Goodfellow et al. [2] §3's fix for the vanishing gradient of
    #: the minimax form early in training (same fixed point). Deviation: default non-saturating.
    generator_adversarial: str = "non_saturating"


@dataclass
class CycleGANConfig:
    """The CycleGAN baseline of §3.1, as Zhu et al. [5] define it (§4, §7 of their paper)."""

    generator_channels: int = 64  # ngf [5]
    num_residual_blocks: int = 6  # [5] §7.2: 6 blocks for 128x128 images
    discriminator_channels: int = 64  # ndf [5]
    discriminator_layers: int = 3  # 70x70 PatchGAN [5] §4
    lambda_cycle: float = 10.0  # [5] §4 Eq. 3
    lambda_identity: float = 0.5  # [5] §5.2: identity loss, 0.5 x lambda_cycle
    pool_size: int = 50  # [5] §4: history of 50 generated images
    init_std: float = 0.02  # [5] §7.1: weights from N(0, 0.02) (G and D)


@dataclass
class OptimConfig:
    """Optimiser and schedule; the paper gives none, so both models use CycleGAN's [5] §4 defaults."""

    learning_rate: float = 2e-4  # [5], pix2pix [4]
    beta1: float = 0.5  # [5]
    beta2: float = 0.999  # [5]
    batch_size: int = 16  # StarGAN [8]; not given by the paper
    max_steps: int = 100_000  # not given by the paper
    #: Constant rate, then linear decay to zero over the rest, as [5] (100 + 100 epochs).
    decay_start_fraction: float = 0.5


@dataclass
class DataConfig:
    """§3.1: CelebA aligned images, centre crop scaled to 128x128, minority-class oversampling,
    a test set of 1,000 positive + 1,000 negative images unseen in training."""

    attributes: tuple[str, ...] = PAPER_ATTRIBUTES  # §3.2 / Table 1
    image_size: int = 128  # §3.1
    test_images_per_class: int = 1000  # §3.1
    #: Images held out from training (split by identity when identities are known); the test set
    #: of every attribute is drawn from them.
    heldout_fraction: float = 0.1
    max_train_images: int | None = None  # cap on the training pool (CPU scales)
    oversample_minority: bool = True  # §3.1, Masko & Hensman [12]
    hflip: bool = True  # [5]'s training augmentation; the paper does not say
    synthetic_n: int = 2000  # faces rendered when no --data-root is given
    synthetic_size: tuple[int, int] = (109, 89)  # rendered like the shared 89x109 real images
    seed: int = 0


@dataclass
class EvaluationConfig:
    """§3.3: FID (Inception pool3, PCA to 1024 dimensions) and DFN (Eq. 8) on the test set; Fig. 2 grids."""

    #: Images per side for FID / DFN / success rate; ``None`` -> the whole test set (§3.1).
    max_eval_images: int | None = None
    fid_pca_dims: int = 1024  # §3.3.2
    grid_images: int = 8  # columns of the Fig. 2-style grids
    sample_every: int = 0  # training steps between sample grids; 0 -> at the end only
    eval_batch_size: int = 64
    #: Paired bootstrap resamples of the ours - CycleGAN intervals (not in the paper). Each FID
    #: resample costs an N x N eigendecomposition (about a second at 2,000 faces per side on one
    #: core), so this is kept modest; ``evaluate --checkpoint DIR --bootstrap-resamples N`` raises it.
    bootstrap_resamples: int = 300


@dataclass
class JudgeConfig:
    """Attribute classifier trained on the real training images, used only to measure how often
    a generated image carries the inverted attribute (the "attribute success rate" column;
    not in the paper)."""

    channels: int = 32
    max_steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 1e-3


def _reduced_networks() -> dict:
    """The narrow networks of the smoke and cpu scales (fresh instances each call): U-Net and D
    base width 16 (max 128), CycleGAN ngf / ndf 8 with 3 residual blocks."""
    return {"generator": UNetConfig(base_channels=16, max_channels=128),
            "discriminator": DiscriminatorConfig(base_channels=16, max_channels=128),
            "cyclegan": CycleGANConfig(generator_channels=8, discriminator_channels=8, num_residual_blocks=3)}


@dataclass
class ReproduceConfig:
    """Everything one ``python -m attribute_inversion reproduce`` run needs."""

    scale: str = "paper"
    data: DataConfig = field(default_factory=DataConfig)
    generator: UNetConfig = field(default_factory=UNetConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    losses: InversionLossConfig = field(default_factory=InversionLossConfig)
    cyclegan: CycleGANConfig = field(default_factory=CycleGANConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    device: str = "auto"
    #: bf16 autocast of every training run: "off", "on" or "auto" (timed once per run folder by
    #: ``common.train.decide_bf16``, CUDA: where native; ``train.decide_precision``). "off" at every
    #: scale: bf16 rounding in a GAN's two-player updates has not been validated here.
    bf16: str = "off"
    #: Folder of the decoded-image cache (``common.data.cache``): the training pool and held-out
    #: faces decoded, centre-square cropped and scaled once; ``None``: decode on every read.
    image_cache_dir: str | None = None
    channels_last: bool = False
    compile: bool = False
    checkpoint_every: int = 2000

    @classmethod
    def paper(cls) -> "ReproduceConfig":
        """The paper's setting (§3.1): all five attributes at 128x128, full widths."""
        return cls(scale="paper")

    @classmethod
    def smoke(cls) -> "ReproduceConfig":
        """CPU smoke scale on synthetic faces: one attribute, 32x32, narrow networks, a few hundred
        steps, small evaluation sets. Every reduction is listed in README.md and the table notes."""
        return cls(
            scale="smoke",
            data=DataConfig(attributes=("Eyeglasses",), image_size=32, test_images_per_class=32,
                            heldout_fraction=0.2, synthetic_n=600),
            **_reduced_networks(),
            # 5x the paper-scale learning rate so that 200 steps show an effect (README: deviations).
            optim=OptimConfig(batch_size=8, max_steps=200, learning_rate=1e-3),
            evaluation=EvaluationConfig(grid_images=8, sample_every=100),
            judge=JudgeConfig(channels=16, max_steps=150, batch_size=32),
            checkpoint_every=100,
        )

    @classmethod
    def cpu(cls) -> "ReproduceConfig":
        """Real CelebA on this 2-core CPU at the paper's 128x128 (§3.1): Eyeglasses and Male, the
        whole training pool (the 89x109 images' centre square, 89x89, upsampled), narrow networks,
        channels_last (measured 1.12x for ours, 1.0x for CycleGAN in fp32 here), every held-out face
        of each domain (up to the paper's 1,000) in the test set, the faces decoded once into the
        image cache. Steps per model sized by measurement to the protocol's 90 minutes (README:
        Scales)."""
        return cls(
            scale="cpu",
            data=DataConfig(attributes=("Eyeglasses", "Male"), image_size=128, heldout_fraction=0.2),
            **_reduced_networks(),
            optim=OptimConfig(batch_size=8, max_steps=1600, learning_rate=1e-3),
            evaluation=EvaluationConfig(grid_images=8, sample_every=400),
            judge=JudgeConfig(channels=16, max_steps=600, batch_size=32),
            checkpoint_every=100,
            image_cache_dir=DEFAULT_IMAGE_CACHE_DIR,
            channels_last=True,
        )

    @classmethod
    def for_scale(cls, scale: str) -> "ReproduceConfig":
        constructors = {"smoke": cls.smoke, "cpu": cls.cpu, "paper": cls.paper}
        if scale not in constructors:
            raise ValueError(f"unknown scale {scale!r}; choose one of {sorted(constructors)}")
        return constructors[scale]()

"""Networks of Kalayeh, Gong & Shah (CVPR 2017), §3 and Table 1.

* :class:`SegmentationNet` — the encoder-decoder face parser of §3.2 / Table 1 with a
  prediction before every upsampling (deep supervision).
* :class:`BasicAttributeNet` — the 12-layer basic attribute net of §3.1.1 with global average
  pooling ("Ours: Avg. Pooling") or two-level spatial pyramid pooling ("SPPNet*", §4.3.1).
* :class:`SSPAttributeNet` — semantic segmentation-based pooling, §3.1.2, Fig. 1 (right).
* :class:`SSGAttributeNet` — semantic segmentation-based gating, §3.1.3, Fig. 1 (middle).
* :class:`NaiveAttributeNet` — RGB + 7 mask channels as input (§4.3.1, "Naive Approach").
* :class:`BBoxAttributeNet` — SSP with 16 landmark boxes instead of semantic regions (§4.3.1).
* :class:`JointAttributeParsingNet` — attribute net and segmentation net sharing their first
  8 layers (§4.4, Table 4).

Layer names follow Table 1 (Conv11 ... Conv42, Deconv41 ... Deconv13); the per-scale
predictions are Deconv43 / Deconv33 / Deconv23 (side outputs before UpSample3 / 2 / 1) and
Deconv13 (the full-resolution output). §5 uses Deconv23 for SSP and Deconv33 for SSG.
"""
from __future__ import annotations

import copy
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from common.attributes import PARTS7_LABELS
from ssp_ssg.config import ArchitectureConfig

#: Regions whose masks are resized with max-pooling for SSP ("max pooling increases the
#: spatial support of the region ... eyes, eyebrows, nose and mouth", §5); the rest use
#: average pooling.
SSP_MAX_POOLED_REGIONS: tuple[str, ...] = ("eyes", "eyebrows", "mouth", "nose")
#: Prediction layers of the segmentation net, coarse to fine.
PREDICTION_LAYERS: tuple[str, ...] = ("deconv43", "deconv33", "deconv23", "deconv13")
#: The segmentation output each attribute model reads (§5).
SSP_MASK_LAYER = "deconv23"
SSG_MASK_LAYER = "deconv33"
NAIVE_MASK_LAYER = "deconv13"
#: SSG's BN sees activations multiplied by masks that sum to 1, i.e. shrunk by about
#: 1/(H*W); with BN's usual eps (1e-5) the eps would dominate their variance.
GATED_BATCHNORM_EPS = 1e-10


class ConvBNPReLU(nn.Sequential):
    """3x3 stride-1 convolution, Batch Normalization, PReLU (Table 1).

    Also serves for Table 1's "Deconv" layers: a stride-1, padding-1 3x3 deconvolution computes
    the same family of functions as a convolution (its kernel flipped and transposed), and
    PyTorch's CPU path for ``ConvTranspose2d`` lacks the oneDNN kernels ``Conv2d`` uses.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1,
                           bias=False),
            bn=nn.BatchNorm2d(out_channels),
            act=nn.PReLU(out_channels),
        ))


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """Kernel 2, stride 2; ceil mode gives Table 1's sizes (109x89 -> 55x45 -> 28x23 -> 14x12)."""
    return F.max_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)


def resize_region_probabilities(region_probs: torch.Tensor, size) -> torch.Tensor:
    """Area-resize (B, R, h, w) region probabilities to ``size`` (bilinear when enlarging)."""
    size = tuple(int(s) for s in size)
    if tuple(region_probs.shape[-2:]) == size:
        return region_probs
    if region_probs.shape[-2] >= size[0] and region_probs.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(region_probs, size)
    return F.interpolate(region_probs, size=size, mode="bilinear", align_corners=False)


def normalise_region_masks(region_masks: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale every (image, region) mask to sum to 1 over space (§3.1.3). Empty masks stay 0."""
    return region_masks / region_masks.sum(dim=(-2, -1), keepdim=True).clamp_min(eps)


def ssp_region_masks(region_probs: torch.Tensor, size,
                     region_names: tuple[str, ...] = PARTS7_LABELS) -> torch.Tensor:
    """Resize Deconv23 region probabilities to the last conv's resolution for SSP (§5).

    Max pooling for eyes, eyebrows, nose and mouth (it widens the region's support and brings
    in some context), average pooling for background, hair and face skin.
    """
    size = tuple(int(s) for s in size)
    max_pooled = F.adaptive_max_pool2d(region_probs, size)
    average_pooled = F.adaptive_avg_pool2d(region_probs, size)
    use_max = torch.tensor([name in SSP_MAX_POOLED_REGIONS for name in region_names],
                           device=region_probs.device).view(1, -1, 1, 1)
    return torch.where(use_max, max_pooled, average_pooled)


class SemanticGatedPooling(nn.Module):
    """SSG, §3.1.3, Fig. 1 (middle): a drop-in replacement of "conv -> BN -> PReLU -> max-pool".

    The conv output (before BN) is multiplied by each of the R region masks, normalised to sum
    to 1 per region, giving R masked copies (R*C maps); then BN, PReLU and 2x2 max pooling,
    which can no longer mix activations of different regions; a 1x1 conv restores C channels.
    """

    def __init__(self, channels: int, num_regions: int):
        super().__init__()
        gated_channels = channels * num_regions
        self.num_regions = num_regions
        self.bn = nn.BatchNorm2d(gated_channels, eps=GATED_BATCHNORM_EPS)
        self.act = nn.PReLU(gated_channels)
        self.restore = nn.Conv2d(gated_channels, channels, kernel_size=1)

    @staticmethod
    def gate(conv_output: torch.Tensor, region_probs: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) x (B, R, h, w) -> (B, R*C, H, W), region-major, masks summing to 1."""
        masks = normalise_region_masks(
            resize_region_probabilities(region_probs, conv_output.shape[-2:]))
        return (masks.unsqueeze(2) * conv_output.unsqueeze(1)).flatten(1, 2)

    def forward(self, conv_output: torch.Tensor, region_probs: torch.Tensor) -> torch.Tensor:
        if region_probs is None:
            raise ValueError("SemanticGatedPooling needs region probabilities")
        if region_probs.shape[1] != self.num_regions:
            raise ValueError(f"expected {self.num_regions} regions, got {region_probs.shape[1]}")
        gated = self.act(self.bn(self.gate(conv_output, region_probs)))
        return self.restore(max_pool_2x2(gated))


class ConvStage(nn.Module):
    """Two conv-BN-PReLU layers followed by max pooling, SSG, or nothing."""

    def __init__(self, in_channels: int, out_channels: int, pool: str | None,
                 num_regions: int = 7):
        super().__init__()
        if pool not in (None, "max", "ssg"):
            raise ValueError(f"pool must be None, 'max' or 'ssg', got {pool!r}")
        self.conv1 = ConvBNPReLU(in_channels, out_channels)
        if pool == "ssg":  # SSG gates the conv output before its BN (§3.1.3).
            self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
            self.gated_pool = SemanticGatedPooling(out_channels, num_regions)
        else:
            self.conv2 = ConvBNPReLU(out_channels, out_channels)
            self.gated_pool = None
        self.pool = pool

    def forward(self, x: torch.Tensor, region_probs: torch.Tensor | None = None):
        """Return (output, size of the conv output before pooling)."""
        x = self.conv2(self.conv1(x))
        pre_pool_size = tuple(x.shape[-2:])
        if self.pool == "ssg":
            x = self.gated_pool(x, region_probs)
        elif self.pool == "max":
            x = max_pool_2x2(x)
        return x, pre_pool_size


class FaceEncoder(nn.Module):
    """The first 8 layers, Conv11 ... Conv42 with MaxPool1..3 (Table 1); output at 1/8 size.

    Shared by the segmentation net (its encoder) and the attribute nets (their first 8 layers).
    ``ssg_pools`` names the max-pools ("pool1".."pool3") replaced by SSG.
    """

    def __init__(self, architecture: ArchitectureConfig, in_channels: int = 3,
                 ssg_pools: tuple[str, ...] = ()):
        super().__init__()
        channels = [architecture.scaled(c) for c in architecture.encoder_channels]
        stages = []
        previous = in_channels
        for index, width in enumerate(channels):
            pool_name = f"pool{index + 1}"
            pool = None if index == len(channels) - 1 else (
                "ssg" if pool_name in ssg_pools else "max")
            stages.append(ConvStage(previous, width, pool, architecture.num_regions))
            previous = width
        self.stages = nn.ModuleList(stages)
        self.out_channels = previous
        self.channels = channels

    def forward(self, x: torch.Tensor, region_probs: torch.Tensor | None = None):
        """Return (1/8-resolution features, pre-pool sizes of stages 1..3 for the decoder)."""
        sizes = []
        for stage in self.stages:
            x, size = stage(x, region_probs)
            sizes.append(size)
        return x, sizes[:-1]


class SegmentationNet(nn.Module):
    """Face parsing encoder-decoder, §3.2 / Table 1, trained from scratch.

    Decoder: Deconv4x (512), UpSample3, Deconv3x (256), UpSample2, Deconv2x (128), UpSample1,
    Deconv1x (64), Deconv13 (7 classes); nearest-neighbour upsampling to the encoder's sizes.
    A prediction (Deconv43 / Deconv33 / Deconv23) is made before each upsampling; each has its
    own loss, summed with equal weights (deep supervision).
    """

    def __init__(self, architecture: ArchitectureConfig, encoder: FaceEncoder | None = None):
        super().__init__()
        self.encoder = encoder if encoder is not None else FaceEncoder(architecture)
        c1, c2, c3, c4 = self.encoder.channels
        regions = architecture.num_regions
        self.deconv4 = nn.Sequential(ConvBNPReLU(c4, c4), ConvBNPReLU(c4, c4))
        self.deconv3 = nn.Sequential(ConvBNPReLU(c4, c3), ConvBNPReLU(c3, c3))
        self.deconv2 = nn.Sequential(ConvBNPReLU(c3, c2), ConvBNPReLU(c2, c2))
        self.deconv1 = nn.Sequential(ConvBNPReLU(c2, c1), ConvBNPReLU(c1, c1))
        self.predictions = nn.ModuleDict({
            "deconv43": ConvBNPReLU(c4, regions),
            "deconv33": ConvBNPReLU(c3, regions),
            "deconv23": ConvBNPReLU(c2, regions),
            "deconv13": ConvBNPReLU(c1, regions),
        })

    def forward(self, image: torch.Tensor, up_to: str = "deconv13") -> dict[str, torch.Tensor]:
        """Region logits of every prediction layer down to ``up_to`` (coarse to fine)."""
        if up_to not in PREDICTION_LAYERS:
            raise ValueError(f"up_to must be one of {PREDICTION_LAYERS}, got {up_to!r}")
        x, skip_sizes = self.encoder(image)
        decoders = (self.deconv4, self.deconv3, self.deconv2, self.deconv1)
        upsample_sizes = (None, skip_sizes[2], skip_sizes[1], skip_sizes[0])
        outputs: dict[str, torch.Tensor] = {}
        for name, decoder, size in zip(PREDICTION_LAYERS, decoders, upsample_sizes):
            if size is not None:  # UpSample3 / 2 / 1: repetition (nearest neighbour).
                x = F.interpolate(x, size=size, mode="nearest")
            x = decoder(x)
            outputs[name] = self.predictions[name](x)
            if name == up_to:
                break
        return outputs


class FrozenSegmentation(nn.Module):
    """A trained segmentation net used as a fixed source of region probabilities (§3.1)."""

    def __init__(self, segmentation_net: SegmentationNet):
        super().__init__()
        self.net = segmentation_net
        self.net.requires_grad_(False)
        self.net.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.net.eval()  # its BN statistics stay those it was trained with
        return self

    @torch.no_grad()
    def forward(self, image: torch.Tensor, layer: str) -> torch.Tensor:
        """Softmax region probabilities (B, R, h, w) of prediction layer ``layer``."""
        return torch.softmax(self.net(image, up_to=layer)[layer].float(), dim=1)


class AttributeBackbone(nn.Module):
    """The 12 conv layers of the basic attribute net (§3.1.1).

    Conv11..Conv42 (shared configuration with the segmentation encoder), then Conv51, Conv52
    (512), MaxPool4, Conv61, Conv62 (1024): a 14x12 map at 218x178 input.
    """

    def __init__(self, architecture: ArchitectureConfig, in_channels: int = 3,
                 ssg_pools: tuple[str, ...] = (), encoder: FaceEncoder | None = None):
        super().__init__()
        unknown = set(ssg_pools) - {"pool1", "pool2", "pool3", "pool4"}
        if unknown:
            raise ValueError(f"unknown SSG pool layers {sorted(unknown)}")
        self.encoder = encoder if encoder is not None else FaceEncoder(
            architecture, in_channels, ssg_pools)
        c512 = architecture.scaled(architecture.head_channels[0])
        c1024 = architecture.scaled(architecture.head_channels[1])
        self.stage5 = ConvStage(self.encoder.out_channels, c512,
                                "ssg" if "pool4" in ssg_pools else "max",
                                architecture.num_regions)
        self.stage6 = ConvStage(c512, c1024, None)
        self.out_channels = c1024

    def forward(self, image: torch.Tensor, region_probs: torch.Tensor | None = None):
        x, _ = self.encoder(image, region_probs)
        x, _ = self.stage5(x, region_probs)
        x, _ = self.stage6(x)
        return x


class RegionwiseLinear(nn.Module):
    """One linear map per region: (B, R, C) -> (B, R, A), region ``r`` through its own weights.

    Each region's weights and bias are initialised as ``nn.Linear(C, A)`` initialises its own."""

    def __init__(self, num_regions: int, in_features: int, out_features: int):
        super().__init__()
        layers = [nn.Linear(in_features, out_features) for _ in range(num_regions)]
        self.weight = nn.Parameter(torch.stack([layer.weight.detach().t() for layer in layers]))
        self.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]))

    def forward(self, region_features: torch.Tensor) -> torch.Tensor:
        return torch.einsum("brc,rca->bra", region_features, self.weight.to(region_features.dtype)) \
            + self.bias.to(region_features.dtype)


class RegionPooledHead(nn.Module):
    """SSP's two-branch classifier (§3.1.2, Fig. 1 right; after Bilen & Vedaldi's WSDDN).

    Features are averaged within each region (masks normalised to sum 1); a recognition and a
    localisation linear branch map each region's vector to 40 scores; the localisation scores
    are soft-maxed over regions per attribute and weight the recognition scores, whose sum is
    the attribute logit. ``shared=True`` applies the same two linear maps to every region (as
    WSDDN); ``shared=False`` gives every region its own pair (``num_regions`` needed).
    """

    def __init__(self, channels: int, num_attributes: int, num_regions: int | None = None,
                 shared: bool = True):
        super().__init__()
        if shared:
            self.recognition = nn.Linear(channels, num_attributes)
            self.localisation = nn.Linear(channels, num_attributes)
        else:
            if not num_regions:
                raise ValueError("unshared region branches need num_regions")
            self.recognition = RegionwiseLinear(num_regions, channels, num_attributes)
            self.localisation = RegionwiseLinear(num_regions, channels, num_attributes)
        self.shared = shared

    def forward(self, features: torch.Tensor, region_masks: torch.Tensor):
        """Return (logits (B, A), localisation weights (B, R, A) summing to 1 over R)."""
        weights = normalise_region_masks(region_masks.to(features.dtype))
        region_features = torch.einsum("bchw,brhw->brc", features, weights)
        recognition = self.recognition(region_features)
        localisation = torch.softmax(self.localisation(region_features).float(), dim=1)
        logits = (localisation * recognition.float()).sum(dim=1)
        return logits, localisation


def localisation_maps(weights: torch.Tensor, region_probs: torch.Tensor, size) -> torch.Tensor:
    """Per-image localisation map of every attribute: ``sum_r w[r, a] * mask_r`` (§3.1.2, Fig. 4
    per image), ``weights`` (B, R, A) from SSP's localisation branch, ``region_probs``
    (B, R, h, w) the parser's region probabilities, bilinearly resized to ``size`` (H, W).
    Returns (B, A, H, W); each map lies in [0, 1] since both factors sum to 1 over regions."""
    masks = F.interpolate(region_probs.float(), size=tuple(int(v) for v in size), mode="bilinear",
                          align_corners=False)
    return torch.einsum("bra,brhw->bahw", weights.float(), masks)


class SpatialPyramidPooling(nn.Module):
    """Max pooling over 1x1 and 2x2 bins, concatenated (He et al.; "SPPNet*", §4.3.1)."""

    def __init__(self, levels: tuple[int, ...]):
        super().__init__()
        self.levels = tuple(levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.adaptive_max_pool2d(x, level).flatten(1) for level in self.levels],
                         dim=1)

    def output_multiplier(self) -> int:
        return sum(level * level for level in self.levels)


class BasicAttributeNet(nn.Module):
    """Basic attribute net, §3.1.1: 12 conv layers, global average pooling, 1024 -> 40.

    ``pooling="spp"`` gives the SPPNet* baseline (two-level spatial pyramid pooling).
    """

    uses_landmarks = False

    def __init__(self, architecture: ArchitectureConfig, pooling: str = "average",
                 in_channels: int = 3, encoder: FaceEncoder | None = None):
        super().__init__()
        self.backbone = AttributeBackbone(architecture, in_channels, encoder=encoder)
        channels = self.backbone.out_channels
        if pooling == "average":
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        elif pooling == "spp":
            spp = SpatialPyramidPooling(architecture.spp_levels)
            self.pool = spp
            channels *= spp.output_multiplier()
        else:
            raise ValueError(f"pooling must be 'average' or 'spp', got {pooling!r}")
        self.classifier = nn.Linear(channels, architecture.num_attributes)

    def feature_map(self, image: torch.Tensor) -> torch.Tensor:
        return self.backbone(image)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.feature_map(image)))


class NaiveAttributeNet(nn.Module):
    """"Naive Approach" (§4.3.1): RGB + 7 segmentation maps as a 10-channel input normalised
    with Batch Normalization, fed to the average-pooling basic net."""

    uses_landmarks = False

    def __init__(self, architecture: ArchitectureConfig, segmentation: FrozenSegmentation):
        super().__init__()
        self.segmentation = segmentation
        in_channels = 3 + architecture.num_regions
        self.input_norm = nn.BatchNorm2d(in_channels)
        self.net = BasicAttributeNet(architecture, "average", in_channels)

    def _input(self, image: torch.Tensor) -> torch.Tensor:
        region_probs = self.segmentation(image, NAIVE_MASK_LAYER).to(image.dtype)
        return self.input_norm(torch.cat([image, region_probs], dim=1))

    def feature_map(self, image: torch.Tensor) -> torch.Tensor:
        return self.net.feature_map(self._input(image))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(self._input(image))


class SSGAttributeNet(nn.Module):
    """Basic net with SSG in place of the max-pools named in ``architecture.ssg_pools``
    (default MaxPool3, at Deconv33's 1/4 resolution), §3.1.3 and §5."""

    uses_landmarks = False

    def __init__(self, architecture: ArchitectureConfig, segmentation: FrozenSegmentation):
        super().__init__()
        if not architecture.ssg_pools:
            raise ValueError("SSG needs at least one gated pool layer (ssg_pools)")
        self.segmentation = segmentation
        self.backbone = AttributeBackbone(architecture, 3, architecture.ssg_pools)
        self.classifier = nn.Linear(self.backbone.out_channels, architecture.num_attributes)

    def feature_map(self, image: torch.Tensor) -> torch.Tensor:
        region_probs = self.segmentation(image, SSG_MASK_LAYER).to(image.dtype)
        return self.backbone(image, region_probs)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.feature_map(image).mean(dim=(-2, -1)))


class SSPAttributeNet(nn.Module):
    """Basic net with SSP in place of global average pooling (§3.1.2); region masks are the
    segmentation net's Deconv23 output resized to the last conv's resolution (§5)."""

    uses_landmarks = False

    def __init__(self, architecture: ArchitectureConfig, segmentation: FrozenSegmentation):
        super().__init__()
        self.segmentation = segmentation
        self.backbone = AttributeBackbone(architecture)
        self.head = RegionPooledHead(self.backbone.out_channels, architecture.num_attributes,
                                     architecture.num_regions, architecture.ssp_shared_branches)

    def feature_map(self, image: torch.Tensor) -> torch.Tensor:
        return self.backbone(image)

    def forward_with_regions(self, image: torch.Tensor):
        """Return (logits (B, A), localisation weights (B, R, A), Deconv23 region
        probabilities (B, R, h, w))."""
        features = self.backbone(image)
        region_probs = self.segmentation(image, SSP_MASK_LAYER)
        masks = ssp_region_masks(region_probs, features.shape[-2:])
        logits, weights = self.head(features, masks)
        return logits, weights, region_probs

    def forward_with_localisation(self, image: torch.Tensor):
        """Return (logits, localisation weights (B, regions, attributes))."""
        logits, weights, _ = self.forward_with_regions(image)
        return logits, weights

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.forward_with_localisation(image)[0]


def landmark_box_masks(landmarks: torch.Tensor, image_size, feature_size,
                       aspect_ratios: tuple[float, ...], area_fraction: float) -> torch.Tensor:
    """BBox regions (§4.3.1): the whole image plus one box per landmark and aspect ratio.

    ``landmarks`` (B, 5, 2) are (x, y) in input pixels. Boxes have area ``area_fraction`` of the
    image and width:height = ratio. Returns (B, 1 + 5 * len(ratios), h, w): the fraction of each
    feature cell the box covers.
    """
    height, width = (float(s) for s in image_size)
    rows, cols = (int(s) for s in feature_size)
    area = area_fraction * height * width
    ratios = torch.tensor(aspect_ratios, dtype=torch.float32, device=landmarks.device)
    box_w = torch.sqrt(area * ratios)  # (K,)
    box_h = torch.sqrt(area / ratios)
    centres = landmarks.float().unsqueeze(2)  # (B, 5, 1, 2)
    x0 = (centres[..., 0] - box_w / 2).flatten(1)  # (B, 5*K)
    x1 = (centres[..., 0] + box_w / 2).flatten(1)
    y0 = (centres[..., 1] - box_h / 2).flatten(1)
    y1 = (centres[..., 1] + box_h / 2).flatten(1)

    def coverage(lo, hi, extent, cells):
        edges = torch.linspace(0.0, extent, cells + 1, device=landmarks.device)
        overlap = (torch.minimum(hi.unsqueeze(-1), edges[1:])
                   - torch.maximum(lo.unsqueeze(-1), edges[:-1])).clamp_min(0)
        return overlap / (extent / cells)

    boxes = coverage(y0, y1, height, rows).unsqueeze(-1) * coverage(x0, x1, width, cols).unsqueeze(-2)
    whole_image = torch.ones_like(boxes[:, :1])
    return torch.cat([whole_image, boxes], dim=1)


class BBoxAttributeNet(nn.Module):
    """"BBox" baseline (§4.3.1): SSP's head over 16 landmark boxes instead of semantic regions
    (its branches shared or per region as SSP's, ``ssp_shared_branches``)."""

    uses_landmarks = True

    def __init__(self, architecture: ArchitectureConfig):
        super().__init__()
        self.backbone = AttributeBackbone(architecture)
        self.aspect_ratios = architecture.bbox_aspect_ratios
        self.area_fraction = architecture.bbox_area_fraction
        self.head = RegionPooledHead(self.backbone.out_channels, architecture.num_attributes,
                                     1 + 5 * len(self.aspect_ratios),
                                     architecture.ssp_shared_branches)

    def feature_map(self, image: torch.Tensor) -> torch.Tensor:
        return self.backbone(image)

    def forward(self, image: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        features = self.backbone(image)
        masks = landmark_box_masks(landmarks, image.shape[-2:], features.shape[-2:],
                                   self.aspect_ratios, self.area_fraction)
        return self.head(features, masks)[0]


class JointAttributeParsingNet(nn.Module):
    """§4.4: the attribute net's first 8 layers are the segmentation net's encoder."""

    def __init__(self, architecture: ArchitectureConfig):
        super().__init__()
        self.segmentation = SegmentationNet(architecture)
        self.attributes = BasicAttributeNet(architecture, "average",
                                            encoder=self.segmentation.encoder)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.attributes(image)


#: Attribute models of Table 2, in the paper's row order.
ATTRIBUTE_MODELS: tuple[str, ...] = ("spp", "naive", "bbox", "avgpool", "ssg", "ssp")


def build_attribute_model(name: str, architecture: ArchitectureConfig,
                          segmentation_net: SegmentationNet | None = None) -> nn.Module:
    """One attribute model of Table 2 by name."""
    needs_segmentation = name in ("naive", "ssg", "ssp")
    if needs_segmentation and segmentation_net is None:
        raise ValueError(f"model {name!r} needs a trained segmentation net")
    if name == "avgpool":
        return BasicAttributeNet(architecture, "average")
    if name == "spp":
        return BasicAttributeNet(architecture, "spp")
    if name == "bbox":
        return BBoxAttributeNet(architecture)
    segmentation = FrozenSegmentation(copy.deepcopy(segmentation_net))
    if name == "naive":
        return NaiveAttributeNet(architecture, segmentation)
    if name == "ssg":
        return SSGAttributeNet(architecture, segmentation)
    if name == "ssp":
        return SSPAttributeNet(architecture, segmentation)
    raise ValueError(f"unknown attribute model {name!r}; choose from {ATTRIBUTE_MODELS}")


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)

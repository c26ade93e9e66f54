"""Procedural face renderer: CelebA-aligned geometry, attributes drawn in their own regions.

Every face is drawn in a canonical 178 x 218 frame (CelebA's aligned images: eyes near
(69, 111) and (107, 111), nose tip near (88, 135), mouth corners near (72, 152) / (106, 152))
and mapped to the requested size by the same anisotropic scaling that resizing an aligned
CelebA image applies, composed with a small per-image rotation / scale / shift.

Shapes are implicit functions ``g(u, v)`` (negative inside) evaluated on the canonical
coordinates of the pixels of a bounding box only; ``g / |grad g|`` (finite differences in
pixels) is the signed pixel distance (strokes give a true distance and skip the gradient), so
edges are anti-aliased at any size. A shape that
carries a parsing label writes it wherever it covers at least half a pixel, which keeps the
masks pixel-exact with the painted image.

Parsing labels follow Smith et al. (CVPR'13) with *image* left / right (``left_eye`` is the
eye with the smaller x, as CelebA's ``lefteye`` landmark). Occluders: eyeglass frames over
the face take ``face_skin`` (lenses are transparent: the eyes under them stay ``*_eye``);
a hat takes ``hair``; earrings, necklace, necktie, neck and clothes are ``background``;
beards and stubble are ``face_skin``; sideburns are ``hair``; a bald scalp is ``face_skin``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter

from common.attributes import ATTRIBUTE_INDEX, NUM_ATTRIBUTES, helen11_to_parts7
from common.synthetic.marginals import (
    attributes_from_latent, embedded_statistics, make_consistent, sample_latent)

#: Bumped whenever the pixels, labels or sampling of a (seed, index) pair change.
GENERATOR_VERSION = "1.1"
TEMPLATE_HEIGHT, TEMPLATE_WIDTH = 218, 178
#: Consecutive indices ``k * IMAGES_PER_IDENTITY ...`` show the same synthetic person.
IMAGES_PER_IDENTITY = 4

# Smith et al.'s Helen labels (common.attributes.HELEN11_LABELS).
BACKGROUND, FACE_SKIN, LEFT_BROW, RIGHT_BROW, LEFT_EYE, RIGHT_EYE = 0, 1, 2, 3, 4, 5
NOSE, UPPER_LIP, INNER_MOUTH, LOWER_LIP, HAIR = 6, 7, 8, 9, 10

_STATISTICS = embedded_statistics()
_LATENT_CHOLESKY = np.linalg.cholesky(_STATISTICS.latent_correlation)
_A = ATTRIBUTE_INDEX

_SKIN_LIGHT_TO_DARK = np.array([[238, 204, 180], [222, 178, 146], [196, 142, 104],
                                [150, 100, 68], [96, 62, 42]], np.float32)
_PALE_SKIN = np.array([246, 226, 214], np.float32)
_HAIR_COLOUR = {"Black_Hair": (24, 20, 20), "Blond_Hair": (226, 190, 118),
                "Brown_Hair": (104, 66, 38), "Gray_Hair": (172, 170, 168)}
#: Hair with none of CelebA's four colour labels: auburn / red / light brown-red.
_OTHER_HAIR = np.array([[142, 62, 30], [176, 88, 46], [120, 78, 58]], np.float32)
_EYE_COLOURS = np.array([[70, 44, 26], [52, 92, 140], [72, 110, 70], [38, 28, 22]], np.float32)
_LIPSTICK = np.array([[196, 30, 58], [214, 70, 110], [150, 24, 48], [226, 96, 96]], np.float32)
_EYESHADOW = np.array([[120, 70, 140], [150, 100, 80], [70, 100, 160], [170, 110, 150]],
                      np.float32)


@dataclass(frozen=True)
class SyntheticFace:
    """One rendered face with its ground truth (all arrays are the drawing's own)."""

    image: np.ndarray         # uint8 (H, W, 3)
    attributes: np.ndarray    # uint8 (40,) in {0, 1}, CELEBA_ATTRIBUTES order
    landmarks: np.ndarray     # float32 (5, 2) x, y: lefteye, righteye, nose, leftmouth, rightmouth
    identity: int             # 1-based, as identity_CelebA.txt
    mask_helen11: np.ndarray  # uint8 (H, W) in 0..10 (HELEN11_LABELS)
    mask_parts7: np.ndarray   # uint8 (H, W) in 0..6 (PARTS7_LABELS) == helen11_to_parts7(helen11)
    index: int = 0
    yaw: float = 0.0          # horizontal head turn in [-1, 1] (negative: towards image left)


def identity_of(index: int) -> int:
    """1-based identity of image ``index`` (0-based)."""
    return index // IMAGES_PER_IDENTITY + 1


# --------------------------------------------------------------------------- drawing core
class _Canvas:
    """An RGB float image and its Helen label map, addressed in canonical coordinates."""

    def __init__(self, height: int, width: int, rotation: float, scale: float,
                 shift: tuple[float, float], placement: tuple[float, float, float] | None):
        self.height, self.width = height, width
        pivot = np.array([88.0, 120.0])
        shift = np.asarray(shift, float)
        if placement is None:   # CelebA's aligned frame, resized to height x width
            stretch = np.array([width / TEMPLATE_WIDTH, height / TEMPLATE_HEIGHT])
            target = stretch * (pivot + shift + 0.5) - 0.5
        else:                   # isotropic: ``pixels per unit`` and the pixel of the pivot
            stretch = np.array([placement[0], placement[0]])
            target = np.array(placement[1:], float) + stretch * shift
        cos, sin = np.cos(rotation) * scale, np.sin(rotation) * scale
        # canonical (u, v) -> pixel (x, y):  p = matrix @ c + offset
        self.matrix = np.diag(stretch) @ np.array([[cos, -sin], [sin, cos]])
        self.offset = target - self.matrix @ pivot
        inverse = np.linalg.inv(self.matrix).astype(np.float32)
        xs, ys = _pixel_grid(height, width)
        x0, y0 = np.float32(self.offset[0]), np.float32(self.offset[1])
        self.u = inverse[0, 0] * (xs - x0) + inverse[0, 1] * (ys - y0)
        self.v = inverse[1, 0] * (xs - x0) + inverse[1, 1] * (ys - y0)
        (self._m00, self._m01), (self._m10, self._m11) = self.matrix.tolist()
        self.pixels_per_unit = math.sqrt(abs(np.linalg.det(self.matrix)))
        self._ox, self._oy = self.offset.tolist()
        self.image = np.zeros((height, width, 3), np.float32)
        self.label = np.zeros((height, width), np.uint8)

    def to_pixels(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, float) @ self.matrix.T + self.offset

    def window(self, box):
        """Pixel slices covering the canonical box ``(u0, v0, u1, v1)`` (plus a margin)."""
        u0, v0, u1, v1 = (float(value) for value in box)
        xs = [self._m00 * u + self._m01 * v + self._ox for u in (u0, u1) for v in (v0, v1)]
        ys = [self._m10 * u + self._m11 * v + self._oy for u in (u0, u1) for v in (v0, v1)]
        x0, y0 = max(math.floor(min(xs)) - 2, 0), max(math.floor(min(ys)) - 2, 0)
        x1 = min(math.ceil(max(xs)) + 3, self.width)
        y1 = min(math.ceil(max(ys)) + 3, self.height)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        return slice(y0, y1), slice(x0, x1)

    def coverage(self, shape, box):
        """``(window, coverage in [0, 1])`` of the implicit ``shape(u, v)`` inside ``box``."""
        window = self.window(box)
        if window is None:
            return None, None
        g = np.asarray(shape(self.u[window], self.v[window]), np.float32)
        if getattr(shape, "is_distance", False):   # canonical distance: scale to pixels
            alpha = g * np.float32(self.pixels_per_unit)
        else:
            alpha = g / _gradient_norm(g)
        np.subtract(0.5, alpha, out=alpha)
        np.minimum(np.maximum(alpha, 0.0, out=alpha), 1.0, out=alpha)
        # Shrink the window to the pixels the shape touches (boxes are generous).
        rows = np.flatnonzero(alpha.any(1))
        if rows.size == 0:
            return None, None
        cols = np.flatnonzero(alpha.any(0))
        y0, x0 = window[0].start, window[1].start
        window = (slice(y0 + rows[0], y0 + rows[-1] + 1), slice(x0 + cols[0], x0 + cols[-1] + 1))
        return window, alpha[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]

    def paint(self, shape, box, colour, label=None, opacity=1.0, relabel=None):
        """Composite ``colour`` (RGB, a whole-canvas (H, W, 3) texture or ``colour(u, v)``).

        ``label`` is written where the shape covers at least half a pixel; with ``relabel``
        (a dict old -> new) only those labels change. Returns the coverage (or None)."""
        window, alpha = self.coverage(shape, box)
        if window is None:
            return None
        if callable(colour):
            colour = colour(self.u[window], self.v[window])
        elif np.ndim(colour) == 3:      # a whole-canvas texture
            colour = colour[window]
        region = self.image[window]
        weight = alpha * np.float32(opacity) if opacity != 1.0 else alpha
        region += (np.asarray(colour, np.float32) - region) * weight[..., None]
        if label is not None or relabel is not None:
            covered = alpha >= 0.5
            labels = self.label[window]
            if relabel is not None:
                for old, new in relabel.items():
                    labels[covered & (labels == old)] = new
            else:
                labels[covered] = label
        return alpha

    def tint(self, weight_fn, box, colour, strength=1.0):
        """Soft blend (no label) with per-pixel weight ``weight_fn(u, v)`` in [0, 1]."""
        window = self.window(box)
        if window is None:
            return
        weight = weight_fn(self.u[window], self.v[window]) * np.float32(strength)
        np.minimum(np.maximum(weight, 0.0, out=weight), 1.0, out=weight)
        region = self.image[window]
        region += (np.asarray(colour, np.float32) - region) * weight[..., None]

    def texture(self, colour_fn, box) -> np.ndarray:
        """A whole-canvas (H, W, 3) texture, computed by ``colour_fn(u, v)`` inside ``box`` only."""
        texture = np.zeros((self.height, self.width, 3), np.float32)
        window = self.window(box)
        if window is not None:
            texture[window] = colour_fn(self.u[window], self.v[window])
        return texture

    def shade(self, factor_fn):
        """Multiply every pixel by ``factor_fn(u, v)`` (lighting)."""
        self.image *= factor_fn(self.u, self.v)[..., None]


@lru_cache(maxsize=8)
def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    xs = np.broadcast_to(np.arange(width, dtype=np.float32), (height, width))
    ys = np.broadcast_to(np.arange(height, dtype=np.float32)[:, None], (height, width))
    return xs, ys


def _gradient_norm(g: np.ndarray) -> np.ndarray:
    """``|grad g|`` per pixel (central differences, one-sided at the border), at least 1e-6."""
    gx = np.empty_like(g)
    gy = np.empty_like(g)
    gx[:, 1:-1] = (g[:, 2:] - g[:, :-2]) * 0.5
    gx[:, 0] = g[:, 1] - g[:, 0]
    gx[:, -1] = g[:, -1] - g[:, -2]
    gy[1:-1] = (g[2:] - g[:-2]) * 0.5
    gy[0] = g[1] - g[0]
    gy[-1] = g[-1] - g[-2]
    return np.maximum(np.sqrt(gx * gx + gy * gy), 1e-6)


def _ellipse(cx, cy, rx, ry, angle=0.0):
    cx, cy, rx, ry = float(cx), float(cy), float(rx), float(ry)
    cos, sin = math.cos(angle), math.sin(angle)

    def shape(u, v):
        du, dv = u - cx, v - cy
        a = (cos * du + sin * dv) / rx
        b = (-sin * du + cos * dv) / ry
        return np.sqrt(a * a + b * b) - 1.0
    return shape


def _polyline_distance(u, v, points):
    """Distance from (u, v) to the polyline ``points`` (N, 2) and the arc parameter in [0, 1]."""
    points = np.asarray(points, np.float32)
    a, b = points[:-1], points[1:]
    ab = b - a
    length2 = np.maximum((ab ** 2).sum(1), 1e-9)
    pu = u[..., None] - a[:, 0]
    pv = v[..., None] - a[:, 1]
    t = np.clip((pu * ab[:, 0] + pv * ab[:, 1]) / length2, 0.0, 1.0)
    du, dv = pu - t * ab[:, 0], pv - t * ab[:, 1]
    d2 = du * du + dv * dv
    nearest_d2 = d2.min(-1)
    # Arc parameter of the nearest segment (ties: the smaller parameter).
    arc = t + np.arange(len(a), dtype=np.float32)
    arc = np.where(d2 <= nearest_d2[..., None], arc, np.float32(len(a))).min(-1)
    return np.sqrt(nearest_d2), arc * np.float32(1.0 / len(a))


def _stroke(points, radius_start, radius_end=None):
    """Thick polyline whose radius goes linearly from ``radius_start`` to ``radius_end``."""
    radius_start = float(radius_start)
    radius_end = radius_start if radius_end is None else float(radius_end)

    def shape(u, v):
        distance, s = _polyline_distance(u, v, points)
        return distance - (radius_start + (radius_end - radius_start) * s)
    shape.is_distance = True   # a true distance in canonical units (no gradient needed)
    return shape


def _box_of(points, margin):
    points = np.asarray(points, float)
    return (points[:, 0].min() - margin, points[:, 1].min() - margin,
            points[:, 0].max() + margin, points[:, 1].max() + margin)


def _smoothstep(edge0, edge1, x):
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _gaussian_blob(cx, cy, rx, ry):
    cx, cy, rx, ry = float(cx), float(cy), float(rx), float(ry)
    return lambda u, v: np.exp(-0.5 * (((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2))


# --------------------------------------------------------------------------- parameters
@dataclass
class _Identity:
    """What stays fixed across the images of one synthetic person (continuous traits)."""

    skin: np.ndarray
    hair_other: np.ndarray
    eye_colour: np.ndarray
    face_half_width: float
    chin_y: float
    jaw_exponent: float
    eye_spacing: float
    eye_half_width: float
    eye_half_height: float
    brow_thickness: float
    brow_height: float
    nose_width: float
    nose_length: float
    mouth_half_width: float
    lip_upper: float
    lip_lower: float
    hair_volume: float
    hair_length: float
    hair_part: float
    hair_phase: float
    hairline: float


def _identity_parameters(seed: int, identity: int, attributes: np.ndarray) -> _Identity:
    """Continuous traits of ``identity``, modulated by its attributes.

    All random numbers are drawn up front in a fixed order, so switching an attribute (e.g.
    ``overrides={"Big_Nose": 1}``) changes only what that attribute controls."""
    rng = np.random.default_rng([seed, identity, 1])
    tone = rng.beta(1.4, 3.2) * (len(_SKIN_LIGHT_TO_DARK) - 1)
    skin_jitter = rng.normal(0, 4, 3)
    hair_other = _OTHER_HAIR[rng.integers(len(_OTHER_HAIR))]
    eye_colour = _EYE_COLOURS[rng.integers(len(_EYE_COLOURS))]
    r = rng.uniform(0.0, 1.0, 16).tolist()   # Python floats: float32 pixels never widen
    flag = {name: int(attributes[i]) for name, i in _A.items()}
    male, chubby, oval = flag["Male"], flag["Chubby"], flag["Oval_Face"]
    big_lips, big_nose = flag["Big_Lips"], flag["Big_Nose"]

    low = int(np.floor(tone))
    high = min(low + 1, len(_SKIN_LIGHT_TO_DARK) - 1)
    skin = (_SKIN_LIGHT_TO_DARK[low] * (1 - (tone - low)) + _SKIN_LIGHT_TO_DARK[high] * (tone - low)
            + skin_jitter)
    if flag["Pale_Skin"]:
        skin = 0.25 * skin + 0.75 * _PALE_SKIN
    return _Identity(
        skin=np.clip(skin, 0, 255).astype(np.float32),
        hair_other=hair_other,
        eye_colour=eye_colour,
        face_half_width=36.5 + 2.5 * r[0] + 2.5 * male + 6.5 * chubby - 2.0 * oval,
        chin_y=175.0 + 5.0 * r[1] + 3.0 * male + 5.0 * oval + 2.0 * chubby,
        jaw_exponent=(2.8 if male else 2.1) + 0.3 * (r[2] - 0.5) - 0.3 * oval + 0.2 * chubby,
        eye_spacing=37.0 + 3.0 * r[3],
        eye_half_width=8.0 + r[4],
        eye_half_height=2.3 if flag["Narrow_Eyes"] else 4.0 + 0.8 * r[5],
        brow_thickness=3.4 if flag["Bushy_Eyebrows"] else 1.7 + 0.4 * male,
        brow_height=99.0 + 2.0 * r[6],
        nose_width=12.5 + 0.8 * r[7] if big_nose else 7.5 + r[7],
        nose_length=139.0 + r[8] if big_nose else 135.0 + 2.0 * r[8],
        mouth_half_width=14.0 + 2.0 * r[9] + 1.0 * male,
        lip_upper=4.6 + 0.4 * r[10] if big_lips else 2.6 + 0.6 * r[10] - 0.6 * male,
        lip_lower=7.0 + 0.6 * r[11] if big_lips else 3.8 + 0.8 * r[11] - 0.8 * male,
        hair_volume=2.0 + 8.0 * r[12],
        hair_length=4.0 + 6.0 * r[13] if male else 190.0 + 60.0 * r[13],
        hair_part=-12.0 + 24.0 * r[14],
        hair_phase=2 * np.pi * r[15],
        hairline=66.0 + 6.0 * r[12] + (0.0 if flag["Young"] else 3.0),
    )


def sample_attributes(index: int, seed: int = 0) -> np.ndarray:
    """The 40 attributes of image ``index``: CelebA's copula (see ``marginals``) + consistency."""
    identity = identity_of(index)
    identity_latent = sample_latent(np.random.default_rng([seed, identity, 0]), _LATENT_CHOLESKY)
    image_latent = sample_latent(np.random.default_rng([seed, index, 0, 0]), _LATENT_CHOLESKY)
    attributes, margin = attributes_from_latent(identity_latent, image_latent, _STATISTICS)
    return make_consistent(attributes, margin)


# --------------------------------------------------------------------------- the face
def render_face(index: int, seed: int = 0, height: int = TEMPLATE_HEIGHT,
                width: int = TEMPLATE_WIDTH, *, yaw: float | None = None,
                overrides: dict[str, int] | None = None,
                placement: tuple[float, float, float] | None = None) -> SyntheticFace:
    """Render face ``index`` of the synthetic dataset ``seed`` at ``height`` x ``width``.

    Deterministic in ``(seed, index)`` (and ``yaw`` / ``overrides``). ``yaw`` in [-1, 1]
    turns the head (MTFL poses); by default a small random turn. ``overrides`` forces
    attribute values (e.g. ``{"Eyeglasses": 1}``) before the consistency rules; everything
    else about the face (identity, pose, lighting, colours) stays the same. ``placement``
    ``(pixels_per_unit, x, y)`` draws the face isotropically with the point between the
    cheeks (canonical (88, 120)) at pixel (x, y) instead of CelebA's aligned frame (MTFL's
    in-the-wild framing)."""
    if height < 16 or width < 16:
        raise ValueError(f"render_face needs at least 16 x 16 pixels, got {height} x {width}")
    attributes = sample_attributes(index, seed)
    if overrides:
        margin = np.zeros(NUM_ATTRIBUTES)       # overridden values win every tie-break
        for name, value in overrides.items():
            attributes[_A[name]] = int(bool(value))
            margin[_A[name]] = 10.0 if value else -10.0
        attributes = make_consistent(attributes, margin)
    has = {name: bool(attributes[i]) for name, i in _A.items()}
    identity = identity_of(index)
    person = _identity_parameters(seed, identity, attributes)
    rng = np.random.default_rng([seed, index, 1])
    # Per-image nuisance, drawn in a fixed order so overrides never shift the stream.
    rotation = np.deg2rad(rng.normal(0, 2.0))
    scale = rng.uniform(0.96, 1.04)
    shift = rng.normal(0, 1.5, 2)
    drawn_yaw = float(np.clip(rng.normal(0, 0.12), -0.3, 0.3))
    yaw = drawn_yaw if yaw is None else float(np.clip(yaw, -1, 1))
    style = {
        "background": rng.uniform(30, 235, (2, 3)), "blob": rng.uniform(0, 1, 5),
        "clothes": rng.uniform(20, 220, 3), "light_angle": rng.uniform(0, 2 * np.pi),
        "light": rng.uniform(0.05, 0.22), "brightness": rng.uniform(0.9, 1.08),
        "glasses_round": rng.uniform() < 0.35, "glasses_dark": rng.uniform() < 0.15,
        "glasses_colour": rng.choice([[20, 20, 24], [90, 60, 40], [150, 150, 160],
                                      [120, 20, 30]]),
        "hat": rng.uniform(20, 230, 3), "hat_kind": int(rng.integers(2)),
        "earring_gold": rng.uniform() < 0.6, "earring_hoop": rng.uniform() < 0.4,
        "tie": rng.uniform(20, 200, 3), "lipstick": _LIPSTICK[rng.integers(len(_LIPSTICK))],
        "shadow": _EYESHADOW[rng.integers(len(_EYESHADOW))], "gaze": rng.uniform(-1.5, 1.5),
        "blur": rng.uniform(1.4, 2.2), "noise": rng.uniform(2.0, 5.0),
        "noise_seed": rng.integers(2 ** 31), "blemish": rng.uniform(0, 1, (6, 3)),
    }
    canvas = _Canvas(height, width, rotation, scale, shift, placement)
    geometry = _draw(canvas, has, person, style, yaw)
    # Sensor noise (the same in the three channels), then 8 bits.
    noise = np.random.default_rng(style["noise_seed"]).standard_normal(
        (height, width, 1), np.float32)
    image = canvas.image
    image += noise * np.float32(style["noise"])
    image = np.minimum(np.maximum(image, 0.0, out=image), 255.0, out=image).astype(np.uint8)
    if has["Blurry"]:
        radius = style["blur"] * canvas.pixels_per_unit
        image = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))
    landmarks = canvas.to_pixels(geometry).astype(np.float32)
    return SyntheticFace(image=image, attributes=attributes.astype(np.uint8),
                         landmarks=landmarks, identity=identity, mask_helen11=canvas.label,
                         mask_parts7=helen11_to_parts7(canvas.label), index=index, yaw=yaw)


def generate_faces(n: int, seed: int = 0, height: int = TEMPLATE_HEIGHT,
                   width: int = TEMPLATE_WIDTH, start: int = 0) -> list[SyntheticFace]:
    """Faces ``start .. start + n - 1`` of the synthetic dataset ``seed``."""
    return [render_face(index, seed, height, width) for index in range(start, start + n)]


def _draw(canvas: _Canvas, has: dict[str, bool], person: _Identity, style: dict,
          yaw: float) -> np.ndarray:
    """Paint everything back to front; return the 5 landmarks in canonical coordinates."""
    male = has["Male"]
    # Yaw: features in front of the face move more than its outline (depth parallax).
    turn = 11.0 * yaw
    foreshortening = 1.0 - 0.25 * abs(yaw)   # widths across the face shrink as it turns
    cx = 88.0 + 0.35 * turn          # face outline centre
    fx = 88.0 + turn                 # centre line of the eyes / nose / mouth
    nose_x = 88.0 + 1.35 * turn
    rx, chin = person.face_half_width, person.chin_y
    top = 52.0                       # top of the forehead ellipse
    cy = 118.0                       # widest line of the face
    skin = person.skin
    hair_names = [n for n in ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair") if has[n]]
    hair_colour = (np.array(_HAIR_COLOUR[hair_names[0]], np.float32) if hair_names
                   else person.hair_other)
    wavy, straight = has["Wavy_Hair"], has["Straight_Hair"]
    bald = has["Bald"]

    # Background: vertical gradient and a few soft blobs.
    bg0, bg1 = style["background"].astype(np.float32)
    rows = np.linspace(0.0, 1.0, canvas.height, dtype=np.float32)[:, None, None]
    canvas.image[:] = bg0 + (bg1 - bg0) * rows
    b = style["blob"]
    blob_x, blob_y, blob_rx, blob_ry = 178 * b[0], 218 * b[1], 30 + 40 * b[2], 30 + 40 * b[3]
    canvas.tint(_gaussian_blob(blob_x, blob_y, blob_rx, blob_ry),
                (blob_x - 2.5 * blob_rx, blob_y - 2.5 * blob_ry, blob_x + 2.5 * blob_rx,
                 blob_y + 2.5 * blob_ry), bg1[::-1], strength=0.5 * b[4])

    black = hair_names == ["Black_Hair"]

    def hair_texture(u, v):
        """Strands: parallel for straight hair, sinuous for wavy, slightly kinked otherwise."""
        x = u - person.hair_part
        if wavy:
            wave = 3.2 * np.sin(v * 0.2 + person.hair_phase)
        else:
            wave = 0.0 if straight else 0.7 * np.sin(v * 0.45 + 0.3 * x + person.hair_phase)
        strands = np.sin(1.7 * (x + wave)) * 0.6 + np.sin(0.45 * (x + wave) + 1.3) * 0.4
        sheen = (0.2 if straight else 0.1) * np.exp(-((v - 66) / 14) ** 2)
        if wavy:   # light catches the crest of every wave
            sheen = sheen + 0.1 * np.cos(v * 0.2 + person.hair_phase)
        colour = hair_colour * (0.84 + 0.12 * strands + sheen)[..., None]
        if black:
            colour = colour + 24.0 * np.maximum(strands[..., None] - 0.6, 0) + 8.0 * sheen[
                ..., None]
        return np.minimum(colour, 255.0)
    long_hair = not bald and person.hair_length > 100
    head_rx = rx + 5 + 0.4 * person.hair_volume
    hair_bottom = person.hair_length if long_hair else 150.0
    hair_pixels = None if bald else canvas.texture(
        hair_texture, (cx - head_rx - 30, 25, cx + head_rx + 30, hair_bottom + 5))

    # Clothes (shoulders) background label.
    clothes = style["clothes"]
    canvas.paint(_ellipse(cx, chin + 78, 92, 52), (-10, chin + 20, 188, chin + 132), clothes,
                 label=BACKGROUND)

    # Long hair behind the head, falling in front of the shoulders.
    if long_hair:
        length = person.hair_length

        def back_hair(u, v):
            width = head_rx + 6 + 10 * _smoothstep(110, 200, v)
            if wavy:
                width = width + 3.0 * np.sin(v * 0.25 + person.hair_phase)
            side = np.abs(u - cx) - width
            return np.maximum(np.maximum(side, v - length), 60 - v)
        canvas.paint(back_hair, (cx - head_rx - 25, 55, cx + head_rx + 25, length + 5),
                     hair_pixels, label=HAIR)

    # Neck (background label), over the back hair.
    neck_half = rx * (0.7 if male else 0.6)

    def neck(u, v):
        return np.maximum(np.abs(u - cx) - neck_half - 0.04 * np.maximum(v - chin, 0),
                          np.maximum(cy - v, v - (chin + 45)))
    canvas.paint(neck, (cx - neck_half - 8, cy, cx + neck_half + 8, chin + 50),
                 lambda u, v: skin * (0.78 + 0.1 * _smoothstep(chin, chin + 30, v))[..., None],
                 label=BACKGROUND)
    if has["Wearing_Necktie"]:
        collar = np.array([[cx - 22, chin + 22], [cx, chin + 40], [cx + 22, chin + 22]])
        canvas.paint(_stroke(collar, 5.0), _box_of(collar, 6), (236, 236, 232), label=BACKGROUND)
        tie = style["tie"]

        def necktie(u, v):
            half = 3.0 + 0.09 * np.maximum(v - (chin + 34), 0)
            return np.maximum(np.abs(u - cx) - half, chin + 30 - v)
        canvas.paint(necktie, (cx - 12, chin + 28, cx + 12, 230), tie, label=BACKGROUND)
        canvas.paint(_ellipse(cx, chin + 33, 4.2, 3.8), (cx - 6, chin + 28, cx + 6, chin + 38),
                     np.asarray(tie) * 0.8, label=BACKGROUND)
    if has["Wearing_Necklace"]:
        t = np.linspace(-1, 1, 15)
        chain = np.stack([cx + (neck_half + 4) * t, chin + 18 + 12 * (1 - t ** 2)], 1)
        metal = (225, 190, 90) if style["earring_gold"] else (225, 225, 235)
        canvas.paint(_stroke(chain, 1.1), _box_of(chain, 4), metal, label=BACKGROUND)
        for bead in chain[::2]:
            canvas.paint(_ellipse(bead[0], bead[1], 2.0, 2.0),
                         (bead[0] - 3, bead[1] - 3, bead[0] + 3, bead[1] + 3),
                         (245, 240, 230) if not style["earring_gold"] else metal,
                         label=BACKGROUND)

    # Ears (face skin), then the face.
    ear_y = 124.0
    ears = [(cx - rx - 1.5, -1), (cx + rx + 1.5, 1)]
    for ear_x, _ in ears:
        canvas.paint(_ellipse(ear_x, ear_y, 5.5, 11.5), (ear_x - 7, ear_y - 13, ear_x + 7,
                                                           ear_y + 13),
                     skin * 0.92, label=FACE_SKIN)
    p = person.jaw_exponent

    def face(u, v):
        du = (u - cx) / rx
        upper = np.sqrt(du * du + ((v - cy) / (cy - top)) ** 2) - 1.0
        lower = (np.abs(du) ** p + np.abs((v - cy) / (chin - cy)) ** p) ** (1.0 / p) - 1.0
        return np.where(v < cy, upper, lower)

    def face_colour(u, v):
        du = (u - cx) / rx
        dv = (v - 120) / 70
        shading = 1.0 - 0.16 * np.clip(du * du + 0.5 * dv * dv, 0, 1.5)
        return skin * shading[..., None]
    face_box = (cx - rx - 1, top - 1, cx + rx + 1, chin + 1)
    canvas.paint(face, face_box, face_colour, label=FACE_SKIN)
    # The scalp above the forehead (face skin): shows on bald heads and receding temples.
    scalp_shine = 0.15 if bald else 0.0

    def scalp(u, v):
        return np.maximum(_ellipse(cx, 112, rx + 1.5, 112 - 44)(u, v), v - 100)
    canvas.paint(scalp, (cx - rx - 4, 40, cx + rx + 4, 102),
                 lambda u, v: face_colour(u, v) * (1 + scalp_shine * np.exp(
                     -(((u - cx + 8) / 10) ** 2 + ((v - 58) / 8) ** 2)))[..., None],
                 label=FACE_SKIN)
    if has["Double_Chin"]:
        canvas.paint(_ellipse(cx, chin + 2, rx * 0.5, 7.5), (cx - rx, chin - 10, cx + rx,
                                                               chin + 12),
                     skin * 0.88, label=FACE_SKIN)
        crease = np.stack([cx + np.linspace(-15, 15, 9),
                           chin + 0.5 - 4.0 * np.linspace(-1, 1, 9) ** 2], 1)
        canvas.paint(_stroke(crease, 0.9), _box_of(crease, 3), skin * 0.55)
    if has["Chubby"]:
        for side in (-1, 1):
            canvas.tint(_gaussian_blob(cx + side * (rx - 12), 146, 9, 9),
                        (cx - rx, 130, cx + rx, 165), skin * 1.08, strength=0.6)

    # Cheek cues: rosy cheeks, blush, cheekbone highlight.
    eye_y = 111.0
    eye_offset = person.eye_spacing / 2 * foreshortening
    eyes_x = (fx - eye_offset, fx + eye_offset)
    cheek_box = (cx - rx, 115, cx + rx, 160)
    if has["Rosy_Cheeks"]:
        for ex in eyes_x:
            canvas.tint(_gaussian_blob(ex + (ex - fx) * 0.25, 138, 8, 6), cheek_box,
                        (222, 70, 80), strength=0.55)
    if has["Heavy_Makeup"]:
        for ex in eyes_x:
            canvas.tint(_gaussian_blob(ex + (ex - fx) * 0.35, 134, 9, 5), cheek_box,
                        (230, 120, 120), strength=0.3)
    if has["High_Cheekbones"]:
        for ex in eyes_x:
            side = np.sign(ex - fx)
            canvas.tint(_gaussian_blob(ex + side * 7, 127, 8, 3.5), cheek_box, (255, 245, 235),
                        strength=0.35)
            canvas.tint(_gaussian_blob(ex + side * 9, 142, 5, 3), cheek_box, skin * 0.7,
                        strength=0.35)
    if not has["Attractive"]:
        for bx, by, bs in style["blemish"]:
            spot_x, spot_y = cx + (bx - 0.5) * rx * 1.4, 90 + by * 70
            canvas.tint(_gaussian_blob(spot_x, spot_y, 1 + bs, 1 + bs),
                        (spot_x - 5, spot_y - 5, spot_x + 5, spot_y + 5), skin * 0.72,
                        strength=0.6)

    # Facial hair (face skin) for men.
    lower_face = (cx - rx - 1, 120, cx + rx + 1, chin + 2)
    mouth_y = 152.0 - (3.0 if has["Smiling"] else 0.0)
    beard_colour = hair_colour if not bald else np.array([70, 60, 55], np.float32)
    beard_colour = np.minimum(beard_colour, 120) * 0.8
    if has["5_o_Clock_Shadow"]:
        def stubble(u, v):
            inside = face(u, v) < 0
            return (inside * _smoothstep(132, 150, v)
                    * (0.55 + 0.25 * np.sin(u * 2.7) * np.sin(v * 3.1)))
        canvas.tint(stubble, lower_face, (70, 72, 84), strength=0.55)
    full_beard = male and not has["No_Beard"] and not (has["Goatee"] or has["Mustache"]
                                                       or has["Sideburns"])
    if full_beard:
        def jaw_beard(u, v):
            outline = face(u, v)
            below_mouth = mouth_y + 5 - v
            along_jaw = np.maximum(-outline - 0.2, cy + 6 - v)
            return np.maximum(outline, np.minimum(below_mouth, along_jaw))
        canvas.paint(jaw_beard, lower_face,
                     lambda u, v: beard_colour * (0.9 + 0.12 * np.sin(u * 2.1 + v * 1.7))[
                         ..., None], opacity=0.95)
    if has["Goatee"]:
        goatee = _ellipse(fx, mouth_y + 17, 10.5, 10.5)
        canvas.paint(lambda u, v: np.maximum(goatee(u, v), face(u, v)),
                     (fx - 13, mouth_y + 4, fx + 13, chin + 2),
                     beard_colour, opacity=0.95)
    if has["Mustache"]:
        stache = np.array([[fx - person.mouth_half_width - 2, mouth_y + 1], [fx, mouth_y - 7],
                           [fx + person.mouth_half_width + 2, mouth_y + 1]])
        canvas.paint(_stroke(stache, 3.2), _box_of(stache, 5), beard_colour, opacity=0.95)

    # Wrinkles of age.
    if not has["Young"]:
        wrinkle = skin * 0.68
        for side in (-1, 1):
            fold = np.array([[nose_x + side * 9.5, 137],
                             [nose_x + side * 13.0, 146],
                             [fx + side * (person.mouth_half_width + 3), 157]])
            canvas.paint(_stroke(fold, 0.75), _box_of(fold, 3), wrinkle)
            for k in (-1, 0, 1):
                foot = np.array([[fx + side * (person.eye_spacing / 2 + 10), 111 + 2 * k],
                                 [fx + side * (person.eye_spacing / 2 + 15), 110 + 4 * k]])
                canvas.paint(_stroke(foot, 0.5), _box_of(foot, 2), wrinkle)
        for k in range(3):
            line = np.stack([cx + np.linspace(-22, 22, 5),
                             80 + 5 * k + 1.2 * np.sin(np.linspace(0, np.pi, 5))], 1)
            canvas.paint(_stroke(line, 0.55), _box_of(line, 2), wrinkle)

    # Eyes (labels 4 = image-left, 5 = image-right).
    eye_landmarks = []
    for side, (ex, eye_label, brow_label) in enumerate(zip(
            eyes_x, (LEFT_EYE, RIGHT_EYE), (LEFT_BROW, RIGHT_BROW))):
        far = (side == 0 and yaw > 0) or (side == 1 and yaw < 0)
        ew = person.eye_half_width * (1 - 0.35 * abs(yaw) * far)
        eh = person.eye_half_height * (0.75 if has["Smiling"] and not has["Narrow_Eyes"] else 1)
        if has["Bags_Under_Eyes"]:
            canvas.tint(_gaussian_blob(ex, eye_y + eh + 3.0, ew * 0.85, 2.4),
                        (ex - 12, eye_y, ex + 12, eye_y + 12), (96, 66, 84), strength=0.6)
            bag = np.stack([ex + ew * 0.8 * np.linspace(-1, 1, 7),
                            eye_y + eh + 5.0 - 1.5 * (1 - np.linspace(-1, 1, 7) ** 2)], 1)
            canvas.paint(_stroke(bag, 0.5), _box_of(bag, 2), skin * 0.6, opacity=0.8)
        if has["Heavy_Makeup"]:
            canvas.tint(_gaussian_blob(ex, eye_y - eh - 1.5, ew * 1.0, 3.0),
                        (ex - 13, eye_y - 13, ex + 13, eye_y), style["shadow"], strength=0.6)
        eye_box = (ex - ew - 2, eye_y - eh - 2, ex + ew + 2, eye_y + eh + 2)
        canvas.paint(_ellipse(ex, eye_y, ew, eh), eye_box, (242, 240, 236), label=eye_label)
        iris_x = ex + style["gaze"] + 0.4 * turn
        eye_shape = _ellipse(ex, eye_y, ew, eh)
        iris_r = min(3.8, eh * 1.15 + 0.8)

        def iris(u, v, iris_x=iris_x, eye_shape=eye_shape, iris_r=iris_r):
            return np.maximum(np.hypot(u - iris_x, v - eye_y) / iris_r - 1.0, eye_shape(u, v))
        canvas.paint(iris, eye_box, person.eye_colour)

        def pupil(u, v, iris_x=iris_x, eye_shape=eye_shape):
            return np.maximum(np.hypot(u - iris_x, v - eye_y) / 1.6 - 1.0, eye_shape(u, v))
        canvas.paint(pupil, eye_box, (12, 10, 10))
        lid = np.stack([ex + ew * np.linspace(-1.05, 1.05, 7),
                        eye_y - eh * np.sqrt(np.clip(1 - np.linspace(-1, 1, 7) ** 2, 0, 1))
                        ], 1)
        liner = 1.1 if has["Heavy_Makeup"] else (0.75 if not male else 0.55)
        canvas.paint(_stroke(lid, liner), _box_of(lid, 3), (30, 22, 20))
        eye_landmarks.append((ex, eye_y))

        # Eyebrow above, inner end towards the nose.
        inner = 1 if side == 0 else -1
        t = np.linspace(0, 1, 7)
        xs = ex - inner * 12 + inner * 24 * t          # outer -> inner
        arch = 4.5 if has["Arched_Eyebrows"] else 1.6
        peak = np.exp(-((t - 0.4) / 0.28) ** 2)
        ys = person.brow_height - arch * peak + 1.5 * (1 - t) - 1.0 * has["Arched_Eyebrows"]
        brow = np.stack([xs, ys], 1)
        brow_colour = (np.minimum(hair_colour, 110) * 0.75 if hair_names != ["Blond_Hair"]
                       else np.array([150, 120, 80]))
        thickness = person.brow_thickness
        canvas.paint(_stroke(brow, thickness * 0.55, thickness), _box_of(brow, thickness + 2),
                     brow_colour, label=brow_label)

    # Nose (label 6): bridge + tip; the tip is the nose landmark.
    nw, nose_tip_y = person.nose_width, person.nose_length
    pointy = has["Pointy_Nose"]
    bridge_x = (fx + nose_x) / 2

    def nose_shape(u, v):
        t = np.clip((v - 114) / (nose_tip_y - 114), 0, 1)
        half = 3.2 + (nw * 0.55 - 3.2) * t ** 2
        centre = bridge_x + (nose_x - bridge_x) * t
        bridge = np.maximum(np.abs(u - centre) - half, np.maximum(114 - v, v - nose_tip_y))
        tip = _ellipse(nose_x, nose_tip_y + 1.0, nw * (0.8 if pointy else 1.0),
                       6.5 if pointy else 5.0)(u, v) * 5.0
        return np.minimum(bridge, tip)

    def nose_colour(u, v):
        centre = bridge_x + (nose_x - bridge_x) * np.clip((v - 114) / (nose_tip_y - 114), 0, 1)
        side = np.abs(u - centre) / (nw + 1)
        highlight = (0.18 if pointy else 0.08) * np.exp(-((u - centre) / 1.8) ** 2) * (
            0.5 + 0.5 * _smoothstep(118, nose_tip_y, v))
        return face_colour(u, v) * (0.98 - 0.2 * side ** 2 + highlight)[..., None]
    nose_box = (nose_x - nw - 2, 112, nose_x + nw + 2, nose_tip_y + 8)
    canvas.paint(nose_shape, nose_box, nose_colour, label=NOSE)
    for side in (-1, 1):
        nostril = _ellipse(nose_x + side * nw * 0.45, nose_tip_y + 3.0, 2.2, 1.2,
                           angle=0.3 * side)
        canvas.paint(nostril, (nose_x - nw, nose_tip_y, nose_x + nw, nose_tip_y + 6),
                     skin * 0.35)
    for side in (-1, 1):   # the wings (alae) round the nostrils
        wing = np.array([[nose_x + side * nw * 0.5, nose_tip_y - 3.5],
                         [nose_x + side * nw * 0.92, nose_tip_y + 0.5],
                         [nose_x + side * nw * 0.8, nose_tip_y + 3.5],
                         [nose_x + side * nw * 0.45, nose_tip_y + 4.5]])
        canvas.paint(_stroke(wing, 0.55), _box_of(wing, 2), skin * 0.55, opacity=0.85)
    if pointy:
        canvas.paint(_stroke(np.array([[nose_x - 2.2, nose_tip_y + 4.8],
                                       [nose_x, nose_tip_y + 6.3],
                                       [nose_x + 2.2, nose_tip_y + 4.8]]), 0.6),
                     nose_box, skin * 0.6)

    # Mouth: upper lip 7, inner mouth 8, lower lip 9; corners are the mouth landmarks.
    mw = (person.mouth_half_width + (3.0 if has["Smiling"] else 0.0)) * foreshortening
    smile = 5.0 if has["Smiling"] else 0.6
    gap = (3.5 + 1.5 * has["Smiling"]) if has["Mouth_Slightly_Open"] else 0.0
    mouth_x = fx + 0.9 * turn

    def profile(u):
        s = np.clip((u - mouth_x) / mw, -1, 1)
        return s, np.sqrt(np.clip(1 - s * s, 0, 1))

    def mouth_line(u):
        s, _ = profile(u)
        return mouth_y + smile * (1 - s * s)

    def upper_lip(u, v):
        s, bulge = profile(u)
        bow = 0.8 * np.exp(-(s / 0.12) ** 2)
        bottom = mouth_line(u) - gap / 2 * bulge
        top_edge = bottom - person.lip_upper * (bulge ** 0.7) * (1 - 0.2 * bow) - 0.25
        return np.maximum(np.maximum(top_edge - v, v - bottom), np.abs(u - mouth_x) - mw)

    def inner_mouth(u, v):
        _, bulge = profile(u)
        line = mouth_line(u)
        return np.maximum(np.maximum(line - gap / 2 * bulge - v, v - line - gap / 2 * bulge),
                          np.abs(u - mouth_x) - mw)

    def lower_lip(u, v):
        _, bulge = profile(u)
        top_edge = mouth_line(u) + gap / 2 * bulge
        bottom = top_edge + person.lip_lower * (bulge ** 0.7) + 0.25
        return np.maximum(np.maximum(top_edge - v, v - bottom), np.abs(u - mouth_x) - mw)

    if has["Wearing_Lipstick"]:
        lip_colour = style["lipstick"]
    else:
        lip_colour = skin * np.array([0.86, 0.62, 0.62]) + np.array([20, 6, 10]) * (not male)
    mouth_box = (mouth_x - mw - 2, mouth_y - 10, mouth_x + mw + 2, mouth_y + smile + 14)
    if has["Smiling"]:   # smile creases from the nose wings round the raised corners
        for side in (-1, 1):
            crease = np.array([[nose_x + side * 10.0, 138], [mouth_x + side * (mw + 4.0), 147],
                               [mouth_x + side * (mw + 3.0), mouth_y + 9]])
            canvas.paint(_stroke(crease, 0.8), _box_of(crease, 3), skin * 0.72, opacity=0.8)
    canvas.paint(upper_lip, mouth_box, lip_colour * 0.9, label=UPPER_LIP)
    canvas.paint(lower_lip, mouth_box, lambda u, v: lip_colour * (
        1.0 + 0.12 * np.exp(-((v - mouth_y - smile - gap / 2 - 2.5) / 1.5) ** 2))[..., None],
        label=LOWER_LIP)
    if gap > 0:
        def mouth_inside(u, v):
            teeth = (v < mouth_line(u) - 0.2) & bool(has["Smiling"])
            return np.where(teeth[..., None], np.float32([236, 232, 222]),
                            np.float32([70, 24, 30]))
        canvas.paint(inner_mouth, mouth_box, mouth_inside, label=INNER_MOUTH)
    else:
        line = np.stack([mouth_x + mw * np.linspace(-1, 1, 7),
                         mouth_line(mouth_x + mw * np.linspace(-1, 1, 7))], 1)
        canvas.paint(_stroke(line, 0.55), mouth_box, lip_colour * 0.45)
    mouth_corners = [(mouth_x - mw, mouth_y), (mouth_x + mw, mouth_y)]

    # Hair on the head (label 10), sideburns, then the hat.
    if not bald:
        receding = has["Receding_Hairline"]
        bangs = has["Bangs"]
        hairline = person.hairline
        side_bottom = 120.0 if male else 150.0

        def hairline_at(u):
            du = np.abs(u - cx)
            line = hairline + (side_bottom - hairline) * _smoothstep(rx - 8, rx + 1, du)
            if receding:
                line = line - 14 * np.exp(-((du - 17) / 8) ** 2) - 5
            if bangs:
                fringe = 91 + 1.6 * np.sin(u * 0.9 + person.hair_phase)
                line = np.maximum(line, np.where(du < rx - 6, fringe, line))
            return line

        def head_hair(u, v):
            head = _ellipse(cx, 112, head_rx, 112 - 40 + person.hair_volume)(u, v)
            if wavy:
                head = head - 0.05 * np.sin(np.arctan2(v - 112, u - cx) * 14 + person.hair_phase)
            # Below the temples the hair narrows onto the face edge (no slivers at the sides).
            side = np.abs(u - cx) - (rx + 1 + (head_rx - rx) * _smoothstep(side_bottom, 95, v))
            return np.maximum(np.maximum(head, 0.05 * side), v - hairline_at(u))
        canvas.paint(head_hair, (cx - head_rx - 3, 30, cx + head_rx + 3, side_bottom + 2),
                     hair_pixels, label=HAIR)
        if long_hair:
            for side in (-1, 1):
                def strand(u, v, side=side):
                    inner = rx - 4.5 + 2 * np.sin(v * 0.2 + person.hair_phase) * wavy
                    du = side * (u - cx)
                    return np.maximum(np.maximum(inner - du, du - head_rx - 4),
                                      np.maximum(60 - v, v - (cy + 40)))
                canvas.paint(strand, (cx - head_rx - 6, 58, cx + head_rx + 6, cy + 42),
                             hair_pixels, label=HAIR)
        if has["Sideburns"]:
            for side in (-1, 1):
                burn = np.array([[cx + side * (rx - 2.5), 112], [cx + side * (rx - 3.5), 140]])
                canvas.paint(_stroke(burn, 3.0), _box_of(burn, 5), beard_colour, label=HAIR)
    else:
        if has["Sideburns"]:
            for side in (-1, 1):
                burn = np.array([[cx + side * (rx - 2.5), 108], [cx + side * (rx - 3.5), 140]])
                canvas.paint(_stroke(burn, 3.0), _box_of(burn, 5), beard_colour, label=HAIR)
    if has["Wearing_Hat"]:
        brim_y = 78.0 - 3 * style["hat_kind"]
        hat_colour = style["hat"]

        def crown(u, v):
            return np.maximum(_ellipse(cx, brim_y + 4, head_rx + 3, 52)(u, v), v - brim_y)
        canvas.paint(crown, (cx - head_rx - 6, 20, cx + head_rx + 6, brim_y + 2),
                     lambda u, v: hat_colour * (0.85 + 0.15 * _smoothstep(20, brim_y, v))[
                         ..., None], label=HAIR)
        brim_width = head_rx + (16 if style["hat_kind"] else 8)
        canvas.paint(_ellipse(cx, brim_y, brim_width, 5.5),
                     (cx - brim_width - 2, brim_y - 8, cx + brim_width + 2, brim_y + 8),
                     hat_colour * 0.75, label=HAIR)

    # Earrings (background label): lobes below the ears.
    if has["Wearing_Earrings"]:
        metal = (232, 196, 84) if style["earring_gold"] else (214, 216, 226)
        for ear_x, side in ears:
            lobe_y = ear_y + 12
            if style["earring_hoop"]:
                ring = _ellipse(ear_x + 0.5 * side, lobe_y + 4.5, 4.2, 4.8)
                canvas.paint(lambda u, v, ring=ring: np.abs(ring(u, v)) * 4.2 - 1.0,
                             (ear_x - 8, lobe_y - 3, ear_x + 8, lobe_y + 12), metal,
                             label=BACKGROUND)
            else:
                canvas.paint(_ellipse(ear_x + 0.5 * side, lobe_y + 2.5, 2.6, 2.6),
                             (ear_x - 5, lobe_y - 2, ear_x + 5, lobe_y + 7), metal,
                             label=BACKGROUND)

    # Eyeglasses: transparent (or tinted) lenses, frame relabelled to face skin.
    if has["Eyeglasses"]:
        frame_colour = np.asarray(style["glasses_colour"], np.float32)
        relabel = {label: FACE_SKIN for label in (LEFT_BROW, RIGHT_BROW, LEFT_EYE, RIGHT_EYE,
                                                  NOSE)}
        lenses = []
        for ex in eyes_x:
            if style["glasses_round"]:
                def lens(u, v, ellipse=_ellipse(ex, eye_y + 1, 12.0, 11.0)):
                    return ellipse(u, v) * 11.5      # about the distance to the rim
            else:
                def lens(u, v, ex=ex):
                    qx = np.abs(u - ex) - 8.5
                    qy = np.abs(v - (eye_y + 1)) - 5.0
                    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
                    return outside + np.minimum(np.maximum(qx, qy), 0) - 4.0
            lenses.append(lens)
            lens_box = (ex - 15, eye_y - 13, ex + 15, eye_y + 15)
            canvas.paint(lens, lens_box, (20, 24, 30) if style["glasses_dark"] else (200, 220, 235),
                         opacity=0.72 if style["glasses_dark"] else 0.14)
            canvas.paint(lambda u, v, lens=lens: np.abs(lens(u, v)) - 1.2, lens_box, frame_colour,
                         relabel=relabel)
        bridge = np.array([[eyes_x[0] + 11.5, eye_y - 3], [fx, eye_y - 5],
                           [eyes_x[1] - 11.5, eye_y - 3]])
        canvas.paint(_stroke(bridge, 1.1), _box_of(bridge, 3), frame_colour, relabel=relabel)
        for ex, (ear_x, side) in zip(eyes_x, ears):
            arm = np.array([[ex + side * 13.5, eye_y - 3], [ear_x, eye_y - 2]])
            canvas.paint(_stroke(arm, 1.0), _box_of(arm, 3), frame_colour, relabel=relabel)

    # Directional light over everything (the background too, weaker).
    light_u = float(style["light"] * math.cos(style["light_angle"]) / 89)
    light_v = float(style["light"] * math.sin(style["light_angle"]) / 109)
    brightness = float(style["brightness"])
    canvas.shade(lambda u, v: brightness * (1.0 + light_u * (u - 88) + light_v * (v - 109)))
    return np.array([eye_landmarks[0], eye_landmarks[1], (nose_x, nose_tip_y),
                     mouth_corners[0], mouth_corners[1]], np.float64)


__all__ = ["GENERATOR_VERSION", "IMAGES_PER_IDENTITY", "SyntheticFace", "generate_faces",
           "identity_of", "render_face", "sample_attributes"]

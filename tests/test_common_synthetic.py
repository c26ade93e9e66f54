"""Tests of the synthetic face generator ``common.synthetic`` (rendering and sampling)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from common.attributes import (
    ATTRIBUTE_INDEX, CELEBA_ATTRIBUTES, HELEN11_FLIP_PERMUTATION, helen11_to_parts7)
from common.synthetic import (
    IMAGES_PER_IDENTITY, generate_faces, identity_of, render_face, sample_attributes)
from common.synthetic.marginals import (
    IDENTITY_TRAITS, bivariate_normal_upper, compute_celeba_statistics, embedded_statistics,
    make_consistent, tetrachoric)
from common.synthetic.render import (
    FACE_SKIN, HAIR, INNER_MOUTH, LEFT_BROW, LEFT_EYE, LOWER_LIP, NOSE, RIGHT_BROW, RIGHT_EYE,
    UPPER_LIP)

SIZES = [(218, 178), (109, 89), (64, 64)]
A = ATTRIBUTE_INDEX


def _has(face, name):
    return bool(face.attributes[A[name]])


@pytest.mark.parametrize("height,width", SIZES)
def test_render_face_outputs_have_the_contract_types(height, width):
    face = render_face(3, seed=1, height=height, width=width)
    assert face.image.shape == (height, width, 3) and face.image.dtype == np.uint8
    assert face.attributes.shape == (40,) and face.attributes.dtype == np.uint8
    assert set(np.unique(face.attributes)) <= {0, 1}
    assert face.landmarks.shape == (5, 2) and face.landmarks.dtype == np.float32
    assert face.mask_helen11.shape == (height, width) and face.mask_helen11.dtype == np.uint8
    assert face.mask_helen11.max() <= 10
    np.testing.assert_array_equal(face.mask_parts7, helen11_to_parts7(face.mask_helen11))
    assert face.identity == identity_of(3) == 1
    assert (face.landmarks >= 0).all() and (face.landmarks[:, 0] < width).all()
    assert (face.landmarks[:, 1] < height).all()


def test_render_face_is_deterministic_in_seed_and_index():
    first = render_face(7, seed=5, height=109, width=89)
    again = render_face(7, seed=5, height=109, width=89)
    for field in ("image", "attributes", "landmarks", "mask_helen11", "mask_parts7"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert not np.array_equal(first.image, render_face(8, seed=5, height=109, width=89).image)
    assert not np.array_equal(first.image, render_face(7, seed=6, height=109, width=89).image)
    batch = generate_faces(3, seed=5, height=109, width=89, start=6)
    np.testing.assert_array_equal(batch[1].image, first.image)


def test_landmarks_lie_in_their_parsing_regions():
    for height, width in SIZES[:2]:
        for face in generate_faces(24, seed=2, height=height, width=width):
            mask = face.mask_helen11
            (lx, ly), (rx, ry), (nx, ny) = np.rint(face.landmarks[:3]).astype(int)
            assert lx < rx, "CelebA's lefteye is the eye on the image's left"
            assert mask[ly, lx] == LEFT_EYE and mask[ry, rx] == RIGHT_EYE
            assert mask[ny, nx] == NOSE
            mouth = np.isin(mask, (UPPER_LIP, INNER_MOUTH, LOWER_LIP))
            ys, xs = np.nonzero(mouth)
            for x, y in face.landmarks[3:]:
                assert np.hypot(xs - x, ys - y).min() <= 2.0


def test_every_face_has_all_inner_regions_and_a_bounded_mouth():
    for face in generate_faces(12, seed=4):
        labels = set(np.unique(face.mask_helen11))
        assert {FACE_SKIN, LEFT_BROW, RIGHT_BROW, LEFT_EYE, RIGHT_EYE, NOSE, UPPER_LIP,
                LOWER_LIP} <= labels
        assert (INNER_MOUTH in labels) == _has(face, "Mouth_Slightly_Open")
        assert (HAIR in labels) == (not _has(face, "Bald") or _has(face, "Wearing_Hat")
                                    or _has(face, "Sideburns"))


def test_helen_left_right_labels_follow_the_image_and_flip_permutation():
    face = render_face(0, seed=0)
    flipped = np.asarray(HELEN11_FLIP_PERMUTATION, np.uint8)[face.mask_helen11[:, ::-1]]
    for mask in (face.mask_helen11, flipped):
        for left, right in ((LEFT_EYE, RIGHT_EYE), (LEFT_BROW, RIGHT_BROW)):
            assert np.nonzero(mask == left)[1].mean() < np.nonzero(mask == right)[1].mean()


def _toggle(index, name, seed=0, **kwargs):
    off = render_face(index, seed, overrides={name: 0, **kwargs})
    on = render_face(index, seed, overrides={name: 1, **kwargs})
    changed = np.abs(on.image.astype(int) - off.image.astype(int)).max(-1) > 12
    return off, on, changed


def test_eyeglasses_change_only_the_eye_band():
    off, on, changed = _toggle(9, "Eyeglasses")
    eye_y = off.landmarks[:2, 1].mean()
    rows = np.nonzero(changed)[0]
    assert changed.sum() > 300
    assert rows.min() >= eye_y - 25 and rows.max() <= eye_y + 25
    assert not _has(off, "Eyeglasses") and _has(on, "Eyeglasses")


@pytest.mark.parametrize("name", ["Smiling", "Mouth_Slightly_Open", "Wearing_Lipstick",
                                  "Big_Lips", "Mustache", "Goatee"])
def test_mouth_attributes_change_the_lower_face(name):
    off, on, changed = _toggle(12, name, Male=int(name in ("Mustache", "Goatee")))
    assert changed.sum() > 40
    nose_y, eye_y = off.landmarks[2, 1], off.landmarks[:2, 1].min()
    rows = np.nonzero(changed)[0]
    # Smiling also narrows the eyes a little; everything else stays below the nose.
    lower = rows >= (eye_y - 10 if name == "Smiling" else nose_y - 3)
    assert lower.mean() == 1.0
    if name == "Mouth_Slightly_Open":
        assert (on.mask_helen11 == INNER_MOUTH).sum() > 20
        assert (off.mask_helen11 == INNER_MOUTH).sum() == 0


@pytest.mark.parametrize("name", ["Bangs", "Wavy_Hair", "Blond_Hair", "Black_Hair", "Wearing_Hat",
                                  "Receding_Hairline"])
def test_hair_attributes_change_hair_pixels(name):
    off, on, changed = _toggle(4, name, Bald=0, **({} if name == "Wearing_Hat"
                                                   else {"Wearing_Hat": 0}))
    assert changed.sum() > 200
    hair = (off.mask_helen11 == HAIR) | (on.mask_helen11 == HAIR)
    brows = np.isin(off.mask_helen11, (LEFT_BROW, RIGHT_BROW))   # brows follow hair colour
    assert (hair | brows)[changed].mean() > 0.9


@pytest.mark.parametrize("name,labels", [
    ("Narrow_Eyes", (LEFT_EYE, RIGHT_EYE)), ("Bushy_Eyebrows", (LEFT_BROW, RIGHT_BROW)),
    ("Big_Nose", (NOSE,)), ("Pointy_Nose", (NOSE,))])
def test_part_attributes_change_their_part(name, labels):
    off, on, changed = _toggle(2, name)
    assert changed.sum() > 15
    region = np.isin(off.mask_helen11, labels) | np.isin(on.mask_helen11, labels)
    grown = region.copy()
    for axis in (0, 1):                       # 2-pixel tolerance for edges and shading
        for shift in (-2, -1, 1, 2):
            grown |= np.roll(region, shift, axis)
    assert grown[changed].mean() > 0.9


def test_blurry_lowers_image_sharpness():
    off, on, _ = _toggle(1, "Blurry")
    def sharpness(image):
        grey = image.astype(float).mean(-1)
        return np.abs(np.diff(grey, axis=1)).mean()
    assert sharpness(on.image) < 0.7 * sharpness(off.image)
    np.testing.assert_array_equal(on.mask_helen11, off.mask_helen11)


def test_consistency_rules_hold_for_sampled_attributes():
    rows = np.stack([sample_attributes(index, seed=11) for index in range(600)])
    col = {name: rows[:, i].astype(bool) for name, i in A.items()}
    hair_colours = rows[:, [A[n] for n in ("Black_Hair", "Blond_Hair", "Brown_Hair",
                                           "Gray_Hair")]].sum(1)
    assert hair_colours.max() <= 1
    assert not (col["Straight_Hair"] & col["Wavy_Hair"]).any()
    assert not (col["Bald"] & (hair_colours > 0)).any() and not (col["Bald"] & col["Bangs"]).any()
    female = ~col["Male"]
    for name in ("Goatee", "Mustache", "Sideburns", "5_o_Clock_Shadow", "Bald"):
        assert not (female & col[name]).any()
    assert col["No_Beard"][female].all()
    assert not (col["No_Beard"] & (col["Goatee"] | col["Mustache"] | col["Sideburns"])).any()
    assert not (col["Male"] & (col["Wearing_Lipstick"] | col["Heavy_Makeup"])).any()


def test_make_consistent_keeps_the_strongest_hair_colour():
    attributes = np.zeros(40, np.uint8)
    attributes[[A["Black_Hair"], A["Blond_Hair"], A["Male"]]] = 1
    margin = np.zeros(40)
    margin[A["Blond_Hair"]] = 2.0
    out = make_consistent(attributes, margin)
    assert out[A["Blond_Hair"]] == 1 and out[A["Black_Hair"]] == 0
    attributes[A["Male"]] = 0
    attributes[A["Goatee"]] = attributes[A["Wearing_Lipstick"]] = 1
    out = make_consistent(attributes, margin)
    assert out[A["Goatee"]] == 0 and out[A["No_Beard"]] == 1 and out[A["Wearing_Lipstick"]] == 1


def test_sampled_rates_follow_celeba_marginals():
    rows = np.stack([sample_attributes(index, seed=3) for index in range(3000)])
    rate = embedded_statistics().positive_rate
    # Attributes the consistency rules do not touch keep CelebA's marginal (4 identities/100).
    for name in ("Smiling", "Attractive", "Young", "Male", "Eyeglasses", "Wearing_Hat",
                 "Heavy_Makeup", "Mouth_Slightly_Open", "High_Cheekbones"):
        assert abs(rows[:, A[name]].mean() - rate[A[name]]) < 0.06, name


def test_identity_fixes_traits_and_images_vary():
    faces = [sample_attributes(index, seed=0) for index in range(4 * IMAGES_PER_IDENTITY)]
    for person in range(4):
        group = np.stack(faces[person * IMAGES_PER_IDENTITY:(person + 1) * IMAGES_PER_IDENTITY])
        for name in IDENTITY_TRAITS:
            assert len(set(group[:, A[name]])) == 1, name
    assert identity_of(IMAGES_PER_IDENTITY - 1) == 1 and identity_of(IMAGES_PER_IDENTITY) == 2
    all_rows = np.stack([sample_attributes(index, seed=0) for index in range(200)])
    assert all_rows[:, A["Smiling"]].std() > 0.3


def test_bivariate_normal_and_tetrachoric_match_scipy():
    h, k = np.array([0.3, -1.0, 1.5]), np.array([-0.5, 0.7, 1.2])
    rho = np.array([0.6, -0.8, 0.95])
    for hi, ki, ri, value in zip(h, k, rho, bivariate_normal_upper(h, k, rho)):
        expected = multivariate_normal([0, 0], [[1, ri], [ri, 1]]).cdf([-hi, -ki])
        assert abs(value - expected) < 1e-6
    from scipy.special import ndtr
    joint = bivariate_normal_upper(h, k, rho)
    np.testing.assert_allclose(tetrachoric(ndtr(-h), ndtr(-k), joint), rho, atol=1e-6)


def test_embedded_statistics_are_a_valid_copula():
    statistics = embedded_statistics()
    assert statistics.latent_correlation.shape == (40, 40)
    np.testing.assert_allclose(np.diag(statistics.latent_correlation), 1.0)
    assert np.linalg.eigvalsh(statistics.latent_correlation).min() > 0
    assert ((statistics.positive_rate > 0) & (statistics.positive_rate < 1)).all()
    male_lipstick = statistics.latent_correlation[A["Male"], A["Wearing_Lipstick"]]
    assert male_lipstick < -0.8


def test_embedded_statistics_match_the_real_celeba_files(shared_data):
    celeba = shared_data / "celeba"
    fresh = compute_celeba_statistics(celeba / "list_attr_celeba.txt",
                                      celeba / "identity_CelebA.txt")
    embedded = embedded_statistics()
    np.testing.assert_allclose(embedded.positive_rate, fresh.positive_rate, atol=1e-6)
    np.testing.assert_allclose(embedded.latent_correlation, fresh.latent_correlation, atol=1e-4)
    np.testing.assert_allclose(embedded.identity_correlation, fresh.identity_correlation,
                               atol=1e-4)
    assert abs(embedded.positive_rate[CELEBA_ATTRIBUTES.index("Male")] - 84434 / 202599) < 1e-6

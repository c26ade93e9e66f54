"""The inter-ocular nose crop (issue #20, not in the paper): the nose-centred box scaled by the eye
distance gives every face the same zoom, where the paper's fixed 150-pixel box (§3.1) does not."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mtfl_compare.config import DataConfig, config_for_scale, nose_crop, transfer_crops
from mtfl_compare.data import crop_face, crop_signature, inter_ocular_box, load_face

#: eyes 100 px apart, nose below their midpoint, mouth corners: a face drawn at scale 1 on 400 px
LANDMARKS = np.array([[150, 170], [250, 170], [200, 220], [165, 265], [235, 265]], np.float32)


def drawn_face(scale: float) -> Image.Image:
    """A smooth face-like drawing (eyes, nose, mouth, head outline) at ``scale`` x 400 pixels."""
    size = round(400 * scale)
    image = Image.new("RGB", (size, size), (90, 120, 150))
    draw = ImageDraw.Draw(image)
    point = lambda x, y: (x * scale, y * scale)  # noqa: E731
    draw.ellipse([*point(90, 60), *point(310, 340)], fill=(210, 170, 140))
    for x, y in LANDMARKS[:2]:
        draw.ellipse([*point(x - 18, y - 10), *point(x + 18, y + 10)], fill=(40, 40, 40))
    draw.polygon([point(200, 185), point(185, 225), point(215, 225)], fill=(170, 120, 100))
    draw.line([point(165, 265), point(200, 280), point(235, 265)], fill=(150, 30, 40), width=max(1, round(6 * scale)))
    return image


def test_inter_ocular_box_is_the_ratio_times_the_eye_distance():
    config = DataConfig()
    assert inter_ocular_box(LANDMARKS, config) == pytest.approx(100 * 10 / 3)
    coincident = LANDMARKS.copy()
    coincident[1] = coincident[0]
    with pytest.raises(ValueError, match="eye landmarks are 0.00 px apart"):
        inter_ocular_box(coincident, config)


@pytest.mark.parametrize("scale", [0.45, 0.85, 2.0])
def test_inter_ocular_crop_has_the_same_zoom_at_any_face_size(scale):
    """The same face drawn at another size: the inter-ocular crops agree, the fixed-box crops
    (150 pixels whatever the face size) do not."""
    config = DataConfig()
    reference = drawn_face(1.0)
    scaled = drawn_face(scale)
    crops = {}
    for crop in ("nose_inter_ocular", "nose"):
        first = crop_face(reference, LANDMARKS, crop, 96, config).astype(np.float64)
        second = crop_face(scaled, LANDMARKS * scale, crop, 96, config).astype(np.float64)
        crops[crop] = np.mean(np.abs(first - second))
    assert crops["nose_inter_ocular"] < 3.0, crops
    assert crops["nose"] > 3 * crops["nose_inter_ocular"], crops


def test_a_face_whose_eyes_coincide_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "face.png"
    drawn_face(1.0).save(path)
    coincident = LANDMARKS.copy()
    coincident[1] = coincident[0]
    with pytest.raises(ValueError, match=rf"{path}: the eye landmarks are 0.00 px apart"):
        load_face(path, coincident, "nose_inter_ocular", 64, DataConfig())


def test_crop_signature_changes_with_every_setting_of_the_crop():
    base = DataConfig()
    signatures = {crop_signature(crop, base) for crop in ("original", "nose", "nose_inter_ocular")}
    assert len(signatures) == 3
    assert crop_signature("nose_inter_ocular", DataConfig(inter_ocular_box_ratio=3.0)) != \
        crop_signature("nose_inter_ocular", base)
    assert crop_signature("original", DataConfig(face_box_scale=2.0)) != crop_signature("original", base)
    with pytest.raises(ValueError, match="crop must be one of"):
        crop_signature("mouth", base)


def test_crop_option_chooses_the_nose_box_and_the_cpu_scale_reports_both():
    config = config_for_scale("paper")
    assert transfer_crops(config) == ("original", "nose")
    config.data.nose_box = "inter-ocular"
    assert nose_crop(config) == "nose_inter_ocular"
    assert transfer_crops(config) == ("original", "nose_inter_ocular")
    cpu = config_for_scale("cpu")
    assert set(transfer_crops(cpu)) == {"original", "nose", "nose_inter_ocular"}
    config.data.nose_box = "square"
    with pytest.raises(ValueError, match="nose_box must be one of"):
        nose_crop(config)


def test_crop_flag_reaches_the_configuration(monkeypatch, tmp_path):
    from mtfl_compare import reproduce as reproduce_module
    from mtfl_compare.__main__ import main

    seen = []
    monkeypatch.setattr(reproduce_module, "reproduce", lambda config, argv: seen.append(config) or tmp_path)
    assert main(["reproduce", "--crop", "inter-ocular", "--out", str(tmp_path)]) == 0
    assert nose_crop(seen[0]) == "nose_inter_ocular"
    assert main(["reproduce", "--out", str(tmp_path)]) == 0
    assert seen[1].data.nose_box == "fixed"
    with pytest.raises(SystemExit):
        main(["reproduce", "--crop", "square"])

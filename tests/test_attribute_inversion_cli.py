"""The command line: ``reproduce --attributes`` (an empty list or name, a repeated name and an
unknown name are refused with Table 1's valid names; a valid subset keeps its order); ``invert`` on
a folder with a greyscale PNG, a JPEG in a sub-folder and a corrupt file, with a tiny training run's
checkpoint, the shipped-file path and the error when no generator ships; the exported file."""
from __future__ import annotations

import pytest

from attribute_inversion.__main__ import build_config, parse_args
from attribute_inversion.config import PAPER_ATTRIBUTES

VALID_NAMES = ",".join(PAPER_ATTRIBUTES)


def config_for(attributes: str):
    return build_config(parse_args(["reproduce", "--attributes", attributes]))


@pytest.mark.parametrize("attributes, problem", [
    (",", "names no attribute"),
    ("", "names no attribute"),
    ("Eyeglasses,,Male", "has an empty name"),
    ("Eyeglasses,Eyeglasses", r"repeats \['Eyeglasses'\]"),
    ("Male, Eyeglasses ,Male", r"repeats \['Male'\]"),
    ("Eyeglasses,Smiling", r"unknown attribute\(s\) \['Smiling'\]"),
])
def test_bad_attribute_lists_are_refused_with_the_valid_names(attributes, problem):
    with pytest.raises(SystemExit, match=problem) as refused:
        config_for(attributes)
    assert VALID_NAMES in str(refused.value)


def test_a_valid_subset_is_used_in_the_given_order():
    assert config_for("Male, Eyeglasses").data.attributes == ("Male", "Eyeglasses")


def test_without_the_option_the_scale_keeps_its_attributes():
    assert build_config(parse_args(["reproduce"])).data.attributes == ("Eyeglasses",)


# --------------------------------------------------------------------------- invert / export

INVERTED = "Mouth_Slightly_Open"


@pytest.fixture(scope="module")
def tiny_run(synthetic_celeba_root, tmp_path_factory):
    """A finished 2-step training run of our generator in a reproduce-style checkpoint folder."""
    from common.checkpoint import require_same_configuration
    from common.data.celeba import read_celeba
    from attribute_inversion.config import (CycleGANConfig, DataConfig, DiscriminatorConfig, EvaluationConfig,
                                            JudgeConfig, OptimConfig, ReproduceConfig, UNetConfig)
    from attribute_inversion.data import make_split
    from attribute_inversion.train import experiment_fingerprint, train_inversion

    config = ReproduceConfig(
        scale="test",
        data=DataConfig(attributes=(INVERTED,), image_size=32, test_images_per_class=2, heldout_fraction=0.3),
        generator=UNetConfig(base_channels=4, max_channels=16),
        discriminator=DiscriminatorConfig(base_channels=4, max_channels=16),
        cyclegan=CycleGANConfig(generator_channels=4, discriminator_channels=4, num_residual_blocks=1),
        optim=OptimConfig(batch_size=4, max_steps=2), evaluation=EvaluationConfig(grid_images=4),
        judge=JudgeConfig(channels=4, max_steps=2, batch_size=8), checkpoint_every=0, device="cpu")
    annotations = read_celeba(synthetic_celeba_root)
    folder = tmp_path_factory.mktemp("tiny_run") / "train"
    require_same_configuration(folder, experiment_fingerprint(config, annotations, synthetic=False))
    models, _ = train_inversion(annotations, make_split(annotations, config.data), INVERTED, config,
                                folder / INVERTED / "ours")
    return folder, models["generator"].eval(), annotations


@pytest.fixture
def user_images(tiny_run, tmp_path):
    """A folder of a user's images: an RGB face, a greyscale PNG, a JPEG in a sub-folder and a corrupt file."""
    from PIL import Image

    _, _, annotations = tiny_run
    faces = [Image.open(path).convert("RGB") for path in annotations.image_paths()[:3]]
    folder = tmp_path / "mine"
    (folder / "holiday").mkdir(parents=True)
    faces[0].save(folder / "face.png")
    faces[1].convert("L").save(folder / "grey.png")
    faces[2].save(folder / "holiday" / "beach.jpg", quality=95)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    return folder


def test_invert_writes_every_readable_face_names_the_corrupt_one_and_a_grid(tiny_run, user_images, tmp_path, capsys):
    import json

    import numpy as np
    import torch
    import torchvision.transforms.functional as TF
    from PIL import Image

    from common.inference import FRAMES, map_to_frame
    from attribute_inversion.__main__ import main
    from attribute_inversion.invert import GENERATOR_FRAME

    folder, generator, _ = tiny_run
    out = tmp_path / "inverted"
    assert main(["invert", "--attribute", INVERTED, str(user_images), "--out", str(out),
                 "--checkpoint", str(folder), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert f"skipped 1 unreadable file(s): {user_images / 'broken.png'}" in printed
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "comparison.png", "face.png", "grey.png", "holiday/beach.png"]
    for name in ("face.png", "grey.png", "holiday/beach.png"):
        with Image.open(out / name) as image:
            assert image.size == (32, 32) and image.mode == "RGB"
    with Image.open(out / "comparison.png") as grid:
        assert grid.size[0] > 6 * 32  # 3 pairs side by side
    record = json.loads((out / "invert.json").read_text())
    assert record["inverted"] == 3 and record["unreadable"] == [str(user_images / "broken.png")]
    # The PNG is the generator's output on the face mapped to its training frame (greyscale -> RGB).
    with Image.open(user_images / "grey.png") as grey:
        face = map_to_frame(grey, FRAMES["celeba"], GENERATOR_FRAME, (32, 32))
    with torch.no_grad():
        expected = generator(TF.to_tensor(face)[None] * 2 - 1).clamp(-1, 1)[0]
    expected = np.round((expected.numpy() + 1) * 127.5).transpose(1, 2, 0)
    assert np.abs(np.asarray(Image.open(out / "grey.png"), np.float64) - expected).max() <= 1


def test_invert_without_a_shipped_generator_says_how_to_get_one(monkeypatch, user_images, tmp_path):
    from attribute_inversion import checkpoints
    from attribute_inversion.__main__ import main

    monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", tmp_path / "pretrained")
    with pytest.raises(SystemExit, match="no generator for Eyeglasses ships with attribute_inversion yet") as refused:
        main(["invert", "--attribute", "Eyeglasses", str(user_images), "--out", str(tmp_path / "out")])
    assert "python -m attribute_inversion reproduce --attributes Eyeglasses" in str(refused.value)
    assert not (tmp_path / "out").exists()


def test_exported_generator_is_the_default_invert_uses(monkeypatch, tiny_run, user_images, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from attribute_inversion import checkpoints
    from attribute_inversion.__main__ import main

    folder, _, _ = tiny_run
    monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", tmp_path / "pretrained")
    checkpoints.export_generator(folder, INVERTED)  # the file of ``export`` (its check and card: smoke tests)
    assert (tmp_path / "pretrained" / f"generator_{INVERTED}.pt").is_file()
    assert main(["invert", "--attribute", INVERTED, str(user_images / "face.png"), "--out", str(tmp_path / "shipped"),
                 "--device", "cpu"]) == 0
    assert main(["invert", "--attribute", INVERTED, str(user_images / "face.png"), "--out", str(tmp_path / "run"),
                 "--checkpoint", str(folder / INVERTED / "ours" / "last.pt"), "--device", "cpu"]) == 0
    assert "shipped model" in capsys.readouterr().out
    shipped, trained = (np.asarray(Image.open(tmp_path / name / "face.png"), np.float64) for name in ("shipped", "run"))
    assert np.abs(shipped - trained).mean() < 8  # int8 weights: close, not equal
    with pytest.raises(SystemExit, match="not Eyeglasses|inverts Mouth_Slightly_Open"):
        main(["invert", "--attribute", "Eyeglasses", str(user_images), "--out", str(tmp_path / "x"),
              "--checkpoint", str(tmp_path / "pretrained" / f"generator_{INVERTED}.pt")])


@pytest.mark.parametrize("attribute", ["Eyeglasses", "Male"])
def test_the_shipped_generators_invert_a_users_folder_by_default(attribute, user_images, tmp_path, capsys):
    """No --checkpoint: the committed generator of the attribute (128x128, its model card beside it)
    inverts every readable face of the folder and names the corrupt file."""
    import json

    from PIL import Image

    from attribute_inversion.__main__ import main
    from attribute_inversion.checkpoints import default_generator_path
    from attribute_inversion.ship import model_card_path

    shipped = default_generator_path(attribute)
    assert shipped.is_file() and shipped.stat().st_size <= 10 * 2**20 and model_card_path(shipped).is_file()
    out = tmp_path / "inverted"
    assert main(["invert", "--attribute", attribute, str(user_images), "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "shipped model (cpu scale)" in printed and "skipped 1 unreadable file(s)" in printed
    for name in ("face.png", "grey.png", "holiday/beach.png"):
        with Image.open(out / name) as image:
            assert image.size == (128, 128) and image.mode == "RGB"
    assert json.loads((out / "invert.json").read_text())["generator"] == str(shipped)

"""Le & Lee §2.2 / §3.2: the classifier file, ImageNet weight loading and the ``label`` CLI."""
from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest
import timm
import torch

from common.attributes import CELEBA_ATTRIBUTES

from celeba_ffhq_labels.__main__ import main
from celeba_ffhq_labels.config import ExperimentConfig
from celeba_ffhq_labels.models import (
    build_classifier,
    load_classifier,
    load_imagenet_weights,
    save_classifier,
)
from celeba_ffhq_labels.transfer import CSV_COLUMNS, write_hq_faces

SMOKE_MODEL = ExperimentConfig.smoke().model


@pytest.fixture(scope="module")
def saved_classifier(tmp_path_factory):
    """A (randomly initialised) smoke-scale classifier with non-trivial thresholds, saved."""
    torch.manual_seed(0)
    model = build_classifier(SMOKE_MODEL)
    model.set_loss_weights(np.linspace(0.5, 3.0, 40))
    model.set_decision_thresholds(np.round(np.linspace(0.3, 0.7, 40), 2))
    path = tmp_path_factory.mktemp("classifier") / "classifier.pt"
    save_classifier(path, model, SMOKE_MODEL)
    return path, model


def test_classifier_round_trip_keeps_weights_and_buffers(saved_classifier):
    path, model = saved_classifier
    loaded, config = load_classifier(path)
    assert config == SMOKE_MODEL
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    images = torch.rand(2, 3, *SMOKE_MODEL.input_size)
    model.eval()
    assert torch.allclose(loaded(images), model(images))


def test_load_classifier_rejects_a_training_checkpoint(tmp_path):
    torch.save({"models": {}, "step": 3}, tmp_path / "last.pt")
    with pytest.raises(ValueError, match="last.pt: not a classifier"):
        load_classifier(tmp_path / "last.pt")


def test_imagenet_weights_load_from_a_local_file_without_the_head(tmp_path):
    imagenet = timm.create_model(SMOKE_MODEL.arch, pretrained=False, num_classes=1000,
                                 **dict(SMOKE_MODEL.timm_overrides))
    torch.save(imagenet.state_dict(), tmp_path / "imagenet.pth")
    model = build_classifier(dataclasses.replace(SMOKE_MODEL, pretrained_path=str(tmp_path / "imagenet.pth")))
    loaded = model.backbone.state_dict()
    for key, value in imagenet.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(loaded[key], value), key
    assert loaded["fc.weight"].shape == (40, imagenet.fc.in_features)
    other = timm.create_model("resnet18", pretrained=False)
    torch.save(other.state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(ValueError, match="resnet18.pth: not weights of this architecture"):
        load_imagenet_weights(model.backbone, tmp_path / "resnet18.pth")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_imagenet_weights(model.backbone, tmp_path / "missing.pth")


def test_label_cli_writes_a_well_formed_csv_for_a_folder_with_a_corrupt_image(saved_classifier, tmp_path, capsys):
    path, model = saved_classifier
    folder = tmp_path / "faces"
    write_hq_faces(folder, n=3, seed=5, size=(150, 120), with_corrupt_file=True)
    (folder / "nested").mkdir()
    (folder / "nested" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out_csv = tmp_path / "labels.csv"
    main(["label", "--images", str(folder), "--out", str(out_csv), "--checkpoint", str(path),
          "--batch-size", "2", "--no-progress"])
    printed = capsys.readouterr().out
    assert "labelled 3 of 5 images" in printed and "2 unreadable" in printed

    with open(out_csv, newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS and len(CSV_COLUMNS) == 2 + 2 * len(CELEBA_ATTRIBUTES)
    body = {row[0]: row for row in rows[1:]}
    assert sorted(body) == ["hq_00000.png", "hq_00001.png", "hq_00002.png", "nested/broken.jpg",
                            "unreadable_example.png"]
    thresholds = model.decision_thresholds.numpy()
    for name, row in body.items():
        assert len(row) == len(CSV_COLUMNS)
        if name in ("nested/broken.jpg", "unreadable_example.png"):
            assert row[1] == "unreadable" and all(cell == "" for cell in row[2:])
            continue
        assert row[1] == "ok"
        soft = np.array(row[2:42], dtype=float)
        hard = np.array(row[42:], dtype=int)
        assert np.all((soft >= 0) & (soft <= 1)) and set(hard) <= {0, 1}
        np.testing.assert_array_equal(hard, (soft >= thresholds - 5e-7).astype(int))

"""mtfl_compare's inputs (paper 001 §3.1): crops, labels, malformed files, corrupt images, metrics,
the table layout and the seeded batch order. No TensorFlow is needed here."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import precision_recall_fscore_support

from mtfl_compare.config import DataConfig, config_for_scale, describe_reductions
from mtfl_compare.data import (attribute_labels, crop_face, load_cropped_faces, open_mtfl,
                               resolve_mtfl_root)
from mtfl_compare.evaluate import evaluate_binary
from benchmarks.expected import malformed_cells
from mtfl_compare.tables import PAPER_TABLES_3_4, Results, paper_layout_markdown, table_3_or_4, table_5
from mtfl_compare.train import batch_positions, steps_for_epochs

NOSE = (130.0, 110.0)
#: eyes, nose, mouth corners; the landmark box spans x 100..160, y 90..134 (centre (130, 112)),
#: so the non-centred crop (2.5 x the 60-pixel extent) is 150 pixels, like the nose crop.
LANDMARKS = np.array([[100, 90], [160, 90], NOSE, [110, 134], [150, 134]], dtype=np.float32)
RED, BLUE = (255, 0, 0), (0, 0, 255)


def _marked_image(size=250):
    """Grey image with a red pixel on the nose and a blue one on the landmark box centre."""
    pixels = np.full((size, size, 3), 128, np.uint8)
    pixels[110, 130] = RED
    pixels[112, 130] = BLUE
    return Image.fromarray(pixels)


def _find(face, colour):
    ys, xs = np.nonzero(np.all(face == colour, axis=-1))
    assert len(xs) == 1, f"marker {colour} not found exactly once"
    return xs[0], ys[0]


def _at_centre(point, size=150):
    """Within half a pixel of the crop centre ((size - 1) / 2 in pixel-index coordinates)."""
    return all(abs(coordinate - (size - 1) / 2) <= 0.5 for coordinate in point)


def test_nose_crop_puts_the_nose_at_the_centre_of_the_150_pixel_crop():
    face = crop_face(_marked_image(), LANDMARKS, "nose", 150, DataConfig())
    assert face.shape == (150, 150, 3) and face.dtype == np.uint8
    red, blue = _find(face, RED), _find(face, BLUE)         # no resampling: 150 px box -> 150 px
    assert _at_centre(red) and not _at_centre(blue)        # §3.1: the nose is the centre
    assert (blue[0] - red[0], blue[1] - red[1]) == (0, 2)


def test_original_crop_is_centred_on_the_landmark_box_not_the_nose():
    face = crop_face(_marked_image(), LANDMARKS, "original", 150, DataConfig(face_box_scale=2.5))
    red, blue = _find(face, RED), _find(face, BLUE)
    assert _at_centre(blue) and not _at_centre(red)
    assert (blue[0] - red[0], blue[1] - red[1]) == (0, 2)


def test_crop_is_resized_to_the_network_input():
    assert crop_face(_marked_image(), LANDMARKS, "nose", 60, DataConfig()).shape == (60, 60, 3)


def test_unknown_crop_is_rejected():
    with pytest.raises(ValueError, match="crop must be one of"):
        crop_face(_marked_image(), LANDMARKS, "eyes", 150, DataConfig())


def _write_layout(root, rows_per_split=3, bad_line=None):
    """A tiny MTFL layout (official quirks: CRLF, leading spaces, trailing ' ' line)."""
    for split, folder, separator in (("training", "lfw_5590", "\\"), ("testing", "AFLW", "/")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        lines = []
        for index in range(rows_per_split):
            name = f"face_{index}.jpg"
            _marked_image().save(root / folder / name)
            coordinates = " ".join(f"{v:.6f}" for v in list(LANDMARKS[:, 0]) + list(LANDMARKS[:, 1]))
            lines.append(f"{folder}{separator}{name} {coordinates} {1 + index % 2} {2 - index % 2} 2 3")
        if bad_line is not None and split == "training":
            lines[bad_line - 1] = lines[bad_line - 1].rsplit(" ", 1)[0]   # drop the pose code
        (root / f"{split}.txt").write_bytes(("\r\n ".join(lines) + "\r\n ").encode())


def test_open_mtfl_reads_both_splits_and_labels(tmp_path):
    _write_layout(tmp_path / "mtfl")
    config = DataConfig(data_root=str(tmp_path))                # parent folder works too
    assert resolve_mtfl_root(tmp_path) == tmp_path / "mtfl"
    train, test = open_mtfl(config, seed=0)
    assert len(train) == 3 and len(test) == 3
    assert attribute_labels(train, "gender").tolist() == [1, 0, 1]    # code 1 = male
    assert attribute_labels(train, "smiling").tolist() == [0, 1, 0]   # code 1 = smiling


def test_malformed_row_error_names_file_and_line(tmp_path):
    _write_layout(tmp_path, bad_line=2)
    with pytest.raises(ValueError, match=r"training\.txt:2: expected 15 fields"):
        open_mtfl(DataConfig(data_root=str(tmp_path)), seed=0)


def test_missing_layout_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no MTFL layout"):
        resolve_mtfl_root(tmp_path)


def test_corrupt_image_is_skipped_and_counted(tmp_path):
    _write_layout(tmp_path)
    (tmp_path / "lfw_5590" / "face_1.jpg").write_bytes(b"not a jpeg")
    config = DataConfig(data_root=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    train, _ = open_mtfl(config, seed=0)
    with pytest.warns(UserWarning, match="1 of 3 images could not be decoded"):
        faces = load_cropped_faces(train, np.arange(3), "nose", 32, config)
    assert faces.rows.tolist() == [0, 2] and faces.n_corrupt == 1
    assert faces.images.shape == (2, 32, 32, 3)
    cached = load_cropped_faces(train, np.arange(3), "nose", 32, config)   # read back from .npz
    np.testing.assert_array_equal(cached.images, faces.images)
    assert cached.n_corrupt == 1


def test_metrics_match_scikit_learn_in_table_class_order(rng):
    labels = rng.integers(0, 2, 200)
    predictions = np.where(rng.random(200) < 0.7, labels, 1 - labels)
    for attribute, order in (("smiling", [1, 0]), ("gender", [0, 1])):
        evaluation = evaluate_binary(attribute, labels, predictions, np.arange(200))
        precision, recall, _, _ = precision_recall_fscore_support(labels, predictions, labels=order)
        np.testing.assert_allclose(evaluation.precision, precision)
        np.testing.assert_allclose(evaluation.recall, recall)
        np.testing.assert_array_equal(evaluation.counts, sk_confusion_matrix(labels, predictions, labels=order))
        np.testing.assert_allclose(evaluation.row_normalised.sum(axis=1), 1.0)
        np.testing.assert_allclose(np.diag(evaluation.row_normalised), recall)
        assert evaluation.accuracy == pytest.approx(np.mean(labels == predictions))


def test_never_predicted_class_gives_nan_precision_not_an_error():
    evaluation = evaluate_binary("smiling", np.array([1, 0, 1, 0]), np.array([0, 0, 0, 0]), np.arange(4))
    assert np.isnan(evaluation.class_metric("precision", "S"))
    assert evaluation.class_metric("recall", "S") == 0.0


def test_tables_3_and_5_hold_ours_beside_the_paper_numbers():
    config = config_for_scale("smoke")
    results = Results(config=config, weights_note="weights", data_notes=["data"])
    results.transfer[("smiling", "original", 1)] = evaluate_binary(
        "smiling", np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]), np.arange(4))
    table = table_3_or_4(results, "smiling", 3)
    assert malformed_cells(table.name, table) == []                # numbers or "n/a: reason"
    assert len({row[0] for row in table.rows}) == len(table.rows)  # unique row labels
    rows = {row[0]: dict(zip(table.columns, row)) for row in table.rows}
    ours, paper = rows["Smile (ours)"], rows["Smile (paper)"]
    assert ours["1st: accuracy"] == 75.0
    assert [ours[f"1st: precision {c}"] for c in "S NS".split()] == [100.0, pytest.approx(66.67)]
    assert [ours[f"1st: CM {c}"] for c in ("S->S", "S->NS", "NS->S", "NS->NS")] == [50.0, 50.0, 0.0, 100.0]
    assert ours["2nd: accuracy"].startswith("n/a: ")                # approach 2 not run
    assert paper["2nd: accuracy"] == PAPER_TABLES_3_4[("smiling", "original", 2)].accuracy == 87.5
    assert rows["Smile (ours - paper)"]["1st: accuracy"] == pytest.approx(75.0 - 68.5)
    assert rows["Smile* (paper)"]["1st: recall S"] == 63.4  # printed as "Precision": see README
    layout = paper_layout_markdown(table, "smiling")
    assert "| Smile (ours) | Accuracy | 75.0 % |" in layout
    assert "|  | Precision | 100.0 | 66.7 | S | 50.0 % | 50.0 % |" in layout
    cascade = table_5(results)
    assert malformed_cells(cascade.name, cascade) == []
    cascade_rows = {row[0]: dict(zip(cascade.columns, row)) for row in cascade.rows}
    assert cascade_rows["Gender, lr 0.0001, 125 epochs"]["Paper accuracy"] == 75.0
    assert cascade_rows["Smile, lr 0.001, 63 epochs"]["Accuracy"].startswith("n/a: ")


def test_smoke_scale_states_every_reduction():
    reductions = describe_reductions(config_for_scale("smoke"))
    assert "finetune.input_size = 107 (paper: 299)" in reductions
    assert "cascade.epochs = (4, 8) (paper: (63, 125))" in reductions
    assert describe_reductions(config_for_scale("paper")) == []


def test_batches_are_a_seeded_function_of_the_step():
    n, batch = 10, 4
    first_epoch = np.concatenate([batch_positions(n, batch, step, seed=3) for step in range(5)])
    assert sorted(first_epoch[:n].tolist()) == list(range(n))      # every example once per epoch
    np.testing.assert_array_equal(batch_positions(n, batch, 7, seed=3), batch_positions(n, batch, 7, seed=3))
    assert not np.array_equal(batch_positions(n, batch, 0, seed=3), batch_positions(n, batch, 0, seed=4))
    assert steps_for_epochs(2, 10, 4) == 5 and steps_for_epochs(0.5, 100, 100) == 1


def test_a_users_slim_checkpoint_replaces_the_converted_weights(tmp_path):
    from mtfl_compare.reproduce import resolve_pretrained

    config = config_for_scale("smoke")
    config.pretrained_checkpoint = str(tmp_path / "inception_v3.ckpt")
    with pytest.raises(FileNotFoundError, match="no such TF checkpoint"):
        resolve_pretrained(config)
    (tmp_path / "inception_v3.ckpt.index").write_bytes(b"index")
    weights = resolve_pretrained(config)
    assert weights.checkpoint == config.pretrained_checkpoint
    assert weights.mixed_7c_branch_pool == "avg" and weights.identifier.startswith("user-")

"""A tiny ssp_ssg reproduction with fake Helen and LFWA folders, then ``evaluate``, ``export`` and
``predict`` on what it trained (one run per module, a few seconds at 40x32 and 2 steps)."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.attributes import CELEBA_ATTRIBUTES
from common.data.celeba import read_celeba
from common.export import SHIPPED_MODEL_MAX_BYTES, load_shipped_model
from common.synthetic import write_helen_layout
from ssp_ssg.config import DataConfig, OptimConfig, ReproduceConfig
from ssp_ssg.jobs import ReproductionInputs, prepare_data
from ssp_ssg.train import RunSettings

SIZE = (40, 32)


def tiny_config(**changes) -> ReproduceConfig:
    smoke = ReproduceConfig.smoke()
    return dataclasses.replace(
        smoke, optim=OptimConfig(learning_rate=0.005, batch_size=4, attribute_steps=2,
                                 segmentation_steps=2, joint_steps=2, balanced_finetune_steps=1),
        data=DataConfig(image_size=SIZE, synthetic_n=80, synthetic_size=SIZE, parsing_train_images=8,
                        parsing_val_images=4, parsing_test_images=None),
        eval_every=1, log_every=1, figure_images=2, parallel_jobs=1, bootstrap_resamples=50, **changes)


def write_fake_lfwa(root: Path, celeba_root: Path, people: int = 8) -> Path:
    """LFWA in Liu et al.'s CelebA-style format (all 40 attributes), 2 images per person under
    ``lfw/<Person>/``, taken from synthetic CelebA faces with their labels."""
    annotations = read_celeba(celeba_root)
    rows = []
    for index in range(2 * people):
        image_id = f"Person_{index // 2}/Person_{index // 2}_{index % 2 + 1:04d}.jpg"
        (root / "lfw" / image_id).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(annotations.image_paths()[index], root / "lfw" / image_id)
        values = 2 * annotations.attributes[index].astype(int) - 1
        rows.append(image_id + " " + " ".join(str(v) for v in values))
    (root / "list_attr_lfwa.txt").write_text("\n".join([str(len(rows)), " ".join(CELEBA_ATTRIBUTES),
                                                        *rows]) + "\n")
    return root


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """``reproduce`` with --helen-root and --lfwa-root at toy size: (inputs, results, out dir)."""
    from ssp_ssg.reproduce import reproduce

    root = tmp_path_factory.mktemp("ssp_tiny")
    helen = write_helen_layout(root / "helen", n=40, seed=0, height=SIZE[0], width=SIZE[1])
    settings = RunSettings(device="cpu", log_every=1, checkpoint_every=0,
                           progress=False, tensorboard=False, bf16="auto")
    inputs = ReproductionInputs(config=tiny_config(), out_dir=root / "out", settings=settings,
                                helen_root=helen, synthetic_cache=root / "synthetic")
    celeba_root = prepare_data(inputs).source.annotations.root
    inputs = dataclasses.replace(inputs, lfwa_root=write_fake_lfwa(root / "lfwa", celeba_root))
    results = reproduce(inputs, ["python", "-m", "ssp_ssg", "reproduce", "(test)"])
    return inputs, results, root


def _tables(folder: Path) -> dict:
    return json.loads((folder / "tables.json").read_text())


def test_helen_and_lfwa_reach_every_table(tiny_run):
    inputs, results, _ = tiny_run
    out = Path(inputs.out_dir)
    tables = _tables(out)
    assert {"claims_intervals", "fig4_localisation_check", "fig4_localisation_summary",
            "table2_error", "table3_lfwa", "table4_parsing_iou", "training_summary"} <= set(tables)
    for name in tables:
        assert (out / f"{name}.md").is_file() and (out / f"{name}.csv").is_file(), name
    from benchmarks.expected import malformed_cells
    from common.tables import read_tables

    assert [p for name, t in read_tables(out).items() for p in malformed_cells(name, t)] == []
    for row in tables["table3_lfwa"]["rows"]:  # LFWA trained and scored
        assert isinstance(row[2], float) and isinstance(row[4], float), row
    error = tables["table2_error"]
    original = error["columns"].index("Original: ours")
    ssp_row = next(row for row in error["rows"] if row[0] == "Ours: SSP")
    assert "loader" in ssp_row[original]
    # §4.1: the attribute models' parser learns from all Helen images (32 + 4 + 4 here),
    # Table 4's from the train split only, checkpoint chosen on the tuning split
    run = json.loads((out / "run.json").read_text())["extra"]
    helen_sizes = [len(Path(inputs.helen_root, name).read_text().splitlines())
                   for name in ("exemplars.txt", "tuning.txt", "testing.txt")]
    assert f"on all {sum(helen_sizes)}" in run["parsing"]
    summary = {row[0]: row for row in tables["training_summary"]["rows"]}
    assert "Segmentation net on all of Helen (§4.1)" in summary
    assert (out / "checkpoints" / "segmentation_all" / "best.pt").is_file()
    for figure in ("fig_learning_curves.png", "fig4_localisation_maps.png", "fig3_parsing_examples.png"):
        assert (out / figure).stat().st_size > 1000, figure
    assert len(tables["claims_intervals"]["rows"]) == len(results["comparisons"]) == 16


def test_validation_runs_every_eval_every_steps_and_picks_the_checkpoint(tiny_run):
    inputs, results, _ = tiny_run
    log = (Path(inputs.out_dir) / "checkpoints" / "ssp" / "log.csv").read_text().splitlines()
    header = log[0].split(",")
    evaluated = [row.split(",")[0] for row in log[1:] if row.split(",")[header.index("eval/val_error")]]
    assert evaluated == ["1", "2"]
    thresholds = json.loads((Path(inputs.out_dir) / "checkpoints" / "ssp" /
                             "decision_thresholds.json").read_text())
    # --bf16 auto: decided once per network and kept beside its checkpoints
    assert "use_bf16" in json.loads((Path(inputs.out_dir) / "checkpoints" / "ssp" / "bf16.json").read_text())
    assert thresholds["attributes"] == list(CELEBA_ATTRIBUTES) and len(thresholds["thresholds"]) == 40


def test_hflip_switch_reaches_every_training_set(tiny_run):
    inputs, _, _ = tiny_run
    flipped = prepare_data(inputs)
    assert flipped.train_set.flip_probability == 0.5 and flipped.val_set.flip_probability == 0.0
    assert flipped.parser_train.flip_probability == 0.5
    config = inputs.config
    still = prepare_data(dataclasses.replace(inputs, config=dataclasses.replace(
        config, optim=dataclasses.replace(config.optim, hflip=False))))
    assert still.train_set.flip_probability == 0.0
    assert still.parsing_train.flip_probability == 0.0 and still.parser_train.flip_probability == 0.0


def test_evaluate_recomputes_the_tables_without_training(tiny_run, tmp_path):
    from ssp_ssg.reproduce import evaluate_run

    inputs, _, root = tiny_run
    settings = RunSettings(device="cpu", progress=False, tensorboard=False)
    evaluate_run(inputs.out_dir, tmp_path / "evaluation", settings, ["evaluate"],
                 synthetic_cache=root / "synthetic", bootstrap_resamples=50)
    assert _tables(tmp_path / "evaluation") == _tables(Path(inputs.out_dir))
    unfinished = tmp_path / "unfinished"
    (unfinished / "checkpoints").mkdir(parents=True)
    shutil.copy(Path(inputs.out_dir) / "checkpoints" / "experiment.json", unfinished / "checkpoints")
    with pytest.raises(ValueError, match="'segmentation' has no finished checkpoint"):
        evaluate_run(unfinished, None, settings, ["evaluate"], synthetic_cache=root / "synthetic")


def _faces_folder(folder: Path) -> Path:
    """Faces in several PIL modes and sizes, and one corrupt file."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (218, 178, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / "celeba_frame.jpg")
    Image.fromarray(rgb[:109, :89]).convert("RGBA").resize((89, 109)).save(folder / "rgba.png")
    Image.fromarray(rgb[:128, :128]).convert("L").save(folder / "square_grey.png")
    Image.fromarray(rgb).convert("P").save(folder / "palette.png")
    Image.fromarray((rng.integers(0, 65535, (109, 89))).astype(np.uint16)).save(folder / "sixteen_bit.png")
    (folder / "nested").mkdir()
    (folder / "nested" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return folder


def test_export_and_predict_with_heat_maps(tiny_run, tmp_path, capsys):
    from ssp_ssg.__main__ import main
    from ssp_ssg.inference import MODEL_FORMAT, export_model

    inputs, _, _ = tiny_run
    model_path, size = export_model(inputs.out_dir, tmp_path / "ssp.pt")
    assert 0 < size <= SHIPPED_MODEL_MAX_BYTES
    _, meta = load_shipped_model(model_path)
    assert meta["format"] == MODEL_FORMAT and meta["image_size"] == list(SIZE)
    assert len(meta["thresholds"]) == 40
    faces = _faces_folder(tmp_path / "faces")
    code = main(["predict", str(faces), "--out", str(tmp_path / "shipped"), "--checkpoint", str(model_path),
                 "--attributes", "Smiling", "Eyeglasses", "--no-progress"])
    assert code == 1  # one unreadable file, named
    assert "1 unreadable file(s) skipped" in capsys.readouterr().err
    assert "broken.jpg" in (tmp_path / "shipped" / "unreadable.txt").read_text()
    lines = (tmp_path / "shipped" / "predictions.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert len(lines) == 6 and len(header) == 1 + 80
    assert header[1] == "5_o_Clock_Shadow_probability" and header[41] == "5_o_Clock_Shadow_present"
    shipped = np.array([[float(v) for v in line.split(",")[1:41]] for line in lines[1:]])
    assert np.all((shipped >= 0) & (shipped <= 1))
    heatmaps = sorted(p.name for p in (tmp_path / "shipped" / "heatmaps").glob("*.png"))
    assert heatmaps == ["celeba_frame.png", "palette.png", "rgba.png", "sixteen_bit.png", "square_grey.png"]
    # the run folder itself as --checkpoint: the same net before int8 / fp16 export
    main(["predict", str(faces), "--out", str(tmp_path / "run"), "--checkpoint", str(inputs.out_dir),
          "--no-progress"])
    full = np.array([[float(v) for v in line.split(",")[1:41]]
                     for line in (tmp_path / "run" / "predictions.csv").read_text().splitlines()[1:]])
    np.testing.assert_allclose(full, shipped, atol=0.05)
    assert not (tmp_path / "run" / "heatmaps").exists()


def test_ship_checks_the_written_file_and_writes_its_model_card(tiny_run, tmp_path, capsys):
    from ssp_ssg.__main__ import main
    from ssp_ssg.inference import MODEL_CARD_NAME

    inputs, results, _ = tiny_run
    assert main(["ship", "--checkpoint", str(inputs.out_dir), "--out", str(tmp_path / "ssp.pt"),
                 "--no-progress"]) == 0
    assert "MODEL_CARD.md" in capsys.readouterr().out
    card = (tmp_path / MODEL_CARD_NAME).read_text()
    tables = _tables(Path(inputs.out_dir))
    column = tables["table2_error"]["columns"].index("Pre-cropped: ours")
    ssp_error = next(row[column] for row in tables["table2_error"]["rows"] if row[0] == "Ours: SSP")
    assert f"| Ours: SSP | {ssp_error:.2f} |" in card
    # the checkpoint through the predict path scores as the run scored it (same test images)
    assert f"{ssp_error:.2f} % / " in card.split("with the full-precision")[0].rsplit("with these weights,", 1)[1]
    assert card.count("| SSP") == 6  # SSP + SSG and SSP vs Avg. Pooling: error, AP, balanced accuracy
    assert "non-commercial research" in card and "| Majority class (ours only) |" in card
    with pytest.raises(SystemExit, match="run.json is missing"):
        main(["ship", "--checkpoint", str(_unfinished_copy(inputs.out_dir, tmp_path / "copy")), "--out",
              str(tmp_path / "other.pt"), "--no-progress"])


def _unfinished_copy(run: Path, copy: Path) -> Path:
    shutil.copytree(Path(run) / "checkpoints", copy / "checkpoints")
    return copy


def test_predict_refuses_an_unplaceable_aspect_ratio(tiny_run, tmp_path):
    from ssp_ssg.__main__ import main

    inputs, _, _ = tiny_run
    Image.new("RGB", (100, 40)).save(tmp_path / "wide.jpg")
    with pytest.raises(SystemExit, match=r"wide.jpg: 100x40 is neither.*--geometry resize"):
        main(["predict", str(tmp_path / "wide.jpg"), "--out", str(tmp_path / "p"), "--checkpoint",
              str(inputs.out_dir), "--no-progress"])
    assert main(["predict", str(tmp_path / "wide.jpg"), "--out", str(tmp_path / "p"), "--checkpoint",
                 str(inputs.out_dir), "--geometry", "resize", "--no-progress"]) == 0


def test_predict_without_a_model_says_how_to_make_one(monkeypatch, tmp_path):
    from common import inference as common_inference
    from ssp_ssg import __main__ as cli
    from ssp_ssg import inference

    assert cli.GEOMETRIES == common_inference.GEOMETRIES
    missing = tmp_path / "pretrained" / "ssp_celeba_cpu.pt"
    monkeypatch.setattr(inference, "SHIPPED_MODEL", missing)
    Image.new("RGB", (89, 109)).save(tmp_path / "face.jpg")
    with pytest.raises(SystemExit, match=rf"no trained SSP model at {missing}.*export --checkpoint"):
        cli.main(["predict", str(tmp_path / "face.jpg"), "--out", str(tmp_path / "out")])

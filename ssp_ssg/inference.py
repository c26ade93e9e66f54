"""SSP on your own face images: the 40 attribute probabilities and localisation heat maps.

``python -m ssp_ssg predict IMAGES_OR_FOLDER ... --out DIR`` runs the SSP attribute net (§3.1.2;
its face parser inside it) through the shared inference path ``common.inference``:

decode (any PIL mode, EXIF rotation applied; unreadable files skipped, counted and named) -> map
the face from its frame to CelebA's aligned frame at the model's input size (``--geometry``:
``common.inference.frame_for_geometry`` / ``map_to_frame``) -> [0, 1] pixels (the models train
on unnormalised pixels) -> SSP -> sigmoid.

Writes ``DIR/predictions.csv`` (one row per readable image: the 40 probabilities, and the 40
decisions at the thresholds chosen on the validation images when the model carries them) and,
for the attributes named with ``--attributes``, ``DIR/heatmaps/<image>.png``: the image in the
model's frame beside each attribute's localisation map (the parser's region probabilities
weighted by SSP's per-image localisation weights, ``models.localisation_maps``). The maps are
held in memory at the parser's Deconv23 resolution (half the input) until drawn: about 10 KB per
image and attribute at 109x89.

The model: ``--checkpoint`` (a file written by ``python -m ssp_ssg export``, or a reproduce
``--out`` folder, whose validation-selected SSP checkpoint is used), else the shipped
:data:`SHIPPED_MODEL`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from common.attributes import ATTRIBUTE_INDEX, CELEBA_ATTRIBUTES, PARTS7_LABELS
from common.data.dataset import decode_image, image_to_rgb
from common.export import CELEBA_MODEL_LICENCE, load_shipped_model, save_shipped_model
from common.gpu import select_device
from common.inference import (FRAMES, GEOMETRIES, collect_images, frame_for_geometry,
                              map_to_frame, run_inference, write_predictions_csv)
from common.tables import Table, read_tables, wall_time_text
from common.train import load_trained_models
from ssp_ssg.config import ArchitectureConfig
from ssp_ssg.evaluate import attribute_scores
from ssp_ssg.figures import localisation_map_figure
from ssp_ssg.jobs import (DECISION_THRESHOLDS, PREDICTION_JOB, Job, find_run_folder,
                          inputs_from_run, prepare_data, read_decision_thresholds,
                          require_finished, selected_checkpoint)
from ssp_ssg.models import SegmentationNet, SSPAttributeNet, build_attribute_model, localisation_maps
from ssp_ssg.train import RunSettings

#: The model shipped with the package (the SSP net of the committed real-data run, ``export``).
SHIPPED_MODEL_NAME = "ssp_celeba_cpu.pt"
SHIPPED_MODEL = Path(__file__).resolve().parent / "pretrained" / SHIPPED_MODEL_NAME
#: ``meta["format"]`` of an exported SSP model.
MODEL_FORMAT = "ssp_ssg.ssp/1"
#: The frame every model of this package trains in: CelebA's aligned images, resized.
TRAINING_FRAME = FRAMES["celeba"]
#: EXIF orientation tag, and its values that turn the stored image by 90 degrees.
_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}


def no_shipped_model_message(path: Path) -> str:
    """What ``predict`` says when no ``--checkpoint`` is given and the shipped model is missing."""
    return (f"no trained SSP model at {path} (none ships with the package yet). Make one: "
            f"python -m ssp_ssg reproduce --scale cpu --data-root ../shared/data --out "
            f"results/ssp_ssg_cpu (about 90 min on 2 CPU cores; --scale smoke trains a toy one on "
            f"synthetic faces in a minute), then either pass --checkpoint results/ssp_ssg_cpu or "
            f"write it here with python -m ssp_ssg export --checkpoint results/ssp_ssg_cpu --out {path}")


@dataclass
class SSPModel:
    """A trained SSP net with what inference needs to feed it and decide with it."""

    model: SSPAttributeNet
    image_size: tuple[int, int]             # (height, width) of the input
    thresholds: np.ndarray | None           # (40,) chosen on validation; None: not stored
    source: str


def _ssp_net(architecture: ArchitectureConfig) -> SSPAttributeNet:
    return build_attribute_model("ssp", architecture, SegmentationNet(architecture))


def load_ssp_model(checkpoint: str | os.PathLike | None = None,
                   device: torch.device | str = "cpu") -> SSPModel:
    """The SSP model of ``checkpoint``: an ``export`` file, or a reproduce ``--out`` folder (its
    ``checkpoints/ssp/best.pt`` and ``decision_thresholds.json``); the shipped model when None.
    ``FileNotFoundError`` says how to make a model when there is none."""
    device = select_device(device) if isinstance(device, str) else device
    path = Path(checkpoint) if checkpoint is not None else SHIPPED_MODEL
    if not path.exists():
        raise FileNotFoundError(no_shipped_model_message(path) if checkpoint is None
                                else f"model file or results folder not found: {path}")
    if path.is_dir():
        inputs = inputs_from_run(find_run_folder(path), RunSettings(device=str(device)))
        model = _ssp_net(inputs.config.architecture)
        load_trained_models(selected_checkpoint(inputs, PREDICTION_JOB), model)
        thresholds = read_decision_thresholds(inputs.checkpoint_dir(PREDICTION_JOB) / DECISION_THRESHOLDS)
        image_size = tuple(int(v) for v in inputs.config.data.image_size)
    else:
        state_dict, meta = load_shipped_model(path)
        if meta.get("format") != MODEL_FORMAT:
            raise ValueError(f"{path}: not an SSP model of ssp_ssg (meta format {meta.get('format')!r}, "
                             f"expected {MODEL_FORMAT!r}); write one with python -m ssp_ssg export")
        model = _ssp_net(_architecture_from_meta(meta["architecture"], path))
        model.load_state_dict(state_dict)
        thresholds = None if meta.get("thresholds") is None else np.asarray(meta["thresholds"])
        image_size = tuple(int(v) for v in meta["image_size"])
    return SSPModel(model.to(device).eval(), image_size, thresholds, str(path))


def _architecture_from_meta(values: dict, path: Path) -> ArchitectureConfig:
    known = {item.name for item in dataclasses.fields(ArchitectureConfig)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"{path}: architecture fields {sorted(unknown)} unknown to this version")
    return ArchitectureConfig(**{key: tuple(value) if isinstance(value, list) else value
                                 for key, value in values.items()})


def export_model(run: str | os.PathLike, out: str | os.PathLike) -> tuple[Path, int]:
    """Write the validation-selected SSP net of a finished reproduction (``run``: its ``--out``
    folder) as a shipped model (``common.export``: int8 / fp16, at most 10 MiB), with its
    architecture, input size, decision thresholds and where it came from in ``meta``.
    Returns (path, bytes)."""
    inputs = inputs_from_run(find_run_folder(run), RunSettings(device="cpu"))
    require_finished(inputs, Job(PREDICTION_JOB, "attributes", "ssp"))
    model = _ssp_net(inputs.config.architecture)
    state = load_trained_models(selected_checkpoint(inputs, PREDICTION_JOB), model)
    thresholds = read_decision_thresholds(inputs.checkpoint_dir(PREDICTION_JOB) / DECISION_THRESHOLDS)
    config = inputs.config
    meta = {
        "format": MODEL_FORMAT,
        "architecture": json_plain(dataclasses.asdict(config.architecture)),
        "image_size": [int(v) for v in config.data.image_size],
        "frame": TRAINING_FRAME.name,
        "attribute_names": list(CELEBA_ATTRIBUTES),
        "region_names": list(PARTS7_LABELS),
        "thresholds": None if thresholds is None else [float(t) for t in thresholds],
        "trained": {"scale": config.scale, "run": str(inputs.out_dir), "selected_step": int(state["step"]),
                    "data": "synthetic faces" if inputs.data_root is None else str(inputs.data_root)},
        "licence": "CelebA and models trained on it: non-commercial research use only",
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return out, save_shipped_model(out, model.state_dict(), meta)


def json_plain(value):
    """Tuples as lists, recursively (``common.export`` meta holds plain values only)."""
    if isinstance(value, dict):
        return {key: json_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_plain(item) for item in value]
    return value


@dataclass(frozen=True)
class PredictionReport:
    csv_path: Path
    heatmaps: list[Path]
    images: int
    unreadable: list[Path]


class Predictor:
    """An :class:`SSPModel` with its preprocessing; :meth:`predict` runs it over files / folders."""

    def __init__(self, loaded: SSPModel, geometry: str = "auto",
                 heatmap_attributes: Sequence[str] = ()):
        unknown = [name for name in heatmap_attributes if name not in ATTRIBUTE_INDEX]
        if unknown:
            raise ValueError(f"unknown attributes {unknown}; CelebA's are: {', '.join(CELEBA_ATTRIBUTES)}")
        if geometry not in GEOMETRIES:
            raise ValueError(f"unknown geometry {geometry!r}; choose one of {', '.join(GEOMETRIES)}")
        self.loaded, self.geometry = loaded, geometry
        self.heatmap_attributes = list(heatmap_attributes)
        self.columns = [ATTRIBUTE_INDEX[name] for name in self.heatmap_attributes]
        self.device = next(loaded.model.parameters()).device
        height, width = loaded.image_size
        self.map_size = (-(-height // 2), -(-width // 2))  # Deconv23: half the input, ceil

    def preprocess(self, image: Image.Image, name: str | os.PathLike = "<image>") -> torch.Tensor:
        """The face in CelebA's aligned frame at the model's input size, [0, 1] CHW float32."""
        height, width = self.loaded.image_size
        frame = frame_for_geometry(image.width, image.height, self.geometry, name)
        if frame is None:
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        else:
            image = map_to_frame(image, frame, TRAINING_FRAME, (height, width))
        pixels = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
        return torch.from_numpy(np.multiply(pixels, np.float32(1 / 255), dtype=np.float32))

    @torch.no_grad()
    def outputs(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 40 + A * h * w): the probabilities, then the chosen attributes' localisation maps
        at Deconv23's resolution, flattened."""
        logits, weights, region_probs = self.loaded.model.forward_with_regions(images.to(self.device))
        parts = [torch.sigmoid(logits.float())]
        if self.columns:
            maps = localisation_maps(weights[:, :, self.columns], region_probs, self.map_size)
            parts.append(maps.flatten(1))
        return torch.cat(parts, dim=1).cpu()

    def predict(self, inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                batch_size: int = 32, progress: bool = True) -> PredictionReport:
        """Every image under ``inputs`` -> ``out_dir/predictions.csv`` and the heat maps."""
        out_dir = Path(out_dir)
        paths = collect_images(inputs)
        self.check_geometry(paths)
        result = run_inference(paths, self.preprocess, self.outputs, batch_size=batch_size,
                               progress=progress, description="faces")
        probabilities = result.outputs[:, :len(CELEBA_ATTRIBUTES)].astype(np.float64)
        columns = [f"{name}_probability" for name in CELEBA_ATTRIBUTES]
        values = probabilities.astype(object)
        thresholds = self.loaded.thresholds
        if thresholds is not None:
            decisions = (probabilities >= thresholds).astype(np.int64)
            values = np.concatenate([values, decisions.astype(object)], axis=1)
            columns += [f"{name}_present" for name in CELEBA_ATTRIBUTES]
        root = Path(os.path.commonpath([str(path.resolve().parent) for path in result.paths]))
        csv_path = write_predictions_csv(out_dir / "predictions.csv", result.paths, columns, values,
                                         root=root)
        heatmaps = []
        if self.columns:
            maps = result.outputs[:, len(CELEBA_ATTRIBUTES):].reshape(
                len(result.paths), len(self.columns), *self.map_size)
            for path, image_maps, row in zip(result.paths, maps, probabilities):
                titles = []
                for name, column in zip(self.heatmap_attributes, self.columns):
                    decided = "" if thresholds is None else (
                        " present" if row[column] >= thresholds[column] else " absent")
                    titles.append(f"{name.replace('_', ' ')}\np={row[column]:.2f}{decided}")
                target = out_dir / "heatmaps" / (_relative_name(path, root) + ".png")
                heatmaps.append(localisation_map_figure(
                    self._model_view(path)[None], image_maps[None], self.heatmap_attributes, target,
                    titles=[titles], title=f"{path.name}: SSP localisation maps"))
        if result.unreadable:
            (out_dir / "unreadable.txt").write_text("".join(f"{path}\n" for path in result.unreadable))
        return PredictionReport(csv_path, heatmaps, len(result.paths), result.unreadable)

    def check_geometry(self, paths: Sequence[Path]) -> None:
        """Before any work: ``ValueError`` naming every image whose upright size ``--geometry``
        cannot place (``auto`` and an aspect ratio of neither frame), from the file headers.
        Files PIL cannot open are left to be reported as unreadable."""
        problems = []
        for path in paths:
            try:
                with Image.open(path) as image:
                    width, height = image.size
                    if image.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSING_ORIENTATIONS:
                        width, height = height, width
            except (OSError, SyntaxError, ValueError):
                continue
            try:
                frame_for_geometry(width, height, self.geometry, path)
            except ValueError as error:
                problems.append(str(error))
        if problems:
            more = f" ({len(problems) - 1} more image(s) likewise)" if len(problems) > 1 else ""
            raise ValueError(problems[0] + more)

    def _model_view(self, path: Path) -> np.ndarray:
        """The image as the model saw it (decoded as ``common.inference.run_inference`` does)."""
        image = image_to_rgb(ImageOps.exif_transpose(decode_image(path)), path)
        return self.preprocess(image, path).numpy()


def _relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` as one file name (folders joined with ``__``), no suffix."""
    try:
        relative = path.resolve().relative_to(root)
    except ValueError:
        relative = Path(path.name)
    return "__".join(relative.with_suffix("").parts)


# --------------------------------------------------------------------------- shipping

#: The model card written beside a shipped model.
MODEL_CARD_NAME = "MODEL_CARD.md"


@dataclass(frozen=True)
class ShippedModelCheck:
    """The shipped file against the checkpoint it came from, both through :class:`Predictor` on
    the run's test images (files decoded as a user's would be): Table 2's error % and AP %."""

    path: Path
    bytes: int
    test_images: int
    shipped_error: float
    shipped_average_precision: float
    checkpoint_error: float
    checkpoint_average_precision: float


def ship_model(run: str | os.PathLike, out: str | os.PathLike = SHIPPED_MODEL, *, batch_size: int = 64,
               progress: bool = True) -> ShippedModelCheck:
    """``export`` the run's SSP net to ``out``, score the written file and the full-precision
    checkpoint on the run's test images through the ``predict`` path, and write
    :data:`MODEL_CARD_NAME` beside ``out`` from the run's ``run.json`` / ``tables.json`` and that
    check (every number computed, none typed)."""
    run_dir = find_run_folder(run)
    if not (run_dir / "run.json").is_file():
        raise FileNotFoundError(f"{run_dir / 'run.json'} is missing: ship a finished reproduce run")
    tables = read_tables(run_dir)
    path, size = export_model(run_dir, out)
    inputs = inputs_from_run(run_dir, RunSettings(device="cpu"))
    data = prepare_data(inputs)
    annotations = data.source.annotations
    image_paths = annotations.image_paths()
    test_paths = [image_paths[index] for index in data.splits.test]
    labels = annotations.attributes[data.splits.test]
    scores = {}
    for name, source in (("shipped", path), ("checkpoint", run_dir)):
        predictor = Predictor(load_ssp_model(source, "cpu"), geometry="resize")  # as training resizes
        result = run_inference(test_paths, predictor.preprocess, predictor.outputs,
                               batch_size=batch_size, progress=progress, description=f"test faces ({name})")
        if result.unreadable:
            raise ValueError(f"{len(result.unreadable)} test image(s) unreadable, e.g. {result.unreadable[0]}")
        scores[name] = attribute_scores(labels, result.outputs[:, :len(CELEBA_ATTRIBUTES)])
    check = ShippedModelCheck(path, size, len(test_paths), scores["shipped"].error,
                              scores["shipped"].average_precision, scores["checkpoint"].error,
                              scores["checkpoint"].average_precision)
    write_model_card(run_dir, tables, check)
    return check


def write_model_card(run_dir: Path, tables: dict[str, Table], check: ShippedModelCheck) -> Path:
    """``MODEL_CARD.md`` beside the shipped file: data, split, scale, Table 2's SSP row with the
    majority floor, every claim about SSP with its paired interval, the localisation check, the
    shipped-weights check and the licence; all read from the run's records."""
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    facts, config = run["extra"], run["config"]
    height, width = config["data"]["image_size"]
    # Runs recorded before OptimConfig.lr_schedule existed kept the lr constant.
    schedule = ", annealed to 0 by a cosine" if config["optim"].get("lr_schedule") == "cosine" else ", constant"
    lines = [
        f"# Model card: `{check.path.name}` (SSP attribute net of Kalayeh et al., CVPR 2017, with its face parser)", "",
        "- **Task**: CelebA's 40 attributes of a face image, with semantic segmentation-based pooling (§3.1.2); "
        "`python -m ssp_ssg predict IMAGES_OR_FOLDER --out DIR` uses this model by default and draws SSP's "
        "localisation maps with `--attributes`.",
        f"- **Data**: {facts['train_images']:,} / {facts['validation_images']:,} / {facts['test_images']:,} "
        f"train / validation / test CelebA images from `{facts['data_root']}`, split by identity (no person in two "
        f"sets); the parser learned from {facts['parsing']}.",
        f"- **Training**: `{run['command']}` ({run['start_time']}, {wall_time_text(run)}); "
        f"scale `{config['scale']}`: input {height}x{width}, width x{config['architecture']['width_multiplier']}, "
        f"{config['optim']['attribute_steps']:,} steps of {config['optim']['batch_size']} (AdaGrad lr "
        f"{config['optim']['learning_rate']}{schedule}), the checkpoint with the best validation metric. The "
        "package README lists every reduction against the paper.",
        "- **Decision rule**: per-attribute thresholds chosen on the validation images, stored in the file "
        "(Table 2's error uses 0.5, as the paper).",
        "- **Input geometry**: faces in CelebA's aligned 178x218 frame (any size of that aspect); square "
        "CelebA-HQ / FFHQ crops are mapped to it first (`--geometry`, README).",
        f"- **Weights**: int8 per-output-channel for large tensors, fp16 elsewhere (`common.export`), "
        f"{check.bytes / 2**20:.2f} MiB. On the {check.test_images:,} test images through the `predict` path: "
        f"error {check.shipped_error:.2f} % / AP {check.shipped_average_precision:.2f} % with these weights, "
        f"{check.checkpoint_error:.2f} % / {check.checkpoint_average_precision:.2f} % with the full-precision "
        "checkpoint.", "",
        f"## Table 2 on the {facts['test_images']:,} test images (ours; the paper's are on CelebA's test partition "
        "at full scale)", "",
        "| model | error % | AP % | balanced accuracy % (weighted BCE) |", "|---|---:|---:|---:|"]
    column = {key: tables[key].columns.index("Pre-cropped: ours") for key in
              ("table2_error", "table2_average_precision", "table2_balanced_accuracy")}

    def cell(key: str, label: str) -> str:
        row = next((row for row in tables[key].rows if row[0] == label), None)
        if row is None:
            return "n/a: not in this table"
        value = row[column[key]]
        return f"{value:.2f}" if isinstance(value, (int, float)) else str(value)

    for label in ("Ours: SSP", "Ours: Avg. Pooling", "Majority class (ours only)"):
        lines.append(f"| {label} | {cell('table2_error', label)} | {cell('table2_average_precision', label)} | "
                     f"{cell('table2_balanced_accuracy', label)} |")
    claims = tables["claims_intervals"]
    lines += ["", "## The paper's comparisons involving SSP (paired 95 % bootstrap intervals over test images)", "",
              "| comparison: measure | ours: A − B | 95 % CI | verdict |", "|---|---:|---|---|"]
    verdicts = {1: "A better", -1: "B better", 0: "not distinguishable at this scale"}
    for row in claims.rows:
        if row[0].startswith("SSP"):
            low, high = row[3], row[4]
            interval = (f"[{low:+.2f}, {high:+.2f}]" if isinstance(low, (int, float)) and isinstance(high, (int, float))
                        else f"{low}; {high}")
            lines.append(f"| {row[0]} | {row[2]:+.2f} | {interval} | {verdicts.get(row[6], row[6])} |")
    localisation = facts["localisation_matches"]
    lines += ["", "## Localisation (Fig. 4 check)", "",
              f"Of {localisation['assessed']} attributes with a region they describe, {localisation['matches']} weigh "
              f"that region most in SSP's mean localisation weights on the test images (chance "
              f"{localisation['expected_by_chance']:.1f}, p = {localisation['p_value']:.3g}).", "",
              "## Limits", "",
              "- A reduced network trained briefly on low-resolution aligned CelebA crops of celebrities; expect "
              "lower accuracy on other populations, poses, lighting and on faces not aligned like CelebA's. The "
              "parser learned pseudo masks from mediapipe, not Helen's labels. Subjective attributes carry CelebA's "
              "annotators' judgement.", "", "## Licence", "", CELEBA_MODEL_LICENCE, ""]
    card = check.path.parent / MODEL_CARD_NAME
    card.write_text("\n".join(lines), encoding="utf-8")
    return card

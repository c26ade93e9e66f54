"""The papers' qualitative claims, as checks on a smoke run's tables.

A claim ("every model beats the majority rule", "joint training raises parsing IoU") is recorded
in ``benchmarks/expected/<package>.json`` only when it held in every measured run (all seeds and
kernel paths, see :mod:`benchmarks.expected`); CI then checks the claim itself on its own run,
which is robust to the CPU in a way no single value is. A claim that failed in some measured run
is listed there as not checked, with how often it held.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from common.tables import Table


def cell(tables: Mapping[str, Table], table: str, row: str, column: str) -> float:
    """A numeric cell; KeyError when the table, row or column is missing or the cell is text."""
    found = tables[table]
    for candidate in found.rows:
        if str(candidate[0]) == row:
            value = candidate[list(found.columns).index(column)]
            if isinstance(value, str):
                raise KeyError(f"{table} | {row} | {column} is {value!r}")
            return float(value)
    raise KeyError(f"{table}: no row {row!r}")


@dataclass(frozen=True)
class Claim:
    name: str
    description: str
    holds: Callable[[Mapping[str, Table]], bool]

    def evaluate(self, tables: Mapping[str, Table]) -> bool:
        try:
            return bool(self.holds(tables))
        except (KeyError, ValueError):
            return False


_SSP_MODELS = ("Ours: Avg. Pooling", "Ours: SSG", "Ours: SSP", "Ours: SSP + SSG")
_SSP_MAJORITY = "Majority class (ours only)"


def _ssp(table: str, row: str, column: str = "Pre-cropped: ours"):
    return lambda t: cell(t, table, row, column)


def _ffhq(row: str):
    return lambda t: cell(t, "summary", row, "Ours")


def _crd(row: str):
    return lambda t: cell(t, "test_results", row, "Ours")


def _mtfl(row: str):
    return lambda t: cell(t, "summary_accuracy", row, "Ours")


def _inversion(row: str, column: str):
    return lambda t: cell(t, "table1_details", row, column)


CLAIMS: dict[str, tuple[Claim, ...]] = {
    "ssp_ssg": (
        *(Claim(f"error below majority: {m}", f"{m} has a lower pre-cropped error than the majority rule",
                lambda t, m=m: _ssp("table2_error", m)(t) < _ssp("table2_error", _SSP_MAJORITY)(t))
          for m in _SSP_MODELS),
        *(Claim(f"AP above majority: {m}", f"{m} has a higher average precision than the majority rule",
                lambda t, m=m: _ssp("table2_average_precision", m)(t)
                > _ssp("table2_average_precision", _SSP_MAJORITY)(t))
          for m in _SSP_MODELS),
        Claim("joint training raises parsing IoU", "Table 4: average IoU with attributes > without (§4.4)",
              lambda t: _ssp("table4_parsing_iou", "Average", "w/ attributes: ours")(t)
              > _ssp("table4_parsing_iou", "Average", "w/o attributes: ours")(t)),
        Claim("SSP + SSG beats Avg. Pooling", "Table 2: SSP + SSG has a lower error than Avg. Pooling",
              lambda t: _ssp("table2_error", "Ours: SSP + SSG")(t) < _ssp("table2_error", "Ours: Avg. Pooling")(t)),
        Claim("SSP beats Avg. Pooling", "Table 2: SSP has a lower error than Avg. Pooling",
              lambda t: _ssp("table2_error", "Ours: SSP")(t) < _ssp("table2_error", "Ours: Avg. Pooling")(t)),
    ),
    "celeba_ffhq_labels": (
        Claim("mean AUROC above chance", "mean AUROC over the 40 attributes > 0.5",
              lambda t: _ffhq("Mean AUROC (40 attributes)")(t) > 0.5),
        Claim("threshold 0.5 beats the all-negative baseline", "Eq. 7: hamming loss at threshold 0.5 < all-negative",
              lambda t: _ffhq("Hamming loss, threshold 0.5 (Eq. 7)")(t)
              < _ffhq("Hamming loss, all-negative baseline")(t)),
        Claim("beats the all-negative baseline", "hamming loss at the searched thresholds < all-negative",
              lambda t: _ffhq("Hamming loss, per-attribute thresholds searched on val")(t)
              < _ffhq("Hamming loss, all-negative baseline")(t)),
        Claim("threshold search does not hurt", "§3.2: searched thresholds' hamming loss <= threshold 0.5's",
              lambda t: _ffhq("Hamming loss, per-attribute thresholds searched on val")(t)
              <= _ffhq("Hamming loss, threshold 0.5 (Eq. 7)")(t)),
        Claim("transferred labels beat the all-negative baseline",
              "label transfer: hard labels' hamming loss < the all-negative baseline on the same faces",
              lambda t: _ffhq("Label transfer: hamming loss of hard labels vs true labels")(t)
              < _ffhq("Label transfer: hamming loss of the all-negative baseline on the same faces")(t)),
    ),
    "celeba_resnet_densenet": tuple(
        Claim(f"{net} {metric} above majority", f"{net}'s test {metric} > the majority rule's",
              lambda t, net=net, metric=metric: _crd(f"{net} {metric}")(t) > _crd(f"Majority rule {metric}")(t))
        for net in ("ResNet50", "DenseNet121") for metric in ("F-score", "Accuracy")) + tuple(
        Claim(f"{net} mean AUROC above chance", f"{net}'s threshold-free test mean AUROC > 0.5",
              lambda t, net=net: _crd(f"{net} Mean AUROC")(t) > 0.5)
        for net in ("ResNet50", "DenseNet121")),
    "mtfl_compare": tuple(
        Claim(f"above chance: {model}", f"{model}: test accuracy > 50 %",
              lambda t, model=model: _mtfl(model)(t) > 50.0)
        for model in ("InceptionV3 approach 1, Gender*", "InceptionV3 approach 1, Gender",
                      "InceptionV3 approach 1, Smile*", "InceptionV3 approach 1, Smile",
                      "InceptionV3 approach 2, Gender*", "InceptionV3 approach 2, Smile*",
                      "TCDCN, Smile")),
    "attribute_inversion": (
        Claim("judge above chance", "the attribute judge's balanced accuracy on real test faces > 0.5",
              lambda t: cell(t, "judge", "Eyeglasses", "balanced accuracy") > 0.5),
        *(Claim(f"{model} changes the attribute", f"{model}'s attribute success rate > the unchanged input's",
                lambda t, model=model: _inversion(f"Eyeglasses / {model}", "attribute success rate")(t)
                > cell(t, "judge", "Eyeglasses", "success rate of the unchanged input"))
          for model in ("ours", "CycleGAN")),
        Claim("ours has a lower FID than CycleGAN", "Table 1: FID of ours < CycleGAN's (Eyeglasses)",
              lambda t: _inversion("Eyeglasses / ours", "FID 2048-d")(t)
              < _inversion("Eyeglasses / CycleGAN", "FID 2048-d")(t)),
        Claim("ours has a higher mean DFN than CycleGAN", "Table 1: mean DFN of ours > CycleGAN's (Eyeglasses)",
              lambda t: _inversion("Eyeglasses / ours", "mean DFN")(t)
              > _inversion("Eyeglasses / CycleGAN", "mean DFN")(t)),
    ),
}


def claims_that_held(package: str, runs: list[Mapping[str, Table]]) -> dict[str, str]:
    """Each claim of ``package`` -> "checked: held in N/N runs" or "not checked: held in k/N runs"."""
    record = {}
    for claim in CLAIMS.get(package, ()):
        held = sum(claim.evaluate(tables) for tables in runs)
        status = "checked" if held == len(runs) else "not checked"
        record[claim.name] = f"{status}: held in {held}/{len(runs)} measured runs ({claim.description})"
    return record


def failed_claims(package: str, recorded: Mapping[str, str], tables: Mapping[str, Table]) -> list[str]:
    """The recorded claims marked "checked" that do not hold in ``tables``, as readable lines."""
    by_name = {claim.name: claim for claim in CLAIMS.get(package, ())}
    problems = []
    for name, status in recorded.items():
        if not status.startswith("checked"):
            continue
        if name not in by_name:
            problems.append(f"claim {name!r} is recorded but no longer defined in benchmarks/claims.py")
        elif not by_name[name].evaluate(tables):
            problems.append(f"claim failed: {name} ({by_name[name].description}); it {status.split(': ', 1)[1]}")
    return problems

"""Root pytest configuration shared by every test module.

torch and torchvision are imported before tensorflow in every process that may load both:
with the pinned wheels, importing either after tensorflow segfaults (measured: torch+tensorflow+
torchvision and torch+tensorflow+timm crash; torch+torchvision+tensorflow does not)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads OpenMP; see Makefile

import torch  # noqa: F401  -- must precede any tensorflow import
import torchvision  # noqa: F401  -- likewise: torchvision after tensorflow segfaults
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent
SHARED_DATA = Path(os.environ.get("SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

#: The smoke-scale reproduction of each paper package, run at most once per test session.
_SMOKE_RUNS: dict[str, Path] = {}


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same seeds."""
    from common.seed import seed_everything

    seed_everything(0)
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real CelebA annotations + 10,000 images, MTFL); skip when absent."""
    if not (SHARED_DATA / "celeba" / "list_attr_celeba.txt").is_file():
        pytest.skip(f"real data not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def synthetic_celeba_root(tmp_path_factory) -> Path:
    """A small synthetic dataset in CelebA's official layout (64 faces at 109x89)."""
    from common.synthetic import write_celeba_layout

    root = tmp_path_factory.mktemp("synthetic_celeba")
    write_celeba_layout(root, n=64, seed=0, height=109, width=89)
    return root


@pytest.fixture
def decoded(monkeypatch) -> list[str]:
    """Names of the image files decoded from now on (by a decoded-image cache build or by FaceDataset)."""
    import common.data.cache as cache_module
    import common.data.dataset as dataset_module

    names: list[str] = []
    original = dataset_module.decode_image

    def counting_decode(path):
        names.append(Path(path).name)
        return original(path)

    monkeypatch.setattr(cache_module, "decode_image", counting_decode)
    monkeypatch.setattr(dataset_module, "decode_image", counting_decode)
    return names


def run_smoke_reproduction(package: str, out_root: Path, cache: bool = True) -> Path:
    """Run ``python -m <package> reproduce --scale smoke`` (once per session unless ``cache`` is
    False); return its out dir."""
    if package not in _SMOKE_RUNS or not cache:
        from benchmarks.expected import smoke_command

        out_dir = out_root / package
        command = smoke_command(package, out_dir)
        completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
        if completed.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} exited {completed.returncode}\n"
                f"--- stdout ---\n{completed.stdout[-4000:]}\n--- stderr ---\n{completed.stderr[-8000:]}")
        if not cache:
            return out_dir
        _SMOKE_RUNS[package] = out_dir
    return _SMOKE_RUNS[package]


@pytest.fixture(scope="session")
def smoke_reproduction(tmp_path_factory):
    """``smoke_reproduction("ssp_ssg") -> Path`` of that package's smoke-scale results (cached)."""
    out_root = tmp_path_factory.mktemp("smoke_runs")
    return lambda package: run_smoke_reproduction(package, out_root)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)

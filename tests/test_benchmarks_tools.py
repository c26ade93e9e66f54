"""benchmarks' scripts: the results page builds from committed files, throughput says where no GPU is."""
from __future__ import annotations

import pytest
import torch

from benchmarks import report, throughput
from benchmarks.expected import PACKAGES


def test_report_covers_every_package():
    page = report.build_report()
    for package in PACKAGES:
        assert f"## {package}" in page
    assert page.startswith("# Where we stand")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_throughput_without_gpu_says_so(capsys):
    assert throughput.main([]) == 0
    assert "no GPU here" in capsys.readouterr().out


def test_package_models_build_at_paper_size():
    from benchmarks.package_models import package_throughput_cases

    cases = package_throughput_cases()
    assert set(throughput.H100_REFERENCE_IMAGES_PER_SECOND) - set(throughput.classifier_cases()) <= set(cases)

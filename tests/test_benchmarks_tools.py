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


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



def test_every_package_throughput_case_trains_one_step():
    """The package networks of ``make bench`` build at paper size and take an optimizer step."""
    from benchmarks.package_models import package_throughput_cases
    from common.gpu import measure_training_throughput

    cases = package_throughput_cases()
    assert {"ssp_basic_net@218x178", "ssp_segmentation_net@218x178", "inversion_unet_g+d@128",
            "cyclegan_resnet_g+patch_d@128"} <= set(cases)
    for name, (make_model, make_batch, loss_fn) in cases.items():
        result = measure_training_throughput(make_model(), make_batch, loss_fn, batch_size=2, steps=1,
                                             warmup_steps=0, device="cpu")
        assert result.images_per_second > 0, name


def test_every_headline_points_at_a_computed_cell():
    """The at-a-glance table's cells exist in the recorded smoke tables and committed real runs."""
    from benchmarks.expected import load_expected
    from common.tables import read_tables

    for headline in report.HEADLINES:
        smoke = report.smoke_tables(load_expected(headline.package))
        real = read_tables(report.RESULTS_DIR / headline.package / headline.real_run)
        for tables in (smoke, real):
            assert isinstance(report._cell(tables, headline.table, *headline.ours), float), headline
            assert isinstance(report._cell(tables, headline.table, *headline.paper), float), headline


def test_package_loops_are_timed_against_plain_eager_on_synthetic_faces(tmp_path):
    """``--cpu --quick --loops``: each package's own loop, the eager step and the input pipeline get positive
    rates, in the Markdown table and the JSON (synthetic faces: the data root holds no CelebA); every
    package on common.train is measured (ssp_ssg's Avg. Pooling, attribute_inversion's GAN with its
    images counted as G's inputs), and mtfl_compare's TensorFlow fine-tuning against torchvision's
    Inception3."""
    import json

    from benchmarks.package_loops import MEASUREMENTS

    assert list(MEASUREMENTS) == ["celeba_ffhq_labels", "celeba_resnet_densenet", "ssp_ssg", "attribute_inversion",
                                  "mtfl_compare"]
    assert throughput.main(["--cpu", "--quick", "--only", "ffhq_reduced@109x89", "--loops", *MEASUREMENTS,
                            "--data-root", str(tmp_path / "no_data"), "--out", str(tmp_path)]) == 0
    [markdown] = tmp_path.glob("throughput-cpu-*.md")
    text = markdown.read_text()
    records = json.loads(markdown.with_suffix(".json").read_text())["package_loops"]
    assert [record["package"] for record in records] == list(MEASUREMENTS)
    for record in records:
        assert record["data"] == "synthetic faces" and record["steps"] == 2
        assert record["pipeline_images_per_second"] > 0
        assert len(record["loop_images_per_second"]) == len(record["loop_fp32_images_per_second"]) == 1
        assert min(record["loop_images_per_second"] + record["loop_fp32_images_per_second"]
                   + record["eager_images_per_second"]) > 0
        assert record["loop_vs_eager"] == record["loop_images_per_second"][0] / record["eager_images_per_second"][0]
        assert record["loop_fp32_vs_eager"] == (record["loop_fp32_images_per_second"][0]
                                                / record["eager_images_per_second"][0])
        assert "bf16" in record["fast_path"] and "channels_last" in record["fast_path"]
        assert f"| {record['package']} |" in text
    gan = next(record for record in records if record["package"] == "attribute_inversion")
    from attribute_inversion.config import ReproduceConfig

    size = ReproduceConfig.cpu().data.image_size  # the package's own cpu scale
    assert gan["input_size"] == [size, size] and "G's input faces per step" in gan["note"]
    assert f"- attribute_inversion: {gan['note']}." in text
    ssp = next(record for record in records if record["package"] == "ssp_ssg")
    assert ssp["network"].startswith("avgpool") and ssp["input_size"] == [109, 89] and ssp["batch_size"] == 32
    # The fast path is each package's own cpu-scale setting, and a bf16 "auto" says what it decided here.
    assert gan["fast_path"] == "bf16 off, channels_last on; bf16 off (--bf16 off)"
    mtfl = next(record for record in records if record["package"] == "mtfl_compare")
    assert mtfl["input_size"] == [150, 150] and mtfl["batch_size"] == 16  # the cpu scale's fine-tuning
    assert mtfl["fast_path"].startswith("TensorFlow") and "torchvision Inception3" in mtfl["note"]
    ffhq = next(record for record in records if record["package"] == "celeba_ffhq_labels")
    assert ffhq["fast_path"].startswith("bf16 auto, channels_last where bf16 is on; bf16 ")


def test_loop_sides_are_interleaved_and_their_ratios_are_medians_over_rounds(tmp_path):
    """Round r starts at side r; each loop run gets a fresh folder; ratios are the median of the
    per-round ratios with their range; the fast path names the bf16 decision its first run wrote."""
    import json

    from benchmarks.package_loops import PreparedLoop, loops_markdown, measure_prepared

    order, folders = [], []
    rates = {"loop": iter([10.0, 30.0, 20.0]), "loop_fp32": iter([9.0, 9.5, 8.0]), "eager": iter([10.0, 10.0, 10.0])}

    def run_loop(fast_path, out_dir):
        side = "loop" if fast_path else "loop_fp32"
        assert not out_dir.exists()
        out_dir.mkdir(parents=True)
        if fast_path and not folders:
            (out_dir / "bf16.json").write_text(json.dumps({"use_bf16": True, "reason": "timed 1.5x"}))
        order.append(side)
        folders.append(out_dir)
        return next(rates[side])

    def run_eager():
        order.append("eager")
        return next(rates["eager"])

    prepared = PreparedLoop("pkg", "net", "synthetic faces", (8, 8), 4, run_loop, run_eager, lambda: 100.0,
                            fast_path="bf16 auto")
    measured = measure_prepared(prepared, 5, 3, tmp_path)
    assert order == ["loop", "loop_fp32", "eager", "loop_fp32", "eager", "loop", "eager", "loop", "loop_fp32"]
    assert len(set(folders)) == 6
    assert measured.rounds == 3 and measured.loop_vs_eager == 2.0 and measured.ratio_range("loop") == (1.0, 3.0)
    assert measured.loop_fp32_vs_eager == pytest.approx(0.9) and measured.pipeline_vs_step == 10.0
    assert measured.fast_path == "bf16 auto; bf16 on (timed 1.5x)"
    assert "| 2.00x (1.00-3.00) | 0.90x (0.80-0.95) |" in loops_markdown([measured])
    with pytest.raises(ValueError, match="rounds"):
        measure_prepared(prepared, 5, 0, tmp_path)


def test_bf16_validation_compares_against_the_seed_difference_on_the_same_images():
    import numpy as np

    from benchmarks.bf16_validation import compare, markdown

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=(200, 5)).astype(np.uint8)

    def run(noise):
        probabilities = np.clip(0.7 * labels + 0.15 + rng.normal(0, noise, labels.shape), 0, 1)
        return {"labels": labels, "probabilities": probabilities, "decisions": (probabilities >= 0.5).astype(np.uint8),
                "train_seconds": 60.0, "train_images_per_second": 50.0}

    results = {"fp32, seed 0": run(0.1), "bf16, seed 0": run(0.1), "fp32, seed 1": run(0.4)}
    rows = compare(results)
    assert [(row["comparison"], row["metric"]) for row in rows] == [
        ("bf16, seed 0 - fp32, seed 0", "mean_auroc"), ("bf16, seed 0 - fp32, seed 0", "accuracy"),
        ("fp32, seed 1 - fp32, seed 0", "mean_auroc"), ("fp32, seed 1 - fp32, seed 0", "accuracy")]
    assert all(row["low"] <= row["estimate"] <= row["high"] for row in rows)
    assert rows[2]["high"] < 0  # the noisier run ranks worse, and the interval says so
    assert "| bf16, seed 0 - fp32, seed 0 | validation mean AUROC |" in markdown(rows, results)
    results["fp32, seed 1"] = {**results["fp32, seed 1"], "labels": 1 - labels}
    with pytest.raises(ValueError, match="other validation images"):
        compare(results)

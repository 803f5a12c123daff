"""The benchmark script runs end to end and reports every figure; it never asserts a speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from detector_core.benchmark import main

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_reports_every_figure(tiny_weights, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(
        [
            "--weights",
            str(tiny_weights),
            "--repeats",
            "1",
            "--sizes",
            "0.02,0.05",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    figures = json.loads(out.read_text())
    assert [row["megapixels"] for row in figures["per_image"]] == [0.02, 0.05]
    for row in figures["per_image"]:
        assert row["tiles_scored"] >= 1
        assert row["ms_median"] > 0 and row["ms_median_pixels_only"] > 0
        assert row["ms_median_with_stability"] > 0 and row["ms_trace"] > 0
        assert "ms_clip" not in row  # the tiny model has no CLIP expert
    assert figures["resnet50_224_ms"] > 0
    assert figures["batched_images_per_s_0.25mp"] > 0
    assert figures["peak_rss_mb"] > 0
    # The separate scoring process of a trace release loads torch; its RSS is its own.
    assert figures["scoring_process_peak_rss_mb"] > 0
    assert figures["scoring_process_loaded_torch"] is True
    assert figures["model_version"] == "test-0" and figures["device"] == "cpu"
    assert figures["experts"] == ["trace"]
    printed = capsys.readouterr().out
    assert "× ResNet-50@224" in printed and "peak RSS of a scoring process" in printed


@pytest.mark.parametrize("sizes", ["0", "abc", "1,,2", "nan", "100"])
def test_benchmark_refuses_bad_sizes(sizes, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--sizes", sizes])
    assert exc.value.code == 2
    assert "--sizes" in capsys.readouterr().err


def test_benchmark_missing_weights_is_one_error_line(tmp_path, capsys):
    code = main(["--weights", str(tmp_path / "absent.safetensors"), "--sizes", "0.02"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("humanmade benchmark: error:") and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_benchmark_cuda_without_a_gpu_is_refused(capsys):
    assert main(["--device", "cuda", "--sizes", "0.02"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_benchmarks_folder_script_runs_the_same_tool():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scoring_speed.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "--device" in done.stdout and "--sizes" in done.stdout

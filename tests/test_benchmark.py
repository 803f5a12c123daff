"""The benchmark script runs end to end and reports every figure; it never asserts a speed.
Clip rows are timed on a 1-second 320×240 clip, so that the test stays cheap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from detector_core import benchmark
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
            "--clip-seconds",
            "1",
            "--clip-size",
            "320x240",
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
    # One clip row, its ratio against the ResNet-50 timed above (not a second reference).
    assert figures["clip_repeats"] == 1
    (clip,) = figures["clips"]
    assert clip["clip"] == "1 s 320×240 H.264 30 fps" and clip["seconds"] == 1
    assert clip["bytes"] > 0
    # Decoded counts the frames a seek decodes again, so it may pass the clip's 30 frames.
    assert 1 <= clip["frames_scored"] <= clip["frames_decoded"]
    assert clip["decode_ms"] > 0 and clip["score_ms"] > 0
    assert clip["total_ms"] == pytest.approx(clip["decode_ms"] + clip["score_ms"], abs=0.2)
    ratio = (clip["decode_ms"] + clip["score_ms"]) / figures["resnet50_224_ms"]
    assert clip["resnet50_forwards"] == pytest.approx(ratio, abs=0.06)
    out, err = capsys.readouterr()
    assert "× ResNet-50@224" in out and "peak RSS of a scoring process" in out
    assert "decode ms" in out and "score ms" in out
    (line,) = [row for row in out.splitlines() if row.startswith("1 s 320×240")]
    assert line.split()[-1] == f"{clip['resnet50_forwards']:.1f}"
    assert "clip 1/1: encoding 1 s of 320×240" in err  # the progress line, on stderr


@pytest.mark.parametrize("flag", [["--no-clips"], ["--clip-seconds"]])
def test_benchmark_without_clips_leaves_them_out(flag, tiny_weights, tmp_path, capsys, monkeypatch):
    def no_clips(*args, **kwargs):
        raise AssertionError("no clip should be encoded or scored")

    monkeypatch.setattr(benchmark, "clip_rows", no_clips)
    # The separate scoring process is covered above; here it would only cost a torch import.
    monkeypatch.setattr(
        benchmark,
        "scoring_process_figures",
        lambda *args: {"peak_rss_mb": 1.0, "torch_loaded": True},
    )
    out = tmp_path / "bench.json"
    argv = ["--weights", str(tiny_weights), "--repeats", "1", "--sizes", "0.02"]
    assert main(argv + flag + ["--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert "clips" not in figures and "clip_repeats" not in figures
    assert [row["megapixels"] for row in figures["per_image"]] == [0.02]
    out_text, err = capsys.readouterr()
    assert "decode ms" not in out_text and "clip 1/" not in err


@pytest.mark.parametrize(
    "argv, where",
    [
        (["--clip-size", "1921x1080"], "--clip-size"),
        (["--clip-size", "big"], "--clip-size"),
        (["--clip-size", "32x32"], "--clip-size"),
        (["--clip-seconds", "0"], "--clip-seconds"),
        (["--clip-seconds", "30", "--no-clips"], "not allowed with"),
    ],
)
def test_benchmark_refuses_bad_clip_options(argv, where, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert where in capsys.readouterr().err


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

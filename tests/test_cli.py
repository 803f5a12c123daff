"""The `humanmade` command line, run in-process (plus one real subprocess)."""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import encode, make_image

from detector_core.cli import main
from detector_core.verdict import Verdict

LINE = re.compile(r"^(?P<name>.+): AI-generated: \d{1,3}% \((likely human|uncertain|likely AI)\)$")
# The heatmap appears only when asked for.
VERDICT_KEYS = {"source", *Verdict.__dataclass_fields__, "summary"} - {"heatmap"}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture
def images(tmp_path) -> Path:
    """A folder with three images (PNG, JPEG, WebP), a text file named .jpg, and a non-image."""
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "b.png").write_bytes(encode(make_image(seed=1)))
    (folder / "a.JPG").write_bytes(encode(make_image(seed=2), "JPEG", quality=90))
    (folder / "c.webp").write_bytes(encode(make_image(seed=3), "WEBP"))
    (folder / "notes.jpg").write_text("not an image at all\n")
    (folder / "readme.txt").write_text("ignored: not an image extension\n")
    return folder


def test_single_file_line(capsys, tiny_weights, images):
    path = images / "b.png"
    code, out, err = run(capsys, "score", str(path), "--weights", str(tiny_weights))
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1
    match = LINE.match(lines[0])
    assert match and match["name"] == str(path)
    assert err == ""


def test_json_lines(capsys, tiny_weights, images):
    files = [str(images / "a.JPG"), str(images / "b.png")]
    code, out, err = run(capsys, "score", *files, "--json", "--weights", str(tiny_weights))
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["source"] for r in records] == files
    for record in records:
        assert set(record) == VERDICT_KEYS
        assert 0.0 <= record["ai_probability"] <= 1.0
        assert record["band"] in ("likely_human", "uncertain", "likely_ai")
        assert record["model_version"] == "test-0"
    assert records[0]["image"]["format"] == "JPEG"


def test_folder_scores_images_and_names_the_failure(capsys, tiny_weights, images):
    code, out, err = run(capsys, "score", str(images), "--weights", str(tiny_weights))
    assert code == 1
    names = [LINE.match(line)["name"] for line in out.splitlines()]
    assert names == [str(images / n) for n in ("a.JPG", "b.png", "c.webp")]  # sorted
    assert f"{images / 'notes.jpg'}: error: The file is not an image" in err
    assert "readme.txt" not in out + err


def test_folder_json_reports_failure_record(capsys, tiny_weights, images):
    code, out, _ = run(
        capsys, "score", str(images), "--json", "--no-progress", "--weights", str(tiny_weights)
    )
    assert code == 1
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 4
    failure = next(r for r in records if "error" in r)
    assert failure == {
        "source": str(images / "notes.jpg"),
        "error": "not_an_image",  # the API's code for the same error
        "message": failure["message"],
    }
    assert failure["message"].startswith("The file is not an image")


def test_recursive(capsys, tiny_weights, tmp_path):
    (tmp_path / "top" / "deep").mkdir(parents=True)
    (tmp_path / "top" / "deep" / "x.png").write_bytes(encode(make_image(seed=4)))
    code, _, err = run(capsys, "score", str(tmp_path / "top"), "--weights", str(tiny_weights))
    assert code == 1
    assert "contains no image files" in err and "--recursive" in err
    code, out, err = run(
        capsys, "score", str(tmp_path / "top"), "-r", "--weights", str(tiny_weights)
    )
    assert code == 0, err
    assert LINE.match(out.strip())["name"] == str(tmp_path / "top" / "deep" / "x.png")


def test_missing_path_and_corrupt_file_do_not_stop_the_rest(capsys, tiny_weights, images):
    corrupt = images / "broken.png"
    corrupt.write_bytes(encode(make_image(seed=5))[:200])  # truncated PNG
    missing = images / "nope.png"
    good = images / "b.png"
    code, out, err = run(
        capsys, "score", str(missing), str(corrupt), str(good), "--weights", str(tiny_weights)
    )
    assert code == 1
    assert [LINE.match(line)["name"] for line in out.splitlines()] == [str(good)]
    assert f"{missing}: error: There is no file at" in err
    assert f"{corrupt}: error: " in err
    assert "2 of 3 inputs failed" in err


def test_empty_folder(capsys, tiny_weights, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run(capsys, "score", str(empty), "--weights", str(tiny_weights))
    assert code == 1
    assert out == ""
    assert f"{empty}: error: The folder" in err and "no image files" in err


@pytest.fixture
def local_server(images):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(images))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_url_with_allow_host(capsys, tiny_weights, local_server):
    url = f"{local_server}/b.png"
    code, out, err = run(
        capsys, "score", url, "--allow-host", "127.0.0.1", "--json", "--weights", str(tiny_weights)
    )
    assert code == 0, err
    record = json.loads(out)
    assert record["source"] == url and record["image"]["format"] == "PNG"


def test_url_loopback_refused_without_allow_host(capsys, tiny_weights, local_server):
    url = f"{local_server}/b.png"
    code, out, err = run(capsys, "score", url, "--weights", str(tiny_weights))
    assert code == 1
    assert out == ""
    assert url in err and "loopback" in err


def test_url_http_error_is_an_input_failure(capsys, tiny_weights, local_server):
    url = f"{local_server}/missing.png"
    code, _, err = run(
        capsys, "score", url, "--allow-host", "127.0.0.1", "--weights", str(tiny_weights)
    )
    assert code == 1
    assert f"{url}: error: " in err and "404" in err


def test_bad_allow_host_is_a_usage_error(capsys, tiny_weights, images):
    code, _, err = run(capsys, "score", str(images), "--allow-host", "10.0.0.0/99")
    assert code == 2
    assert "--allow-host" in err


def test_usage_errors(capsys):
    assert run(capsys, "score")[0] == 2
    assert run(capsys, "score", "x.png", "--max-tiles", "0")[0] == 2
    assert run(capsys, "frobnicate")[0] == 2
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "score" in out and "benchmark" in out


def test_info_tiny_weights(capsys, tiny_weights):
    code, out, err = run(capsys, "info", "--weights", str(tiny_weights))
    assert code == 0, err
    assert str(tiny_weights) in out
    assert "test-0" in out
    assert "matches the model card" in out
    assert "tile size:    64" in out
    assert "no validation figures recorded" in out
    assert str(tiny_weights.parent / "README.md") in out

    code, out, err = run(capsys, "info", "--weights", str(tiny_weights), "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["sha256_matches_card"] is True
    assert info["tile_size"] == 64 and info["parameters"] > 0
    assert info["calibration"] == {"temperature": 1.0, "bias": 0.0}
    assert info["val_report"] is None
    assert info["clip_rule"].endswith("(not fitted on video)")  # no rule file beside it


def test_info_names_the_clip_rule_of_the_default_release(capsys):
    code, out, err = run(capsys, "info")
    assert code == 0, err
    rule = r"clips: +(mean|median|top-3) of frame logits, "
    assert re.search(rule + r"(calibrated on labelled clips|image calibration \(checked)", out)
    assert "train sources" in out


def test_info_prints_val_report(capsys, tmp_path):
    import torch

    from detector_core.calibration import Calibration
    from detector_core.experts.trace import LocalTraceNet, ModelConfig
    from detector_core.weights import save_weights

    torch.manual_seed(0)
    model = LocalTraceNet(ModelConfig(widths=(4, 8, 8), strides=(2, 2)))
    path = tmp_path / "w.safetensors"
    report = {"auc": 0.9312, "tpr_at_1pct_fpr": 0.42, "ece": 0.031}
    save_weights(
        path, model, Calibration(1.5, -0.25), "v-x", 64, extra={"val_report": json.dumps(report)}
    )
    code, out, err = run(capsys, "info", "--weights", str(path))
    assert code == 0, err
    assert "unverified" in out  # no model card beside it
    assert re.search(r"ROC AUC \(1\.0 = perfect ranking\)\s+0\.931\n", out)
    assert re.search(r"AI images caught at 1% false alarms\s+42\.0%\n", out)
    assert re.search(r"calibration error \(ECE\)\s+0\.031\n", out)
    assert "tpr_at_1pct_fpr" not in out and "auc " not in out
    assert "temperature 1.5000, bias -0.2500" in out


def test_damaged_weights_exit_2(capsys, tiny_weights, images, tmp_path):
    folder = tmp_path / "damaged"
    folder.mkdir()
    damaged = folder / tiny_weights.name
    shutil.copy(tiny_weights, damaged)
    shutil.copy(tiny_weights.parent / "README.md", folder / "README.md")  # the good sha
    data = bytearray(damaged.read_bytes())
    data[-10] ^= 0xFF
    damaged.write_bytes(bytes(data))

    code, out, err = run(capsys, "score", str(images / "b.png"), "--weights", str(damaged))
    assert code == 2
    assert out == ""
    assert "does not match its recorded sha256" in err

    code, out, err = run(capsys, "info", "--weights", str(damaged))
    assert code == 2
    assert "damaged" in err


def test_missing_weights_exit_2(capsys, images, tmp_path):
    code, _, err = run(
        capsys, "score", str(images / "b.png"), "--weights", str(tmp_path / "none.safetensors")
    )
    assert code == 2
    assert "No weights at" in err


def test_keyboard_interrupt_exits_130(capsys, tiny_weights, images, monkeypatch):
    from detector_core import cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_score_chunk", interrupted)
    code, out, err = run(capsys, "score", str(images), "--weights", str(tiny_weights))
    assert code == 130
    assert out == ""


def test_passthrough_help(capsys):
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0
    assert "humanmade train" in out and "--epochs" in out


def test_module_entry_point_subprocess(tiny_weights, images):
    env = {**os.environ, "HUMANMADE_WEIGHTS": str(tiny_weights)}
    proc = subprocess.run(
        [sys.executable, "-m", "detector_core", "score", str(images / "b.png"), str(images)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 4 and all(LINE.match(line) for line in lines)
    assert "notes.jpg: error: The file is not an image" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "\r" not in proc.stdout  # no progress bar on stdout


def test_info_labels_unknown_figures_in_words(capsys, tmp_path):
    from detector_core.cli import _figure_lines

    lines = _figure_lines({"ece_crossfitted_by_source": 0.2493, "new_rate_x": 0.5, "n_images": 833})
    assert lines[0].split() == ["validation", "images", "833"]
    assert "calibration error (ECE), cross-fitted by source" in lines[1]
    assert lines[1].endswith("0.249") and "new rate x" in lines[2]


def test_cuda_without_a_gpu_is_one_line_and_exit_2(capsys, tiny_weights, images, monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    code, out, err = run(
        capsys, "score", str(images / "b.png"), "--device", "cuda", "--weights", str(tiny_weights)
    )
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "--device cuda: no CUDA GPU is usable" in err


def test_device_failure_while_loading_is_one_line(capsys, tiny_weights, images, monkeypatch):
    from detector_core import detector as detector_module

    def broken(*args, **kwargs):
        raise RuntimeError("Found no NVIDIA driver on your system.\nPlease check ...")

    monkeypatch.setattr(detector_module, "load_weights", broken)
    code, out, err = run(capsys, "score", str(images / "b.png"), "--weights", str(tiny_weights))
    assert code == 2 and err.count("\n") == 1 and "Found no NVIDIA driver" in err


def test_heatmap_for_one_image_is_the_file_named(capsys, tiny_weights, images, tmp_path):
    from PIL import Image

    target = tmp_path / "out.jpg"
    code, out, err = run(
        capsys,
        "score",
        str(images / "b.png"),
        "--heatmap",
        str(target),
        "--weights",
        str(tiny_weights),
    )
    assert code == 0, err
    assert target.is_file() and not target.is_dir()
    with Image.open(target) as written:
        assert written.format == "JPEG"
    assert f"  heatmap: {target}" in out.splitlines()

    code, out, err = run(
        capsys,
        "score",
        str(images / "b.png"),
        "--json",
        "--heatmap",
        str(tmp_path / "h.webp"),
        "--weights",
        str(tiny_weights),
    )
    assert code == 0 and json.loads(out)["heatmap_file"] == str(tmp_path / "h.webp")


def test_heatmap_file_name_for_several_images_is_a_usage_error(
    capsys, tiny_weights, images, tmp_path
):
    code, out, err = run(
        capsys,
        "score",
        str(images),
        "--heatmap",
        str(tmp_path / "out.png"),
        "--weights",
        str(tiny_weights),
    )
    assert code == 2 and out == "" and "give a folder instead" in err
    assert not (tmp_path / "out.png").exists()


def test_info_prints_the_cutoffs_stored_with_the_weights_at_their_precision(tmp_path, capsys):
    """One source of truth: the cut-offs come from the weights file, never from the docs."""
    import torch

    from detector_core.calibration import Calibration
    from detector_core.cli import main
    from detector_core.experts.trace import LocalTraceNet, ModelConfig
    from detector_core.verdict import BandCutoffs
    from detector_core.weights import save_weights

    torch.manual_seed(0)
    model = LocalTraceNet(ModelConfig(widths=(4, 8, 8), strides=(2, 2))).eval()
    path = tmp_path / "w.safetensors"
    cutoffs = BandCutoffs(0.15, 0.974)
    save_weights(path, model, Calibration(1.0, 0.0), "cut-1", tile_size=64, cutoffs=cutoffs)
    assert main(["info", "--weights", str(path)]) == 0
    out = capsys.readouterr().out
    assert "likely human below 15.0%, likely AI from 97.4%" in out


def test_info_lists_every_expert_of_the_release(capsys):
    from detector_core.cli import main
    from detector_core.weights import WEIGHTS_DIR

    # The default release (v0.3.0): the CLIP expert alone, on every block; no tile size.
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "experts:      clip" in out and "tokens of every block" in out
    assert "  trace:" not in out and "tile size" not in out
    # v0.2.0 fuses both; its trace network needs torch, which the tests have.
    assert main(["info", "--weights", str(WEIGHTS_DIR / "humanmade-0.2.0.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "  trace:" in out and "  clip:" in out and "tokens of block 11" in out


def test_every_benchmark_option_has_help(capsys):
    from detector_core.benchmark import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for option in (
        "--weights",
        "--repeats",
        "--max-tiles",
        "--device",
        "--sizes",
        "--clip-seconds",
        "--no-clips",
        "--clip-size",
        "--json",
    ):
        line = next(line for line in text.splitlines() if line.strip().startswith(option))
        after = line.strip()[len(option) :].split(maxsplit=1)
        described = len(after) > 1 or not text.split(line, 1)[1].startswith("\n  --")
        assert described, option

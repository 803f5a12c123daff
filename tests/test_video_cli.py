"""`humanmade score` on videos and animated images: one line each, and --json with frames."""

from __future__ import annotations

import json
import re

import pytest
from conftest import encode, make_image
from video_support import make_animation, make_audio_only, make_clip

from detector_core.cli import main

pytest.importorskip("av")

CLIP_LINE = re.compile(
    r"^(?P<name>.+): AI-generated: \d{1,2}% \((likely human|uncertain|likely AI)\) — "
    r"(?P<kind>video|animation), (?P<n>\d+) frames? over .+$"
)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_a_clip_gets_one_line(capsys, tiny_weights, tmp_path):
    path = make_clip(tmp_path / "clip.mp4", seconds=2)
    code, out, err = run(capsys, "score", str(path), "--weights", str(tiny_weights))
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1, out
    match = CLIP_LINE.match(lines[0])
    assert match and match["name"] == str(path) and match["kind"] == "video", lines[0]
    assert "(all of the clip)" in lines[0]


def test_json_lists_each_frame_with_its_time(capsys, tiny_weights, tmp_path):
    path = make_clip(tmp_path / "clip.webm", seconds=2, codec="libvpx-vp9", container="webm")
    code, out, err = run(capsys, "score", str(path), "--json", "--weights", str(tiny_weights))
    assert code == 0, err
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert record["source"] == str(path)
    assert record["media"]["container"] == "Matroska/WebM" and record["media"]["codec"] == "vp9"
    frames = record["frames"]
    assert len(frames) == record["coverage"]["frames_scored"] >= 2
    times = [f["time_s"] for f in frames]
    assert times == sorted(times) and times[-1] > 1.0
    assert all(0.0 <= f["ai_probability"] <= 1.0 for f in frames)
    assert sum(f["driver"] for f in frames) == len(record["drivers"])
    assert record["rule"].startswith("mean of frame logits")


def test_folders_mix_images_clips_and_failures(capsys, tiny_weights, tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    (folder / "a.png").write_bytes(encode(make_image(seed=4)))
    (folder / "b.gif").write_bytes(make_animation("GIF", n=6))
    make_clip(folder / "c.mp4", seconds=1)
    make_audio_only(folder / "d.mp4")
    code, out, err = run(
        capsys, "score", str(folder), "--weights", str(tiny_weights), "--no-progress"
    )
    assert code == 1
    lines = out.splitlines()
    assert [line.split(":")[0].rsplit("/", 1)[-1] for line in lines] == ["a.png", "b.gif", "c.mp4"]
    assert "— animation" in lines[1] and "— video" in lines[2]
    assert "— " not in lines[0]
    assert "d.mp4: error: The file holds only audio" in err
    assert "1 of 4 inputs failed." in err


def test_a_video_url_is_fetched_safely_and_scored_as_a_clip(capsys, tiny_weights, tmp_path):
    import functools
    import http.server
    import threading

    make_clip(tmp_path / "clip.mp4", seconds=1)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.mp4"
        weights = ("--weights", str(tiny_weights))
        code, out, err = run(capsys, "score", url, "--allow-host", "127.0.0.1", *weights)
        assert code == 0, err
        assert CLIP_LINE.match(out.strip())["kind"] == "video"
        code, _, err = run(capsys, "score", url, *weights)  # loopback: refused as for images
        assert code == 1 and "127.0.0.1" in err
    finally:
        server.shutdown()
        server.server_close()


def test_the_video_benchmark_reports_decode_and_score_time(capsys, tiny_weights, tmp_path):
    out = tmp_path / "bench.json"
    argv = ["benchmark-video", "--weights", str(tiny_weights), "--seconds", "2", "--repeats", "1"]
    argv += ["--width", "320", "--height", "240", "--resnet-repeats", "1", "--json", str(out)]
    code, printed, err = run(capsys, *argv)
    assert code == 0, err
    (row,) = json.loads(out.read_text())["rows"]
    assert row["clip"] == "2 s 320×240 H.264 30 fps"
    assert row["frames_scored"] >= 1 and row["frames_decoded"] >= row["frames_scored"]
    assert row["decode_ms"] > 0 and row["score_ms"] > 0 and row["resnet50_forwards"] > 0
    assert "× ResNet-50" in printed

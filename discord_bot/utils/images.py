"""Finding the images in a message, and reading an attachment's bytes within a size cap."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import discord

from detector_core.errors import FetchError, FileTooLargeError
from discord_bot.scoring import Scorer, ScoreResult, too_large_message

__all__ = ["ImageRef", "find_images", "read_attachment", "score_ref"]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)
# Videos the engine decodes (detector_core.video); the bytes decide, these only pick what
# is worth a download.
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"})
VIDEO_TYPES = frozenset(
    {"video/mp4", "video/quicktime", "video/webm", "video/x-matroska", "video/x-msvideo"}
)
_URL_RE = re.compile(r"<?(https?://[^\s<>]+)>?")


@dataclass(frozen=True)
class ImageRef:
    """One image in a message: an attachment, or a URL (an embed's image or a link)."""

    label: str
    attachment: discord.Attachment | None = None
    url: str | None = None


def looks_like_image_name(name: str) -> bool:
    """An image or a video by its name's extension."""
    path = urlsplit(name).path if "://" in name else name
    dot = path.rfind(".")
    return dot >= 0 and path[dot:].lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS


def is_image_attachment(attachment: discord.Attachment) -> bool:
    # The content type is what the uploader's client claimed; the engine sniffs the bytes
    # anyway, so this only decides which attachments are worth a download.
    content_type = (attachment.content_type or "").split(";")[0].strip().lower()
    if content_type:
        return content_type.startswith("image/") or content_type in VIDEO_TYPES
    return looks_like_image_name(attachment.filename)


def find_images(message: discord.Message, limit: int) -> list[ImageRef]:
    """Attachments first, then embed images, then image links in the text; no duplicates."""
    refs: list[ImageRef] = []
    seen: set[str] = set()
    for attachment in message.attachments:
        if is_image_attachment(attachment) and attachment.url not in seen:
            seen.add(attachment.url)
            refs.append(ImageRef(label=attachment.filename, attachment=attachment))
    for embed in message.embeds:
        # A GIF link's embed (Tenor, Giphy) plays a video: the animation itself, of which
        # the thumbnail is one frame.
        video = embed.video if embed.video.url else None
        for media in (video,) if video else (embed.image, embed.thumbnail):
            # Discord's media proxy has already fetched the picture; asking it rather than
            # the original host does not reveal the bot's address to whoever posted the link.
            url = media.proxy_url or media.url
            if url and url not in seen and media.url not in seen:
                seen.update(u for u in (url, media.url) if u)
                refs.append(ImageRef(label=_short(media.url or url), url=url))
    for match in _URL_RE.finditer(message.content or ""):
        url = match.group(1).rstrip(".,)>")
        if looks_like_image_name(url) and url not in seen:
            seen.add(url)
            refs.append(ImageRef(label=_short(url), url=url))
    return refs[:limit]


async def read_attachment(attachment: discord.Attachment, max_bytes: int) -> bytes:
    """The attachment's bytes, refusing before any download when Discord says it is too big.

    Attachments come from Discord's own CDN, so there is no address to vet; `attachment.read()`
    goes through discord.py's HTTP session. The size is checked twice: the size Discord
    declares (no download at all when it is over the cap), then the bytes that arrived.
    """
    if attachment.size > max_bytes:
        raise FileTooLargeError(too_large_message(attachment.size, max_bytes))
    try:
        data = await attachment.read()
    except (discord.HTTPException, OSError) as exc:
        raise FetchError(
            f"The attachment {attachment.filename} could not be downloaded from Discord "
            f"({getattr(exc, 'status', None) or type(exc).__name__})."
        ) from None
    if len(data) > max_bytes:
        raise FileTooLargeError(too_large_message(len(data), max_bytes))
    return data


def _short(url: str, limit: int = 60) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"


async def score_ref(scorer: Scorer, ref: ImageRef, max_bytes: int) -> tuple[ScoreResult, bytes]:
    """Score one image reference; returns the result and the bytes read (empty for a URL).

    A URL is handed to the scorer as it is: the local scorer fetches it with the engine's
    safe fetch (`detector_core.fetch`: public addresses only, size cap, redirects re-checked)
    in its worker threads, and the remote scorer lets the scoring server fetch it.
    """
    if ref.attachment is not None:
        data = await read_attachment(ref.attachment, max_bytes)
        return await scorer.score_bytes(data), data
    assert ref.url is not None
    return await scorer.score_url(ref.url), b""

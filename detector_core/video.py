"""Videos and animated images: sampled frames, decoded in a bounded subprocess.

Everything here is untrusted input, and FFmpeg is a large attack surface, so no frame is
ever decoded in the caller's process: `sample_frames` runs `detector_core.video_worker` in a
child Python with a wall-clock limit, an address-space limit and a CPU-time limit, and turns
whatever happens there (an error it reports, a timeout, a crash, running out of memory)
into a `VideoError` subclass whose message can be shown as it is. A Celery worker or the
Discord bot that asks for a clip therefore survives any file.

The container is recognised from its leading bytes (never from the file name) and only the
matching demuxer is handed the file; codecs outside `VIDEO_CODECS` are refused by name.
Frames are taken uniformly across the clip by seeking (a long clip is never decoded whole),
at their native resolution (never rescaled), skipping black and near-duplicate frames.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import errors
from .errors import (
    DecoderCrashedError,
    EmptyImageError,
    UnreadableSourceError,
    UnsupportedVideoError,
    VideoError,
    VideoTimeoutError,
    VideoTooLargeError,
)
from .intake import ImageSource

__all__ = [
    "ANIMATION_FORMATS",
    "CONTAINERS",
    "DEFAULT_VIDEO_LIMITS",
    "VIDEO_CODECS",
    "MediaFacts",
    "SampledFrame",
    "Sample",
    "VideoLimits",
    "media_kind",
    "sample_frames",
]

# The demuxers a file may be handed to, by what its first bytes say it is. MP4 and MOV share
# FFmpeg's "mov" demuxer; WebM is a Matroska profile. AVI is still what older cameras,
# dash cams and OpenCV write; the codec whitelist below applies to it as to the others.
CONTAINERS = {"mov": "MP4/MOV", "matroska": "Matroska/WebM", "avi": "AVI"}
# Video codecs decoded; anything else (old, exotic, or rarely fuzzed decoders) is refused.
VIDEO_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mjpeg", "prores"})
# Animated images, decoded by Pillow (in the same bounded subprocess).
ANIMATION_FORMATS = {"GIF": "GIF", "WEBP": "WebP", "PNG": "APNG"}
# A file suffix for each kind `media_kind` names (the demuxer or the Pillow format).
MEDIA_SUFFIX = {
    **{"mov": ".mp4", "matroska": ".mkv", "avi": ".avi"},
    **{"GIF": ".gif", "WEBP": ".webp", "PNG": ".png"},
}
SUPPORTED_VIDEO_TEXT = (
    "MP4/MOV, WebM/Matroska and AVI video (H.264, HEVC, VP8, VP9, AV1, MPEG-4, Motion JPEG, "
    "ProRes), and animated GIF, WebP and PNG"
)


@dataclass(frozen=True)
class VideoLimits:
    """What one clip may cost. Defaults are documented in README ("Video and animations").

    `max_bytes`: the file's size. `max_duration_s`: frames are taken from this much of the
    clip at most (from its start); a longer clip is scored on that part, and the verdict
    says what share it covers. `max_pixels`: one frame's width × height (4K UHD).
    `max_frames_decoded`: frames the decoder may produce in all (seeking decodes from the
    previous keyframe; an animated GIF must be decoded in order). `frames_scored`: frames
    handed to the image detector. `time_limit_s` / `memory_limit_bytes`: the decoding
    process is killed past these; sampling itself stops at 70% of the time and keeps what it
    has, so a slow file still gets a verdict on fewer frames.
    """

    max_bytes: int = 500 * 1024 * 1024
    max_duration_s: float = 3600.0
    max_pixels: int = 3840 * 2160
    max_frames_decoded: int = 2000
    frames_scored: int = 8
    time_limit_s: float = 60.0
    memory_limit_bytes: int = 3 * 1024 * 1024 * 1024

    def __post_init__(self) -> None:
        values = asdict(self).values()
        if any(v <= 0 for v in values):
            raise ValueError("VideoLimits values must be positive")


DEFAULT_VIDEO_LIMITS = VideoLimits()


@dataclass(frozen=True)
class MediaFacts:
    """What the file is, as far as the decoder told."""

    kind: str  # "video" or "animation"
    container: str  # "MP4/MOV", "Matroska/WebM", "AVI", "GIF", "WebP", "APNG"
    codec: str  # FFmpeg's codec name, or the animation format
    width: int
    height: int
    duration_s: float | None  # as the container claims it (None when it does not say)
    frame_count: int | None  # frames in the clip, claimed or counted (None when unknown)
    sha256: str
    n_bytes: int


@dataclass(frozen=True)
class SampledFrame:
    time_s: float
    image: Image.Image  # RGB, native resolution


@dataclass(frozen=True)
class Sample:
    """The frames taken from a clip, and how much of it they stand for."""

    media: MediaFacts
    frames: tuple[SampledFrame, ...]
    window_s: float  # the span of the clip the frames were spread over
    frames_decoded: int
    skipped_black: int
    skipped_duplicate: int
    stopped_early: str  # why sampling stopped before covering the window; "" if it did not
    decode_ms: float
    tags: dict[str, str] = field(default_factory=dict)  # a video container's metadata tags


# --------------------------------------------------------------------------- sniffing

_ISO_IMAGE_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
    | {b"avif", b"avis", b"crx "}
)
_QUICKTIME_BOXES = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
_AUDIO_BRANDS = frozenset({b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "})


def media_kind(head: bytes) -> tuple[str, str] | None:
    """('video', demuxer) or ('animation', Pillow format) from a file's first bytes (for an
    animated GIF, the whole file); None for anything else, still images included.

    An ISO file whose brand says audio is still 'video' here: the decoder then finds no
    video track and says so, which is the clearer message.
    """
    if head[4:8] == b"ftyp":
        return None if head[8:12] in _ISO_IMAGE_BRANDS else ("video", "mov")
    if head[4:8] in _QUICKTIME_BOXES and int.from_bytes(head[0:4], "big") >= 8:
        return ("video", "mov")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return ("video", "matroska")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return ("video", "avi")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        # VP8X header with its animation flag: a still WebP is an image.
        if head[12:16] == b"VP8X" and len(head) > 20 and head[20] & 0x02:
            return ("animation", "WEBP")
        return None
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ("animation", "PNG") if _png_has_actl(head) else None
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return ("animation", "GIF") if _gif_is_animated(head) else None
    return None


def _png_has_actl(data: bytes) -> bool:
    # APNG's acTL chunk must come before the first IDAT.
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunk = data[pos + 4 : pos + 8]
        if chunk == b"acTL":
            return True
        if chunk == b"IDAT":
            return False
        pos += 12 + length
    return False


def _gif_is_animated(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data), formats=["GIF"]) as im:
            return bool(getattr(im, "is_animated", False))
    except Exception:  # a damaged GIF is for the image path to refuse, with its own message
        return False


def is_moving_image(source: ImageSource) -> bool:
    """Whether `source` (a path, bytes or a binary file) is a video or an animated image.

    Reads the start of a path; a file object is read and rewound when it can seek. For
    anything unreadable this says False, and the image path gives the error.
    """
    try:
        head = _head(source)
    except (OSError, ValueError, TypeError):
        return False
    return head is not None and media_kind(head) is not None


# Whether a GIF is animated is only known by finding its second frame.
GIF_SNIFF_BYTES = 64 * 1024 * 1024


def _head(source: Any, size: int = 64 * 1024) -> bytes | None:
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        is_gif = bytes(view[:6]) in (b"GIF87a", b"GIF89a")
        return bytes(view[: GIF_SNIFF_BYTES if is_gif else size])
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as fh:
            head = fh.read(size)
            if head[:6] in (b"GIF87a", b"GIF89a"):
                head += fh.read(GIF_SNIFF_BYTES)
            return head
    if isinstance(source, Image.Image):
        return None
    if callable(getattr(source, "seek", None)) and callable(getattr(source, "read", None)):
        try:
            where = source.tell()
            head = source.read(size)
            if isinstance(head, bytes) and head[:6] in (b"GIF87a", b"GIF89a"):
                head += source.read(GIF_SNIFF_BYTES)
            source.seek(where)
        except (OSError, ValueError):
            return None
        return head if isinstance(head, bytes) else None
    return None


# --------------------------------------------------------------------------- the source on disk


class _OnDisk:
    """The source as a regular file the decoder can open, with its size and sha256."""

    def __init__(self, source: ImageSource, limits: VideoLimits) -> None:
        self._tmp: str | None = None
        if isinstance(source, str | os.PathLike):
            self.path = self._checked_path(source, limits)
        elif isinstance(source, Image.Image):
            raise UnsupportedVideoError(
                "A PIL image is not a video; give the file (path, bytes or file object)."
            )
        else:
            self.path = self._spill(source, limits)
        digest = hashlib.sha256()
        n_bytes = 0
        with open(self.path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                n_bytes += len(chunk)
        self.sha256, self.n_bytes = digest.hexdigest(), n_bytes
        if n_bytes == 0:
            self.close()
            raise EmptyImageError("The file is empty (0 bytes).")
        with open(self.path, "rb") as fh:
            self.head = fh.read(64 * 1024)

    @staticmethod
    def _checked_path(source: str | os.PathLike, limits: VideoLimits) -> str:
        path = os.fspath(source)
        shown = os.fsdecode(path)
        try:
            info = os.stat(path)
        except FileNotFoundError as exc:
            raise UnreadableSourceError(f"There is no file at '{shown}'.") from exc
        except OSError as exc:
            raise UnreadableSourceError(f"The file '{shown}' cannot be read ({exc}).") from exc
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableSourceError(f"The path '{shown}' is not a regular file.")
        if info.st_size > limits.max_bytes:
            raise _too_large(info.st_size, limits)
        if not os.access(path, os.R_OK):
            raise UnreadableSourceError(f"The file '{shown}' cannot be read (permission denied).")
        return path

    def _spill(self, source: Any, limits: VideoLimits) -> str:
        fd, self._tmp = tempfile.mkstemp(prefix="humanmade-clip-")
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(source, bytes | bytearray | memoryview):
                    view = memoryview(source)
                    if view.nbytes > limits.max_bytes:
                        raise _too_large(view.nbytes, limits)
                    out.write(view)
                elif callable(getattr(source, "read", None)):
                    total = 0
                    while True:
                        chunk = source.read(1 << 20)
                        if isinstance(chunk, str):
                            raise TypeError("the file object must be opened in binary mode")
                        if not chunk:
                            break
                        total += len(chunk)
                        if total > limits.max_bytes:
                            raise VideoTooLargeError(
                                f"The file is larger than the limit of "
                                f"{_human_bytes(limits.max_bytes)}."
                            )
                        out.write(chunk)
                else:
                    raise TypeError(
                        "expected a path, bytes or a binary file object, "
                        f"not {type(source).__name__}"
                    )
        except BaseException:
            self.close()
            raise
        return self._tmp

    def close(self) -> None:
        if self._tmp is not None:
            Path(self._tmp).unlink(missing_ok=True)
            self._tmp = None


# --------------------------------------------------------------------------- sampling


@contextmanager
def on_disk(source: ImageSource, limits: VideoLimits = DEFAULT_VIDEO_LIMITS) -> Iterator[_OnDisk]:
    """The source as a regular file (`.path`, `.sha256`, `.n_bytes`) for the block's length;
    bytes and file objects are spilled to a temporary file, removed afterwards."""
    disk = _OnDisk(source, limits)
    try:
        yield disk
    finally:
        disk.close()


def sample_frames(source: ImageSource, limits: VideoLimits = DEFAULT_VIDEO_LIMITS) -> Sample:
    """Decode a bounded, uniform sample of a clip's frames in a child process."""
    with on_disk(source, limits) as disk:
        return sample_on_disk(disk, limits)


def sample_on_disk(disk: _OnDisk, limits: VideoLimits = DEFAULT_VIDEO_LIMITS) -> Sample:
    started = time.perf_counter()
    kind = media_kind(disk.head if not disk.head.startswith(b"GIF") else _whole(disk))
    if kind is None:
        raise UnsupportedVideoError(
            f"The file is not a video or an animated image. Supported: {SUPPORTED_VIDEO_TEXT}."
        )
    out_dir = tempfile.mkdtemp(prefix="humanmade-frames-")
    try:
        reply = _run_worker(disk.path, kind, limits, out_dir)
        frames = tuple(SampledFrame(f["time_s"], _load_frame(out_dir, f)) for f in reply["frames"])
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    media = MediaFacts(**reply["media"], sha256=disk.sha256, n_bytes=disk.n_bytes)
    return Sample(
        media=media,
        frames=frames,
        window_s=reply["window_s"],
        frames_decoded=reply["frames_decoded"],
        skipped_black=reply["skipped_black"],
        skipped_duplicate=reply["skipped_duplicate"],
        stopped_early=reply["stopped_early"],
        decode_ms=(time.perf_counter() - started) * 1000.0,
        tags=dict(reply.get("tags") or {}),
    )


def _whole(disk: _OnDisk) -> bytes:
    """A GIF's start, enough for Pillow to find a second frame (64 MB at most)."""
    with open(disk.path, "rb") as fh:
        return fh.read(GIF_SNIFF_BYTES)


def _load_frame(out_dir: str, frame: dict[str, Any]) -> Image.Image:
    name = os.path.basename(frame["file"])  # only ever a name inside our own folder
    pixels = np.fromfile(os.path.join(out_dir, name), dtype=np.uint8)
    return Image.fromarray(pixels.reshape(frame["height"], frame["width"], 3), "RGB")


_ERROR_TYPES = {
    name: getattr(errors, name)
    for name in dir(errors)
    if isinstance(getattr(errors, name), type)
    and issubclass(getattr(errors, name), errors.ImageError)
}


def _run_worker(path: str, kind: tuple[str, str], limits: VideoLimits, out_dir: str) -> dict:
    request = json.dumps(
        {"path": path, "kind": kind, "limits": asdict(limits), "out_dir": out_dir}
    ).encode()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    # The child imports only detector_core.video_worker (no torch): keep the package findable
    # even when the caller runs from a source checkout.
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "detector_core.video_worker"],
            input=request,
            capture_output=True,
            timeout=limits.time_limit_s,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise VideoTimeoutError(
            f"Decoding the file took longer than the limit of {limits.time_limit_s:g} s; "
            "it was stopped."
        ) from exc
    reply = _parse_reply(proc.stdout)
    if reply is None:
        raise _crash(proc.returncode, proc.stderr)
    if not reply.get("ok"):
        error_type = _ERROR_TYPES.get(str(reply.get("error")), VideoError)
        raise error_type(str(reply.get("message") or "The file could not be decoded."))
    return reply


def _parse_reply(stdout: bytes) -> dict | None:
    lines = stdout.strip().splitlines()
    if not lines:
        return None
    try:
        reply = json.loads(lines[-1])
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None


_MEMORY_SIGNS = (b"memoryerror", b"cannot allocate memory", b"failed to map", b"memory allocation")


def _crash(returncode: int, stderr: bytes) -> VideoError:
    """The error for a child that ended without a reply."""
    from .video_worker import MEMORY_EXIT

    if returncode == MEMORY_EXIT or any(sign in stderr.lower() for sign in _MEMORY_SIGNS):
        return DecoderCrashedError(
            "Decoding the file needed more memory than allowed; it was stopped."
        )
    if returncode == -signal.SIGXCPU:
        return VideoTimeoutError(
            "Decoding the file used more processor time than allowed; it was stopped."
        )
    if returncode < 0:
        return DecoderCrashedError(
            f"The video decoder crashed on this file (signal {-returncode}) and was stopped "
            "without harm; the file is probably damaged."
        )
    last = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
    return DecoderCrashedError(f"The video decoder failed on this file ({last[0][:200]}).")


def _too_large(n_bytes: int, limits: VideoLimits) -> VideoTooLargeError:
    return VideoTooLargeError(
        f"The file is {_human_bytes(n_bytes)}; the limit for videos is "
        f"{_human_bytes(limits.max_bytes)}."
    )


def _human_bytes(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:,.1f}".removesuffix(".0") + f" {unit}"
    return f"{n:,} bytes"

"""The child process that decodes a clip's sampled frames (see `detector_core.video`).

Reads one JSON request on stdin, writes the chosen frames as raw RGB files into the
request's folder and prints one JSON line: the frames and facts, or the error to raise.
It runs under the parent's time, memory and CPU limits; anything it does not catch ends
the process, which the parent reports as a crash, never as its own.

Only numpy, Pillow and PyAV are imported here (no torch), so it starts quickly.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .errors import (
    CorruptVideoError,
    ImageError,
    NoVideoTrackError,
    UnsupportedVideoError,
    VideoResolutionError,
    VideoTimeoutError,
)
from .intake import to_rgb
from .video import CONTAINERS, VIDEO_CODECS

# A frame whose thumbnail is this dark and this flat is black (fades, leaders, cuts).
BLACK_MEAN = 16.0
BLACK_SPREAD = 8.0
# Mean absolute difference (0..255) between 32×32 grey thumbnails under which two frames
# count as the same picture; compression noise between repeated frames stays well below it.
DUPLICATE_MAD = 2.0
# Candidates looked at per frame scored: black and duplicate ones are dropped from them.
OVERSAMPLE = 2
# Of the time limit, the share spent sampling before keeping what there is.
SOFT_BUDGET = 0.7
# Browsers show GIF frames of 0 or 10 ms as 100 ms; so do we when timing them.
MIN_FRAME_MS = 20
DEFAULT_FRAME_MS = 100

MEMORY_EXIT = 3  # the exit status that tells the parent memory ran out


@dataclass
class _Picker:
    """Keeps candidate frames in time order, dropping black and near-duplicate ones."""

    limits: dict[str, Any]
    kept: list[tuple[float, np.ndarray]] = field(default_factory=list)
    last_thumb: np.ndarray | None = None
    black: int = 0
    duplicate: int = 0
    offered: int = 0

    def offer(self, time_s: float, rgb: np.ndarray) -> None:
        height, width = rgb.shape[:2]
        if width * height > self.limits["max_pixels"]:
            raise VideoResolutionError(_resolution_message(width, height, self.limits))
        self.offered += 1
        thumb = _thumbnail(rgb)
        if thumb.mean() < BLACK_MEAN and thumb.std() < BLACK_SPREAD:
            self.black += 1
            return
        if self.last_thumb is not None and np.abs(thumb - self.last_thumb).mean() < DUPLICATE_MAD:
            self.duplicate += 1
            return
        self.last_thumb = thumb
        self.kept.append((time_s, rgb))

    def chosen(self, n: int) -> list[tuple[float, np.ndarray]]:
        """At most `n` of the kept frames, spread evenly over them."""
        if len(self.kept) <= n:
            return self.kept
        picks = np.linspace(0, len(self.kept) - 1, n).round().astype(int)
        return [self.kept[i] for i in dict.fromkeys(picks.tolist())]


def _thumbnail(rgb: np.ndarray) -> np.ndarray:
    """A 32×32 grey thumbnail by block means (no resampling library needed)."""
    grey = rgb.astype(np.float32).mean(axis=2)
    h, w = grey.shape
    ys = np.linspace(0, h, 33).astype(int)
    xs = np.linspace(0, w, 33).astype(int)
    rows = np.add.reduceat(grey, ys[:-1], axis=0) / np.maximum(np.diff(ys), 1)[:, None]
    return np.add.reduceat(rows, xs[:-1], axis=1) / np.maximum(np.diff(xs), 1)[None, :]


def _resolution_message(width: int, height: int, limits: dict[str, Any]) -> str:
    return (
        f"The video's frames are {width}×{height} pixels ({width * height / 1e6:.1f} MP); "
        f"the limit is {limits['max_pixels'] / 1e6:.1f} MP per frame."
    )


# --------------------------------------------------------------------------- video (PyAV)


def _sample_video(path: str, demuxer: str, limits: dict[str, Any], deadline: float) -> dict:
    import av

    try:
        container = av.open(
            path,
            format=demuxer,
            metadata_errors="ignore",
            # Never follow a reference to another file or a network address.
            options={"protocol_whitelist": "file", "enable_drefs": "0"},
        )
    except av.error.FFmpegError as exc:
        raise CorruptVideoError(
            f"The file looks like {CONTAINERS[demuxer]} video, but its container is "
            "damaged or truncated and cannot be read."
        ) from exc
    with container:
        streams = [
            s
            for s in container.streams.video
            if not (int(s.disposition) & int(av.stream.Disposition.attached_pic))
        ]
        if not streams:
            what = "only audio" if container.streams.audio else "no video"
            raise NoVideoTrackError(
                f"The file holds {what}: there is no video track to score (whatever its "
                "extension says)."
            )
        stream = streams[0]
        codec = stream.codec_context.name
        if codec not in VIDEO_CODECS:
            raise UnsupportedVideoError(
                f"The video is encoded with '{codec}', which is not supported. Supported "
                "codecs: H.264, HEVC, VP8, VP9, AV1, MPEG-4, Motion JPEG, ProRes."
            )
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            raise CorruptVideoError("The video track declares no picture size; it is damaged.")
        if width * height > limits["max_pixels"]:
            raise VideoResolutionError(_resolution_message(width, height, limits))
        # One decoding thread: under the child's address-space limit every extra thread's
        # stack counts, and a thread FFmpeg cannot start fails the decode (EAGAIN) as if the
        # file were damaged. Only keyframes are decoded as a rule, so little speed is lost.
        stream.codec_context.thread_type = "NONE"
        stream.codec_context.thread_count = 1
        duration = _duration(container, stream)
        rate = float(stream.average_rate) if stream.average_rate else None
        frame_count = stream.frames or (round(duration * rate) if duration and rate else None)
        sampler = _VideoSampler(container, stream, limits, deadline)
        window = min(duration, limits["max_duration_s"]) if duration else None
        wanted = limits["frames_scored"]
        if window:
            # Keyframes first: only they are decoded (the demuxer skips the rest), they are
            # the best-kept pictures of a stream, and encoders put them at scene cuts.
            sampler.restart(keyframes_only=True)
            sampler.by_seeking(window)
            if sampler.picker.offered < wanted and not sampler.stopped:
                # Too few keyframes: every frame, decoding forward from each keyframe. (Enough
                # keyframes that were black or repeated mean a clip of few distinct pictures,
                # which decoding every frame would not change.)
                sampler.restart(keyframes_only=False)
                sampler.by_seeking(window)
                if sampler.past_end is not None and len(sampler.picker.kept) < wanted:
                    # The container claimed more than it holds: sample what is there.
                    window = duration = sampler.past_end
                    sampler.restart(keyframes_only=False)
                    sampler.by_seeking(window)
        if not sampler.picker.kept and not sampler.stopped:
            window = sampler.in_order()
        if window and sampler.stopped:
            window = min(window, sampler.reached)  # the share looked at, not the planned one
        if not sampler.picker.kept and sampler.stopped:
            raise VideoTimeoutError(f"No frame could be taken before {sampler.stopped}.")
        if not sampler.picker.kept and sampler.frames_decoded == 0:
            raise CorruptVideoError(
                "The video has no frame that can be decoded (it is empty, truncated or damaged)."
            )
        return {
            "tags": _tags(container.metadata),
            "media": {
                "kind": "video",
                "container": CONTAINERS[demuxer],
                "codec": codec,
                "width": width,
                "height": height,
                "duration_s": duration,
                "frame_count": frame_count,
            },
            "window_s": float(window or 0.0),
            "picker": sampler.picker,
            "frames_decoded": sampler.frames_decoded,
            "stopped_early": sampler.stopped,
        }


# The container's metadata tags travel back for the provenance readers, bounded.
MAX_TAGS = 32
MAX_TAG_CHARS = 1 << 20


def _tags(metadata: Any) -> dict[str, str]:
    tags = {}
    for key, value in list(dict(metadata or {}).items())[:MAX_TAGS]:
        tags[str(key)[:200]] = str(value)[:MAX_TAG_CHARS]
    return tags


def _duration(container: Any, stream: Any) -> float | None:
    if stream.duration and stream.time_base:
        value = float(stream.duration * stream.time_base)
    elif container.duration:
        value = container.duration / 1_000_000
    else:
        return None
    return value if value > 0 else None


class _VideoSampler:
    def __init__(self, container: Any, stream: Any, limits: dict[str, Any], deadline: float):
        self.container, self.stream, self.limits, self.deadline = (
            container,
            stream,
            limits,
            deadline,
        )
        self.picker = _Picker(limits)
        self.frames_decoded = 0
        self.past_end: float | None = None
        self.stopped = ""
        self.key_time: float | None = None
        self.gop_s = 0.0  # the longest keyframe-to-frame distance seen
        self.reached = 0.0  # the latest frame time decoded

    def restart(self, keyframes_only: bool) -> None:
        self.picker = _Picker(self.limits)
        self.past_end = None
        self.key_time = None
        self.gop_s = 0.0
        self.stream.codec_context.skip_frame = "NONKEY" if keyframes_only else "DEFAULT"

    def _budget_left(self) -> bool:
        if self.frames_decoded >= self.limits["max_frames_decoded"]:
            self.stopped = f"the limit of {self.limits['max_frames_decoded']} decoded frames"
        elif time.monotonic() > self.deadline:
            self.stopped = "the time limit"
        return not self.stopped

    def by_seeking(self, window: float) -> None:
        """The first frame in each of `frames_scored × OVERSAMPLE` equal slots of
        [0, window); a slot the clip has no frame in (a low frame rate) stays empty.

        Seeking lands on the keyframe before a slot and decodes forward from it; when the
        slot lies within the longest keyframe interval seen so far, decoding on from where
        we are is cheaper than seeking back to that keyframe, so we do that instead.
        """
        import av

        n = self.limits["frames_scored"] * OVERSAMPLE
        spacing = window / n
        last_time = -1.0
        frames = None
        pending: tuple[float, Any] | None = None  # decoded, but for a later slot
        for i in range(n):
            start, end = i * spacing, (i + 1) * spacing
            if not self._budget_left():
                return
            if pending is None:
                try:
                    if frames is None or start - last_time > self.gop_s:
                        self.container.seek(
                            int(start / self.stream.time_base), stream=self.stream, backward=True
                        )
                        frames = self.container.decode(self.stream)
                        self.key_time = None
                    pending = self._frame_from(frames, start)
                except av.error.FFmpegError:
                    frames = None
                    continue  # a damaged stretch: the other slots may still decode
                if pending is None:
                    return  # past the end (or out of budget): later slots are too
            if pending[0] >= window:
                return
            if pending[0] < end:
                last_time = pending[0]
                self.picker.offer(last_time, _rgb(pending[1]))
                pending = None

    def _frame_from(self, frames: Any, earliest: float) -> tuple[float, Any] | None:
        """The first decoded frame at or after `earliest`."""
        seen: float | None = None
        for frame in frames:
            self.frames_decoded += 1
            t = frame.time if frame.time is not None else (seen or 0.0)
            seen = t
            self.reached = max(self.reached, t)
            if frame.key_frame:
                self.key_time = t
            elif self.key_time is not None:
                self.gop_s = max(self.gop_s, t - self.key_time)
            if t >= earliest:
                return t, frame
            if not self._budget_left():
                return None
        # The file ended before `earliest`: its real end is here.
        self.past_end = seen if seen else None
        return None

    def in_order(self) -> float:
        """Without a usable duration or seeking: decode from the start, keeping one frame
        per second until the decoded-frame or time limit."""
        import av

        with contextlib.suppress(av.error.FFmpegError):
            self.container.seek(0)
        next_time, t = 0.0, 0.0
        try:
            for frame in self.container.decode(self.stream):
                self.frames_decoded += 1
                t = frame.time if frame.time is not None else t
                if t >= next_time:
                    self.picker.offer(t, _rgb(frame))
                    next_time = t + 1.0
                if t > self.limits["max_duration_s"] or not self._budget_left():
                    break
        except av.error.FFmpegError:
            if not self.picker.kept:
                raise
        return t


def _rgb(frame: Any) -> np.ndarray:
    try:
        return frame.to_ndarray(format="rgb24")
    except (ValueError, NotImplementedError) as exc:
        raise UnsupportedVideoError(
            f"The video's pixel format '{frame.format.name}' cannot be converted to RGB."
        ) from exc


# --------------------------------------------------------------------------- animations (Pillow)


def _sample_animation(path: str, fmt: str, limits: dict[str, Any], deadline: float) -> dict:
    label = {"GIF": "GIF", "WEBP": "WebP", "PNG": "APNG"}[fmt]
    picker = _Picker(limits)
    decoded, stopped = 0, ""
    try:
        with Image.open(path, formats=[fmt]) as im:
            width, height = im.size
            if width * height > limits["max_pixels"]:
                raise VideoResolutionError(_resolution_message(width, height, limits))
            # Frames are decoded one after another (a GIF frame paints over the last), so
            # the count decoded is bounded; candidates are every `step`-th frame, and the
            # step doubles whenever too many are held, which keeps them evenly spread.
            n_candidates = limits["frames_scored"] * OVERSAMPLE
            budget = limits["max_frames_decoded"]
            claimed = getattr(im, "n_frames", None) if fmt != "GIF" else None
            step = max(1, min(claimed or 1, budget) // n_candidates)
            clock_ms = 0.0
            index = 0
            while True:
                if index % step == 0:
                    picker.offer(clock_ms / 1000, np.asarray(to_rgb(im)))
                    if len(picker.kept) > 2 * n_candidates:
                        picker.kept = picker.kept[::2]
                        step *= 2
                decoded += 1
                frame_ms = im.info.get("duration") or DEFAULT_FRAME_MS
                clock_ms += frame_ms if frame_ms >= MIN_FRAME_MS else DEFAULT_FRAME_MS
                if decoded >= budget:
                    stopped = f"the limit of {budget} decoded frames"
                    break
                if time.monotonic() > deadline:
                    stopped = "the time limit"
                    break
                try:
                    im.seek(index + 1)
                except EOFError:
                    break
                index += 1
    except ImageError:
        raise
    except Exception as exc:  # Pillow's plugins raise anything on damaged data
        if picker.kept:
            stopped = "damaged data part-way through"
        else:
            raise CorruptVideoError(
                f"The {label} animation is damaged or truncated and cannot be decoded."
            ) from exc
    total = claimed if claimed else (decoded if not stopped else None)
    return {
        "media": {
            "kind": "animation",
            "container": label,
            "codec": label,
            "width": width,
            "height": height,
            "duration_s": clock_ms / 1000 if not stopped else None,
            "frame_count": total,
        },
        "window_s": clock_ms / 1000,
        "picker": picker,
        "frames_decoded": decoded,
        "stopped_early": stopped,
    }


# --------------------------------------------------------------------------- entry point


def run(request: dict[str, Any]) -> dict[str, Any]:
    limits = request["limits"]
    deadline = time.monotonic() + SOFT_BUDGET * limits["time_limit_s"]
    kind, name = request["kind"]
    if kind == "video":
        result = _sample_video(request["path"], name, limits, deadline)
    else:
        result = _sample_animation(request["path"], name, limits, deadline)
    picker: _Picker = result.pop("picker")
    frames = []
    for i, (time_s, rgb) in enumerate(picker.chosen(limits["frames_scored"])):
        file = os.path.join(request["out_dir"], f"frame{i:03d}.rgb")
        np.ascontiguousarray(rgb, dtype=np.uint8).tofile(file)
        frames.append(
            {
                "file": file,
                "time_s": round(float(time_s), 3),
                "width": rgb.shape[1],
                "height": rgb.shape[0],
            }
        )
    return {
        "ok": True,
        **result,
        "frames": frames,
        "skipped_black": picker.black,
        "skipped_duplicate": picker.duplicate,
    }


def limit_self(limits: dict[str, Any]) -> None:
    """Bound this process's address space and CPU time before anything is decoded.

    Set here rather than by the parent between fork and exec (`preexec_fn`), which is not
    safe in a threaded caller such as the Discord bot. Where `resource` is missing (Windows)
    only the parent's wall-clock limit applies.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return
    memory = int(limits["memory_limit_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = int(limits["time_limit_s"]) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main() -> int:
    request = json.loads(sys.stdin.buffer.read())
    limit_self(request["limits"])
    try:
        reply = run(request)
    except ImageError as exc:
        reply = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    except MemoryError:
        # Let the parent say it; keep the message short, memory is scarce here.
        sys.stderr.write("MemoryError\n")
        return MEMORY_EXIT
    except Exception as exc:  # FFmpeg and Pillow fail in many shapes on damaged data
        if _is_ffmpeg_error(exc) and getattr(exc, "errno", None) in (errno.EAGAIN, errno.ENOMEM):
            # FFmpeg could not get memory or a thread under the limit: not the file's fault.
            sys.stderr.write("MemoryError\n")
            return MEMORY_EXIT
        if _is_ffmpeg_error(exc):
            reply = {
                "ok": False,
                "error": "CorruptVideoError",
                "message": f"The video is damaged and cannot be decoded ({exc}).",
            }
        else:
            raise
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
    return 0


def _is_ffmpeg_error(exc: BaseException) -> bool:
    av = sys.modules.get("av")
    return av is not None and isinstance(exc, av.error.FFmpegError)


if __name__ == "__main__":
    raise SystemExit(main())

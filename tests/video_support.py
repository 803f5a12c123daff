"""Small videos and animations made in code for the video tests (PyAV and Pillow)."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image


def moving_frames(n: int, width: int, height: int, seed: int = 0, step: int = 5):
    """`n` RGB frames of one noise picture sliding sideways (so no two are duplicates)."""
    base = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    for i in range(n):
        yield np.roll(base, i * step, axis=1)


def make_clip(
    path: Path,
    seconds: float = 3.0,
    fps: int | Fraction = 10,
    width: int = 160,
    height: int = 120,
    codec: str = "libx264",
    container: str | None = None,
    pix_fmt: str = "yuv420p",
    gop: int | None = None,
    frames: list[np.ndarray] | None = None,
    audio: bool = False,
    tags: dict[str, str] | None = None,
) -> Path:
    """Encode a clip; `frames` replaces the moving noise when given; `tags` are written as
    container metadata (in MP4 with `use_metadata_tags`, as ComfyUI's SaveVideo does)."""
    import av

    pictures = frames if frames is not None else moving_frames(round(seconds * fps), width, height)
    options = {"movflags": "use_metadata_tags"} if tags else {}
    with av.open(str(path), "w", format=container, options=options) as out:
        for key, value in (tags or {}).items():
            out.metadata[key] = value
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if gop is not None:
            stream.codec_context.gop_size = gop
        if audio:
            sound = out.add_stream("aac", rate=8000)
        out.start_encoding()  # so that a clip of no frames is still written
        for picture in pictures:
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if audio:
            _mux_tone(out, sound, seconds)
    return path


def make_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An AAC track in an MP4 container: what an .mp4 of only sound looks like."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        _mux_tone(out, out.add_stream("aac", rate=8000), seconds)
    return path


def _mux_tone(out, stream, seconds: float) -> None:
    import av

    rate = 8000
    t = np.arange(int(rate * seconds)) / rate
    samples = (np.sin(2 * np.pi * 440 * t) * 0.3).astype(np.float32)
    for start in range(0, len(samples), 1024):
        chunk = samples[start : start + 1024][None, :]
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def make_animation(fmt: str, n: int = 12, width: int = 96, height: int = 64, **params) -> bytes:
    """An animated GIF, WebP or PNG of `n` moving-noise frames, 100 ms each."""
    images = [Image.fromarray(a) for a in moving_frames(n, width, height, step=7)]
    buf = io.BytesIO()
    images[0].save(
        buf, format=fmt, save_all=True, append_images=images[1:], duration=100, loop=0, **params
    )
    return buf.getvalue()


def _gif_blocks(data: bytes) -> tuple[bytes, list[bytes]]:
    """(everything before the first frame, [each frame's control extension + image])."""
    pos = 13
    if data[10] & 0x80:  # global colour table
        pos += 3 * 2 ** ((data[10] & 0x07) + 1)
    prefix_end, frames, start = None, [], None
    while data[pos] != 0x3B:
        block = pos
        is_control = data[pos] == 0x21 and data[pos + 1] == 0xF9
        if data[pos] == 0x21:
            pos += 2
        else:  # 0x2C: image descriptor, optional local colour table, LZW code size
            flags = data[pos + 9]
            pos += 10 + (3 * 2 ** ((flags & 0x07) + 1) if flags & 0x80 else 0) + 1
        while data[pos]:  # data sub-blocks
            pos += data[pos] + 1
        pos += 1
        if is_control:
            start = block
        elif data[block] == 0x2C:
            first = block if start is None else start
            prefix_end = first if prefix_end is None else prefix_end
            frames.append(data[first:pos])
            start = None
    return data[:prefix_end], frames


def many_frame_gif(n: int, width: int = 48, height: int = 48) -> bytes:
    """A GIF of `n` frames made by repeating three encoded frames (Pillow would take
    minutes to encode thousands): what a hostile 10,000-frame GIF looks like to a decoder."""
    three = make_animation("GIF", n=3, width=width, height=height, optimize=False)
    prefix, frames = _gif_blocks(three)
    assert len(frames) == 3, len(frames)
    return prefix + b"".join(frames[i % 3] for i in range(n)) + b"\x3b"

"""The timeline figure of a clip's verdict: each sampled frame's probability over the clip's
time, the band cut-offs, and thumbnails of the frames that drove the verdict."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw

from .clip_verdict import _clock
from .headline import percent_in_band
from .heatmap import FIGURE_WIDTH, PADDING, _font, _wrap

if TYPE_CHECKING:
    from .clip_verdict import ClipVerdict

PLOT_HEIGHT = 220
HUMAN_FILL = (226, 243, 226)
AI_FILL = (250, 225, 225)


def _axis(t: float, span: float) -> str:
    """One format along an axis: seconds for a short clip, m:ss (h:mm:ss) for a longer one."""
    if span < 10:
        return f"{t:.1f} s"
    whole = round(t)
    hours, rest = divmod(whole, 3600)
    return (
        f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
        if span >= 3600
        else f"{whole // 60}:{whole % 60:02d}"
    )


def render_timeline(clip: ClipVerdict) -> Image.Image:
    """FIGURE_WIDTH wide: the plot, the driving frames beneath it, the headline below."""
    label_font, caption_font = _font(16), _font(20)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    caption_lines = _wrap(probe, clip.summary(), caption_font, FIGURE_WIDTH - 2 * PADDING)
    thumbs = [Image.open(io.BytesIO(data)).convert("RGB") for data in clip.driver_thumbnails]
    thumb_h = max((t.height for t in thumbs), default=0)
    label_h, line_h, axis_h = 24, 26, 24
    left, right = PADDING + 44, FIGURE_WIDTH - PADDING
    top = PADDING + label_h
    bottom = top + PLOT_HEIGHT
    thumbs_top = bottom + axis_h + PADDING + label_h
    caption_top = thumbs_top + thumb_h + label_h + PADDING
    height = caption_top + line_h * len(caption_lines) + PADDING
    canvas = Image.new("RGB", (FIGURE_WIDTH, height), "white")
    draw = ImageDraw.Draw(canvas)

    span = max([clip.window_s, *(f.time_s for f in clip.frames)]) or 1.0

    def x_of(t: float) -> float:
        return left + (right - left) * t / span

    def y_of(p: float) -> float:
        return bottom - (bottom - top) * p

    cut = clip.cutoffs
    draw.rectangle((left, y_of(cut.human), right, bottom), fill=HUMAN_FILL)
    draw.rectangle((left, top, right, y_of(cut.ai)), fill=AI_FILL)
    draw.rectangle((left, top, right, bottom), outline="black")
    for value in (0.0, cut.human, cut.ai, 1.0):
        y = y_of(value)
        draw.line((left - 4, y, left, y), fill="black")
        text = f"{value:.0%}"
        draw.text(
            (left - 8 - draw.textlength(text, font=label_font), y - 9), text, "black", label_font
        )
    clip_y = y_of(clip.ai_probability)
    for x in range(int(left), int(right), 12):  # the clip's own probability, dashed
        draw.line((x, clip_y, min(x + 6, right), clip_y), fill=(90, 90, 90), width=2)
    points = [(x_of(f.time_s), y_of(f.ai_probability)) for f in clip.frames]
    if len(points) > 1:
        draw.line(points, fill=(40, 40, 160), width=2)
    for i, (x, y) in enumerate(points):
        r = 7 if i in clip.drivers else 4
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(40, 40, 160), outline="black")
    for t in (0.0, span / 2, span):
        text = _axis(t, span)
        x = min(max(left, x_of(t) - draw.textlength(text, font=label_font) / 2), right - 60)
        draw.text((x, bottom + 4), text, fill="black", font=label_font)
    draw.text(
        (PADDING, PADDING),
        "AI probability of each sampled frame over time (dashed: the clip's); advisory",
        fill="black",
        font=label_font,
    )
    if thumbs:
        draw.text(
            (PADDING, thumbs_top - label_h),
            "the frames that drove the verdict",
            fill="black",
            font=label_font,
        )
        x = PADDING
        for i, thumb in zip(clip.drivers, thumbs, strict=False):
            frame = clip.frames[i]
            canvas.paste(thumb, (x, thumbs_top))
            text = f"{_clock(frame.time_s)}: {percent_in_band(frame.ai_probability, cut)}%"
            draw.text((x, thumbs_top + thumb_h + 2), text, fill="black", font=label_font)
            x += thumb.width + PADDING
    for i, line in enumerate(caption_lines):
        draw.text((PADDING, caption_top + i * line_h), line, fill="black", font=caption_font)
    return canvas

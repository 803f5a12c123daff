"""The patch-probability map: where in the image the network saw generator traces.

The map is coarse (one cell per network patch, 32 px for the released model) and advisory:
it shows a reviewer which regions drove the score, not a segmentation of edited areas.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .tiling import Tile

if TYPE_CHECKING:
    from .verdict import BandCutoffs


@dataclass(frozen=True, eq=False)
class Heatmap:
    """Per-cell AI probability over the image; NaN where no tile was scored."""

    probabilities: np.ndarray  # (rows, cols), read-only
    cell_size: int
    # The expert whose patches these are (the one that drives the score).
    expert: str = "trace"

    @property
    def scored_share(self) -> float:
        """The share of the image's cells that were scored (0-1): a large image is scored on
        at most `max_tiles` tiles, and the rest of the map stays grey, which is no "clean"."""
        if self.probabilities.size == 0:
            return 0.0
        return float(np.mean(~np.isnan(self.probabilities)))

    def to_dict(self) -> dict:
        grid = [
            [None if np.isnan(v) else round(float(v), 4) for v in row] for row in self.probabilities
        ]
        return {"cell_size": self.cell_size, "expert": self.expert, "probabilities": grid}


def build_heatmap(
    width: int,
    height: int,
    tiles: Sequence[Tile],
    patch_logits: Sequence[np.ndarray],
    calibrate: Callable[[np.ndarray], np.ndarray],
    expert: str = "trace",
) -> Heatmap:
    """Place each tile's patch logits on a grid over the image and calibrate them."""
    first_tile, first_map = tiles[0], patch_logits[0]
    cell = max(1, round(first_tile.width / first_map.shape[1]))
    rows, cols = -(-height // cell), -(-width // cell)
    total = np.zeros((rows, cols))
    count = np.zeros((rows, cols))
    for tile, logits in zip(tiles, patch_logits, strict=True):
        h, w = logits.shape
        for r in range(h):
            y = min(rows - 1, (tile.top + int((r + 0.5) * tile.height / h)) // cell)
            for c in range(w):
                x = min(cols - 1, (tile.left + int((c + 0.5) * tile.width / w)) // cell)
                total[y, x] += logits[r, c]
                count[y, x] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        probabilities = np.where(count > 0, calibrate(total / np.maximum(count, 1)), np.nan)
    probabilities.setflags(write=False)
    return Heatmap(probabilities, cell, expert)


# One figure size whatever the image: wide enough that the caption stays legible when a page
# shows the figure at 640 px (the admin's preview), small enough to store per detection.
FIGURE_WIDTH = 800
PADDING = 12
# Perceptually uniform and made for colour-vision deficiency; blue to yellow, so that no red
# subject (a bridge, a flower) can pass for a hot patch.
COLOURMAP = "cividis"
MAP_OPACITY = 0.8  # over a greyscale copy of the image, for orientation
UNSCORED = (200, 200, 200)


def _lut() -> np.ndarray:
    """(256, 3) uint8 colours of COLOURMAP, from matplotlib (no pyplot, no display)."""
    from matplotlib import colormaps

    return (colormaps[COLOURMAP](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans, which matplotlib ships (Pillow's own font has no "—" or "×")."""
    from matplotlib import get_data_path

    try:
        return ImageFont.truetype(
            str(Path(get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")), size
        )
    except (ImportError, OSError):  # Pillow without FreeType: its bitmap font
        return ImageFont.load_default()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def _map_panel(heatmap: Heatmap, grey: Image.Image, source_size: tuple[int, int]) -> Image.Image:
    """The cells in COLOURMAP over the greyscale image; unscored cells show the image only."""
    probabilities = heatmap.probabilities
    scored = ~np.isnan(probabilities)
    index = np.clip(np.nan_to_num(probabilities) * 255, 0, 255).round().astype(np.uint8)
    colours = Image.fromarray(_lut()[index])
    mask = Image.fromarray(np.where(scored, int(255 * MAP_OPACITY), 0).astype(np.uint8))
    rows, cols = probabilities.shape
    # The grid covers whole cells, a little past the image's right and bottom edges: scale it
    # as the image was scaled, then crop it to the panel.
    sx, sy = grey.width / source_size[0], grey.height / source_size[1]
    grid_size = (
        max(1, round(cols * heatmap.cell_size * sx)),
        max(1, round(rows * heatmap.cell_size * sy)),
    )
    box = (0, 0, grey.width, grey.height)
    colours = colours.resize(grid_size, Image.Resampling.NEAREST).crop(box)
    mask = mask.resize(grid_size, Image.Resampling.NEAREST).crop(box)
    return Image.composite(colours, grey, mask)


def render_heatmap_figure(
    image: Image.Image,
    heatmap: Heatmap,
    caption: str,
    cutoffs: BandCutoffs | None = None,
) -> Image.Image:
    """The image and its patch map side by side, a colour scale with the band cut-offs
    marked, and the caption (the verdict's headline) wrapped below; FIGURE_WIDTH wide."""
    from .verdict import BandCutoffs

    cutoffs = cutoffs or BandCutoffs()
    label_font, caption_font = _font(16), _font(20)
    panel = (FIGURE_WIDTH - 3 * PADDING) // 2
    scale = min(panel / image.width, panel / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    original = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    grey = original.convert("L").convert("RGB")
    patches = _map_panel(heatmap, grey, (image.width, image.height))

    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    caption_lines = _wrap(probe, caption, caption_font, FIGURE_WIDTH - 2 * PADDING)
    # Two rows of tick labels: a cut-off close to an end (97.4 %) goes below "100%".
    label_h, bar_h, tick_h, line_h = 24, 16, 44, 26
    top = PADDING + label_h
    bar_top = top + size[1] + PADDING
    caption_top = bar_top + bar_h + tick_h + PADDING
    height = caption_top + line_h * len(caption_lines) + PADDING
    canvas = Image.new("RGB", (FIGURE_WIDTH, height), "white")
    draw = ImageDraw.Draw(canvas)
    left, right = PADDING, 2 * PADDING + panel
    canvas.paste(original, (left, top))
    canvas.paste(patches, (right, top))
    draw.text((left, PADDING), "the image", fill="black", font=label_font)
    draw.text(
        (right, PADDING), "where the model saw AI traces (advisory)", fill="black", font=label_font
    )

    # The scale under the map: 0% to 100%, with the band cut-offs marked.
    gradient = np.repeat(_lut()[np.linspace(0, 255, panel).round().astype(int)][None], bar_h, 0)
    canvas.paste(Image.fromarray(gradient), (right, bar_top))
    draw.rectangle((right, bar_top, right + panel - 1, bar_top + bar_h - 1), outline="black")
    for text, x, x_text, row in tick_labels(
        cutoffs, right, panel, lambda t: draw.textlength(t, font=label_font)
    ):
        y_text = bar_top + bar_h + 4 + row * 20
        draw.line((x, bar_top + bar_h, x, bar_top + bar_h + 4), fill="black")
        draw.text((x_text, y_text), text, fill="black", font=label_font)
    share = heatmap.scored_share
    legend = "AI probability per patch; grey: not scored"
    if share < 0.995:
        legend += f" ({share:.0%} of the image scored)"
    for i, line in enumerate(_wrap(probe, legend, label_font, panel)):
        draw.text((left, bar_top + i * 20), line, fill="black", font=label_font)
    for i, line in enumerate(caption_lines):
        draw.text((left, caption_top + i * line_h), line, fill="black", font=caption_font)
    return canvas


def tick_labels(
    cutoffs: BandCutoffs, left: int, width: int, measure: Callable[[str], float]
) -> list[tuple[str, int, float, int]]:
    """(text, tick x, text x, row) of the colour scale's labels: 0%, 100% and the cut-offs at
    their precision; a label that would overlap one already placed goes on the second row
    (97.4% beside 100% used to print as "1097%")."""
    from .headline import cutoff_percent

    placed: list[tuple[str, int, float, int]] = []
    taken: list[list[tuple[float, float]]] = [[], []]
    for value in dict.fromkeys((0.0, 1.0, cutoffs.human, cutoffs.ai)):  # each value once
        x = left + round(value * (width - 1))
        text = f"{value:.0%}" if value in (0.0, 1.0) else f"{cutoff_percent(value, cutoffs)}%"
        text_width = measure(text)
        x_text = min(max(left, x - text_width / 2), left + width - text_width)
        extent = (x_text - 4, x_text + text_width + 4)
        row = next(
            (
                i
                for i, used in enumerate(taken)
                if all(extent[1] <= a or extent[0] >= b for a, b in used)
            ),
            len(taken) - 1,
        )
        taken[row].append(extent)
        placed.append((text, x, x_text, row))
    return placed

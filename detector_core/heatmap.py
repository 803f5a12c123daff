"""The patch-probability map: where in the image the network saw generator traces.

The map is coarse (one cell per network patch, 32 px for the released model) and advisory:
it shows a reviewer which regions drove the score, not a segmentation of edited areas.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .tiling import Tile


@dataclass(frozen=True, eq=False)
class Heatmap:
    """Per-cell AI probability over the image; NaN where no tile was scored."""

    probabilities: np.ndarray  # (rows, cols), read-only
    cell_size: int
    # The expert whose patches these are (the one that drives the score).
    expert: str = "trace"

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


def _colour(p: float) -> tuple[int, int, int, int]:
    # Green (human-looking) through yellow to red (AI-looking); translucent.
    r = int(255 * min(1.0, 2 * p))
    g = int(255 * min(1.0, 2 * (1 - p)))
    return (r, g, 0, 110)


def render_overlay(image: Image.Image, heatmap: Heatmap, caption: str) -> Image.Image:
    """The image with coloured cells (unscored cells left clear) and a caption strip."""
    base = image.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    cell = heatmap.cell_size
    for (r, c), p in np.ndenumerate(heatmap.probabilities):
        if not np.isnan(p):
            box = (
                c * cell,
                r * cell,
                min(base.width, (c + 1) * cell) - 1,
                min(base.height, (r + 1) * cell) - 1,
            )
            draw.rectangle(box, fill=_colour(float(p)))
    out = Image.alpha_composite(base, layer)
    strip_h = 22
    canvas = Image.new("RGB", (out.width, out.height + strip_h), "white")
    canvas.paste(out.convert("RGB"), (0, 0))
    ImageDraw.Draw(canvas).text(
        (4, out.height + 5), f"{caption} · red: AI-looking patches · advisory", fill="black"
    )
    return canvas

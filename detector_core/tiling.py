"""Native-resolution tiles: the network never sees a resized image.

Resampling erases the pixel-level traces the detector relies on, so a large image is cut into
tiles at its own resolution and a capped, evenly spread subset of them is scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ImageTooSmallError

MIN_SIDE = 32


def check_min_size(width: int, height: int) -> None:
    """Raise `ImageTooSmallError` for an image with a side under MIN_SIDE pixels."""
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageTooSmallError(
            f"The image is {width}×{height} pixels; at least {MIN_SIDE}×{MIN_SIDE} is needed "
            "to judge it."
        )


@dataclass(frozen=True)
class Tile:
    left: int
    top: int
    width: int
    height: int


def _starts(length: int, tile: int) -> list[int]:
    """Tile origins covering [0, length): a regular grid, the last one flush with the edge."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, tile))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def plan_tiles(width: int, height: int, tile_size: int, max_tiles: int) -> list[Tile]:
    """Tiles that cover the image, thinned evenly to at most `max_tiles`.

    An image smaller than a tile is one tile of its own size (no stretching, no padding).
    """
    if max_tiles < 1:
        raise ValueError("max_tiles must be at least 1")
    tw, th = min(tile_size, width), min(tile_size, height)
    tiles = [Tile(x, y, tw, th) for y in _starts(height, th) for x in _starts(width, tw)]
    if len(tiles) <= max_tiles:
        return tiles
    picks = np.linspace(0, len(tiles) - 1, max_tiles).round().astype(int)
    return [tiles[i] for i in sorted(set(picks.tolist()))]


def cut_tiles(pixels: np.ndarray, tiles: list[Tile]) -> np.ndarray:
    """Stack the tiles of an (H, W, 3) uint8 array into (N, tile_h, tile_w, 3)."""
    return np.stack([pixels[t.top : t.top + t.height, t.left : t.left + t.width] for t in tiles])

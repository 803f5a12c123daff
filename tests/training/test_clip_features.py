"""The per-block feature cache that `humanmade fuse` trains heads from."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_image

from detector_core.experts.clip import BLOCKS, ClipEncoder
from detector_core.training.clip_features import (
    FeatureCache,
    ImageRef,
    extract,
    extract_cached_views,
)


class BlockEncoder(ClipEncoder):
    """Tokens from the pixels themselves, for every block (no 90 MB network)."""

    def __init__(self) -> None:
        super().__init__(path="unused.onnx", blocks=tuple(range(BLOCKS)))  # type: ignore[arg-type]
        self.crops = 0

    def tokens(self, crops, batch_size=None):
        self.crops += len(crops)
        x = crops.astype(np.float32).mean(axis=(1, 2))  # (N, 3)
        per_block = np.stack([x * (b + 1) for b in range(BLOCKS)], axis=1)  # (N, 12, 3)
        cls = np.tile(per_block, (1, 1, 256))
        patches = np.repeat(cls[:, :, None], 196, axis=2)
        return cls, patches


@pytest.fixture
def refs(tmp_path):
    out = []
    for seed in range(3):
        path = tmp_path / f"{seed}.png"
        make_image(240, 240, seed=seed).save(path)
        out.append(ImageRef(path, f"{seed:064x}"))
    return out


def test_features_hold_every_block_and_are_read_back_from_the_cache(tmp_path, refs):
    encoder, cache = BlockEncoder(), FeatureCache(tmp_path / "cache")
    feats = extract(refs, 2, encoder, cache, progress=False)
    assert feats.shape == (3, 2, 2, BLOCKS, 768) and encoder.crops == 6
    np.testing.assert_allclose(feats[:, :, 0, 5], feats[:, :, 0, 0] * 6, rtol=1e-2)
    again = extract(refs, 2, encoder, cache, progress=False)
    assert encoder.crops == 6  # nothing encoded twice
    np.testing.assert_allclose(again, feats, rtol=2e-3)  # kept as float16


def test_only_cached_augmented_views_are_used(tmp_path, refs):
    encoder, cache = BlockEncoder(), FeatureCache(tmp_path / "cache")
    extract(refs[:1], 2, encoder, cache, progress=False)  # both views of the first image
    feats, replaced = extract_cached_views(refs, 2, encoder, cache, progress=False)
    assert replaced == 2 and encoder.crops == 2 + 2  # only view 0 of the other two
    np.testing.assert_array_equal(feats[1:, 1], feats[1:, 0])
    assert not np.array_equal(feats[0, 1], feats[0, 0])


def test_extract_refuses_an_encoder_that_reads_fewer_blocks(tmp_path, refs):
    encoder = ClipEncoder(tmp_path / "unused.onnx")
    with pytest.raises(ValueError, match="every block"):
        extract(refs, 1, encoder, FeatureCache(tmp_path / "cache"), progress=False)

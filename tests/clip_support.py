"""Stand-ins for the CLIP encoder and a random head, so unit tests need no 90 MB network."""

from __future__ import annotations

import numpy as np

from detector_core.experts.clip import ClipHead


def random_head(seed: int = 0) -> ClipHead:
    rng = np.random.default_rng(seed)
    vec = lambda: rng.normal(size=768).astype(np.float32)  # noqa: E731
    return ClipHead(
        cls_mean=vec(),
        cls_std=np.abs(vec()) + 0.5,
        cls_weight=vec() * 0.01,
        patch_mean=vec(),
        patch_std=np.abs(vec()) + 0.5,
        patch_weight=vec() * 0.01,
        bias=0.3,
    )


class FakeEncoder:
    """Token statistics of the pixels themselves, so that crops that differ give tokens
    that differ; stands in for the 90 MB network in unit tests."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def tokens(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append(len(crops))
        x = crops.astype(np.float32) / 255.0
        patches = x.reshape(len(crops), 14, 16, 14, 16, 3).mean(axis=(2, 4)).reshape(-1, 196, 3)
        patches = np.tile(patches, (1, 1, 256))
        # (N, blocks=1, 768) and (N, 1, 196, 768), as the real encoder reading one block.
        return patches.mean(axis=1)[:, None], patches[:, None]


def real_clip_model():
    """The cached CLIP model's path; a skip where it is absent, a failure in CI."""
    import pytest
    from conftest import IN_CI

    from detector_core.model_files import clip_model_path

    path = clip_model_path()
    if not path.is_file():
        if IN_CI:
            pytest.fail(f"CI=true but the CLIP model is missing at {path} (humanmade setup)")
        pytest.skip("the CLIP model is not cached (run `humanmade setup`)")
    return path

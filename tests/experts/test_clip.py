"""The CLIP expert: native crops, the linear head's patch map, and the real encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from clip_support import FakeEncoder, random_head, real_clip_model
from conftest import make_image
from PIL import Image

from detector_core.experts.clip import (
    CROP,
    ClipExpert,
    ClipHead,
    cut_crops,
    normalise,
    plan_crops,
    upscale_to_crop,
)
from detector_core.model_files import CLIP_SHA256


def test_large_images_give_native_crops_spread_over_the_image() -> None:
    image = make_image(900, 500, seed=3)
    crops, boxes = cut_crops(image, 4)
    pixels = np.asarray(image)
    assert crops.shape == (4, CROP, CROP, 3)
    for crop, box in zip(crops, boxes, strict=True):
        assert np.array_equal(crop, pixels[box.top : box.top + CROP, box.left : box.left + CROP])
    assert len({(b.left, b.top) for b in boxes}) == 4
    assert max(b.left for b in boxes) - min(b.left for b in boxes) > 300


def test_near_crop_sized_images_get_one_centre_crop_not_four_overlapping() -> None:
    assert plan_crops(256, 256, 4) == [plan_crops(256, 256, 1)[0]]
    assert len(plan_crops(256, 256, 4)) == 1 and plan_crops(256, 256, 4)[0].left == 16
    assert len(plan_crops(500, 256, 4)) == 3  # 0, 224, 276 across; centred down


def test_one_crop_is_the_centre() -> None:
    (box,) = plan_crops(1000, 600, 1)
    assert (box.left, box.top) == ((1000 - CROP) // 2, (600 - CROP) // 2)


def test_small_images_are_enlarged_and_boxes_map_back() -> None:
    image = make_image(100, 150, seed=1)
    work, factor = upscale_to_crop(image)
    assert factor == pytest.approx(2.24) and min(work.size) == CROP
    crops, boxes = cut_crops(image, 4)
    assert crops.shape[1:] == (CROP, CROP, 3)
    for box in boxes:
        assert box.left + box.width <= image.width and box.top + box.height <= image.height
    assert upscale_to_crop(make_image(300, 240))[1] == 1.0


def test_plan_crops_refuses_zero() -> None:
    with pytest.raises(ValueError):
        plan_crops(500, 500, 0)


def test_patch_map_mean_is_the_image_logit() -> None:
    head = random_head()
    rng = np.random.default_rng(1)
    cls, patches = rng.normal(size=(3, 768)), rng.normal(size=(3, 196, 768))
    maps = head.patch_logits(cls, patches)
    assert maps.shape == (3, 14, 14)
    np.testing.assert_allclose(maps.mean(axis=(1, 2)), head.logits(cls, patches.mean(1)), rtol=1e-5)


def test_head_state_round_trip_and_bad_shapes() -> None:
    head = random_head(2)
    again = ClipHead.from_state(head.state())
    x = np.random.default_rng(0).normal(size=(2, 768))
    np.testing.assert_allclose(again.logits(x, x), head.logits(x, x), rtol=1e-6)
    state = head.state()
    state["cls_weight"] = state["cls_weight"][:10]
    with pytest.raises(ValueError, match="cls_weight"):
        ClipHead.from_state(state)


def test_expert_scores_each_crop_and_returns_maps() -> None:
    encoder = FakeEncoder()
    expert = ClipExpert(encoder, random_head(), max_crops=3)  # type: ignore[arg-type]
    logit, boxes, maps = expert.score(make_image(700, 400, seed=5))
    assert encoder.calls == [3] and len(boxes) == 3 and len(maps) == 3
    assert logit == pytest.approx(float(np.mean(maps)))
    assert expert.score(make_image(700, 400, seed=5), max_crops=1)[1][0].width == CROP


def test_normalise_uses_clip_statistics() -> None:
    grey = np.full((1, CROP, CROP, 3), 123, np.uint8)
    x = normalise(grey)
    assert x.shape == (1, 3, CROP, CROP) and x.dtype == np.float32
    assert abs(float(x[0, 0].mean()) - (123 / 255 - 0.48145466) / 0.26862954) < 1e-5


def test_real_encoder_gives_final_layer_tokens() -> None:
    from detector_core.experts.clip import ClipEncoder
    from detector_core.model_files import file_sha256

    path = real_clip_model()
    assert file_sha256(path) == CLIP_SHA256
    crops, _ = cut_crops(make_image(500, 300, seed=2), 2)
    cls, patches = ClipEncoder(path, threads=1).tokens(crops)
    assert cls.shape == (2, 1, 768) and patches.shape == (2, 1, 196, 768)
    assert np.isfinite(patches).all()
    # Different images give different tokens; the same one, the same tokens.
    again, _ = ClipEncoder(path, threads=1).tokens(crops[:1])
    np.testing.assert_allclose(again[0], cls[0], rtol=1e-4, atol=1e-4)
    other, _ = ClipEncoder(path, threads=1).tokens(
        cut_crops(Image.new("RGB", (224, 224), "white"), 1)[0]
    )
    assert np.linalg.norm(other[0] - cls[0]) > 1.0


def test_real_encoder_reads_every_block_and_the_last_is_the_hidden_state() -> None:
    from detector_core.experts.clip import BLOCKS, ClipEncoder

    path = real_clip_model()
    crops, _ = cut_crops(make_image(300, 300, seed=4), 1)
    last_cls, last_patches = ClipEncoder(path, threads=1).tokens(crops)
    cls, patches = ClipEncoder(path, threads=1, blocks=range(BLOCKS)).tokens(crops)
    assert cls.shape == (1, BLOCKS, 768) and patches.shape == (1, BLOCKS, 196, 768)
    # Reading more outputs changes nothing that is computed: block 11 is the hidden state.
    np.testing.assert_array_equal(cls[:, -1], last_cls[:, 0])
    np.testing.assert_array_equal(patches[:, -1], last_patches[:, 0])
    # Each block's residual stream is its own (the stream grows through the blocks).
    norms = np.linalg.norm(cls[0], axis=1)
    assert len(set(np.round(norms, 3))) == BLOCKS and norms[-1] > norms[0]


def test_encoder_refuses_blocks_outside_the_tower() -> None:
    from detector_core.experts.clip import ClipEncoder

    with pytest.raises(ValueError, match="blocks"):
        ClipEncoder(Path("unused.onnx"), blocks=(12,))
    with pytest.raises(ValueError, match="blocks"):
        ClipEncoder(Path("unused.onnx"), blocks=())


def test_multi_block_head_patch_map_mean_is_the_image_logit() -> None:
    rng = np.random.default_rng(3)
    blocks = 3
    values = {
        name: rng.normal(size=blocks * 768).astype(np.float32)
        for name in ("cls_mean", "cls_weight", "patch_mean", "patch_weight")
    }
    values |= {
        "cls_std": rng.uniform(0.5, 2, blocks * 768).astype(np.float32),
        "patch_std": rng.uniform(0.5, 2, blocks * 768).astype(np.float32),
    }
    head = ClipHead(**values, bias=0.3)
    cls, patches = rng.normal(size=(2, blocks, 768)), rng.normal(size=(2, blocks, 196, 768))
    maps = head.patch_logits(cls, patches)
    assert maps.shape == (2, 14, 14) and head.n_blocks == blocks
    np.testing.assert_allclose(
        maps.mean(axis=(1, 2)), head.logits(cls, patches.mean(2)), rtol=1e-5, atol=1e-4
    )
    # The map is not flat: each patch's own tokens move its logit.
    assert maps.std() > 0.1
    again = ClipHead.from_state(head.state(), n_blocks=blocks)
    np.testing.assert_allclose(
        again.logits(cls, patches.mean(2)), head.logits(cls, patches.mean(2))
    )
    with pytest.raises(ValueError, match="3 block"):
        ClipHead.from_state({**head.state(), "cls_mean": head.state()["cls_mean"][:768]}, blocks)
    with pytest.raises(ValueError, match="1 block"):
        ClipHead.from_state(head.state(), n_blocks=1)

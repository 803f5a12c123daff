"""The CLIP expert: native crops, the linear head's patch map, and the real encoder."""

from __future__ import annotations

import numpy as np
import pytest
from clip_support import FakeEncoder, random_head
from conftest import IN_CI, make_image
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
from detector_core.model_files import CLIP_SHA256, clip_model_path


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


def _real_model():
    path = clip_model_path()
    if not path.is_file():
        if IN_CI:
            pytest.fail(f"CI=true but the CLIP model is missing at {path} (humanmade setup)")
        pytest.skip("the CLIP model is not cached (run `humanmade setup`)")
    return path


def test_real_encoder_gives_final_layer_tokens() -> None:
    from detector_core.experts.clip import ClipEncoder
    from detector_core.model_files import file_sha256

    path = _real_model()
    assert file_sha256(path) == CLIP_SHA256
    crops, _ = cut_crops(make_image(500, 300, seed=2), 2)
    cls, patches = ClipEncoder(path, threads=1).tokens(crops)
    assert cls.shape == (2, 768) and patches.shape == (2, 196, 768)
    assert np.isfinite(patches).all()
    # Different images give different tokens; the same one, the same tokens.
    again, _ = ClipEncoder(path, threads=1).tokens(crops[:1])
    np.testing.assert_allclose(again[0], cls[0], rtol=1e-4, atol=1e-4)
    other, _ = ClipEncoder(path, threads=1).tokens(
        cut_crops(Image.new("RGB", (224, 224), "white"), 1)[0]
    )
    assert np.linalg.norm(other[0] - cls[0]) > 1.0

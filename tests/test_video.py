"""Videos and animated images: sampling, the clip verdict, and every hostile case of issue 22.

Every clip is made here with PyAV or Pillow; each decode runs in the bounded child process.
"""

from __future__ import annotations

import os
import stat
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import encode, make_image
from video_support import make_animation, make_audio_only, make_clip, many_frame_gif

from detector_core import video
from detector_core.clip_verdict import ClipVerdict, clip_probability, drivers
from detector_core.detector import Detector
from detector_core.errors import (
    CorruptVideoError,
    DecoderCrashedError,
    EmptyImageError,
    ImageError,
    ImageTooSmallError,
    NoVideoTrackError,
    UnsupportedVideoError,
    VideoError,
    VideoResolutionError,
    VideoTimeoutError,
    VideoTooLargeError,
)
from detector_core.video import VideoLimits, is_moving_image, media_kind, sample_frames

pytest.importorskip("av")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=4, fps=10)


# --------------------------------------------------------------------------- recognising


def test_media_kind_tells_videos_and_animations_from_still_images(tmp_path, clip):
    assert media_kind(clip.read_bytes()[:64]) == ("video", "mov")
    webm = make_clip(tmp_path / "c.webm", seconds=1, codec="libvpx-vp9", container="webm")
    assert media_kind(webm.read_bytes()[:64]) == ("video", "matroska")
    avi = make_clip(tmp_path / "c.avi", seconds=1, codec="mpeg4", container="avi")
    assert media_kind(avi.read_bytes()[:64]) == ("video", "avi")
    for fmt, name in (("GIF", "GIF"), ("WEBP", "WEBP"), ("PNG", "PNG")):
        assert media_kind(make_animation(fmt, n=3)) == ("animation", name)
        still = encode(make_image(), fmt)
        assert media_kind(still) is None, fmt
        assert not is_moving_image(still)
    assert media_kind(encode(make_image(), "JPEG")) is None
    assert is_moving_image(str(clip)) and is_moving_image(clip.read_bytes())


# --------------------------------------------------------------------------- sampling


def test_frames_are_spread_over_the_whole_clip_at_native_size(clip):
    sample = sample_frames(clip)
    times = [f.time_s for f in sample.frames]
    assert len(times) == VideoLimits().frames_scored
    assert times == sorted(times) and times[0] < 0.5 and times[-1] > 3.4
    assert all(f.image.size == (160, 120) and f.image.mode == "RGB" for f in sample.frames)
    assert sample.media.codec == "h264" and sample.media.container == "MP4/MOV"
    assert sample.media.duration_s == pytest.approx(4.0, abs=0.15)
    assert sample.window_s == pytest.approx(sample.media.duration_s)
    # One keyframe: decoding goes on from where it is instead of seeking back to it each
    # time (which would decode about 16 × 20 frames).
    assert sample.frames_decoded < 80


def test_where_keyframes_are_enough_only_keyframes_are_decoded(tmp_path):
    # 10 s at 10 fps with a keyframe every second: 100 frames, 10 of them keyframes.
    path = make_clip(tmp_path / "k.mp4", seconds=10, fps=10, gop=10)
    sample = sample_frames(path)
    assert len(sample.frames) == VideoLimits().frames_scored
    assert all(f.time_s == pytest.approx(round(f.time_s)) for f in sample.frames)
    assert sample.frames_decoded <= 2 * 10  # a keyframe may be decoded again by a seek
    assert max(f.time_s for f in sample.frames) >= 8


def test_a_long_clip_with_keyframes_is_sampled_by_seeking(tmp_path):
    # Two hours at one frame every two seconds, a keyframe every 10 frames.
    n = 3600
    path = make_clip(
        tmp_path / "long.mp4",
        seconds=n * 2,
        fps=Fraction(1, 2),
        width=64,
        height=48,
        gop=10,
        frames=list(_distinct_frames(n, 64, 48)),
    )
    limits = VideoLimits(max_duration_s=3600.0)
    sample = sample_frames(path, limits)
    assert sample.media.duration_s > 7000
    assert sample.window_s == pytest.approx(3600.0)
    assert sample.frames_decoded < 400  # never the 3,600 frames of the whole clip
    assert max(f.time_s for f in sample.frames) > 3000


def _distinct_frames(n: int, width: int, height: int):
    # Each frame's brightness pattern differs: no two are near-duplicates.
    rng = np.random.default_rng(3)
    base = rng.integers(40, 216, (height, width, 3), dtype=np.int16)
    for i in range(n):
        yield np.clip(base + rng.integers(-40, 40, (1, 1, 3)) * ((i % 7) - 3), 0, 255).astype(
            np.uint8
        )


def test_black_and_repeated_frames_are_skipped(tmp_path):
    rng = np.random.default_rng(5)
    still = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    black = np.zeros((64, 96, 3), np.uint8)
    frames = [black] * 20 + [still] * 20
    path = make_clip(tmp_path / "b.mp4", seconds=4, fps=10, width=96, height=64, frames=frames)
    sample = sample_frames(path)
    assert sample.skipped_black > 0
    assert sample.skipped_duplicate > 0
    assert len(sample.frames) == 1 and sample.frames[0].time_s >= 2.0


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animations_are_sampled_through_pillow(fmt):
    sample = sample_frames(make_animation(fmt, n=30))
    assert sample.media.kind == "animation" and sample.media.frame_count == 30
    assert sample.media.duration_s == pytest.approx(3.0)
    assert len(sample.frames) == VideoLimits().frames_scored
    assert sample.frames[-1].time_s > 2.5


@pytest.mark.parametrize(
    ("codec", "pix_fmt", "container"),
    [
        ("libx264", "yuv444p", "mp4"),
        ("mjpeg", "yuvj422p", "mov"),
        ("libvpx-vp9", "yuv444p", "webm"),
        ("mjpeg", "yuvj420p", "avi"),
    ],
)
def test_unusual_pixel_formats_become_rgb(tmp_path, codec, pix_fmt, container):
    path = make_clip(
        tmp_path / f"odd.{container}",
        seconds=1,
        codec=codec,
        container=container,
        pix_fmt=pix_fmt,
    )
    sample = sample_frames(path)
    assert sample.frames and all(f.image.mode == "RGB" for f in sample.frames)
    assert sample.frames[0].image.size == (160, 120)


# --------------------------------------------------------------------------- hostile input


def test_a_truncated_mp4_is_refused_as_damaged(clip):
    data = clip.read_bytes()
    with pytest.raises(CorruptVideoError, match="damaged or truncated"):
        sample_frames(data[: len(data) // 2])


def test_a_truncated_webm_is_scored_on_what_is_there(tmp_path):
    path = make_clip(tmp_path / "t.webm", seconds=4, codec="libvpx-vp9", container="webm")
    data = path.read_bytes()
    sample = sample_frames(data[: int(len(data) * 0.6)])
    assert sample.frames
    assert max(f.time_s for f in sample.frames) < 3.0  # nothing from the missing end


def test_a_clip_with_zero_frames_is_refused(tmp_path):
    # MP4 drops a track without samples; Matroska's header alone is not a readable file.
    path = make_clip(tmp_path / "zero.mp4", frames=[])
    with pytest.raises(NoVideoTrackError, match="no video track"):
        sample_frames(path)
    path = make_clip(tmp_path / "zero.webm", frames=[], codec="libvpx-vp9", container="webm")
    with pytest.raises(CorruptVideoError, match="cannot be read"):
        sample_frames(path)


def test_an_audio_file_named_mp4_is_refused_by_name_of_what_it_is(tmp_path):
    path = make_audio_only(tmp_path / "song.mp4")
    with pytest.raises(NoVideoTrackError, match="only audio"):
        sample_frames(path)


def test_a_container_claiming_a_huge_duration_is_sampled_over_what_it_holds(tmp_path, clip):
    data = bytearray(clip.read_bytes())
    for box in (b"mvhd", b"mdhd", b"tkhd"):
        at = data.find(box)
        assert at > 0 and data[at + 4] == 0  # version 0 boxes: 32-bit fields
        # duration follows version/flags, creation and modification times (and the
        # timescale, or for tkhd the track id and a reserved word)
        offset = {b"mvhd": 20, b"mdhd": 20, b"tkhd": 24}[box]
        data[at + offset : at + offset + 4] = (0xFFFFFF00).to_bytes(4, "big")
    sample = sample_frames(bytes(data))
    assert sample.frames
    assert sample.window_s < 10  # sampled over the 4 s it holds, not the claimed days
    assert max(f.time_s for f in sample.frames) < 4.1


def test_a_gif_with_ten_thousand_frames_is_bounded_by_the_decoded_frame_limit():
    limits = VideoLimits(max_frames_decoded=1000)
    sample = sample_frames(many_frame_gif(10_000), limits)
    assert sample.frames_decoded == 1000
    assert "1000 decoded frames" in sample.stopped_early
    assert 1 <= len(sample.frames) <= limits.frames_scored
    assert max(f.time_s for f in sample.frames) > 50  # spread over the 100 s decoded


def test_frames_over_the_resolution_limit_are_refused_before_decoding(clip):
    # Stands in for a 16K frame: the declared size is checked against the limit.
    with pytest.raises(VideoResolutionError, match="160×120"):
        sample_frames(clip, VideoLimits(max_pixels=100 * 100))
    with pytest.raises(VideoResolutionError):
        sample_frames(make_animation("GIF", n=3), VideoLimits(max_pixels=50 * 50))


def test_a_file_over_the_byte_limit_is_refused_before_decoding(clip):
    with pytest.raises(VideoTooLargeError, match="limit for videos"):
        sample_frames(clip, VideoLimits(max_bytes=1000))
    with pytest.raises(VideoTooLargeError):
        sample_frames(clip.read_bytes(), VideoLimits(max_bytes=1000))
    with open(clip, "rb") as fh, pytest.raises(VideoTooLargeError):
        sample_frames(fh, VideoLimits(max_bytes=1000))


def test_empty_missing_and_still_inputs_get_clear_errors(tmp_path):
    with pytest.raises(EmptyImageError):
        sample_frames(b"")
    with pytest.raises(ImageError, match="no file"):
        sample_frames(tmp_path / "absent.mp4")
    with pytest.raises(UnsupportedVideoError, match="not a video"):
        sample_frames(encode(make_image()))
    avi = b"RIFF\x00\x10\x00\x00AVI LIST" + bytes(200)
    with pytest.raises(CorruptVideoError, match="AVI"):
        sample_frames(avi)


def test_a_codec_outside_the_whitelist_is_refused_by_name(tmp_path):
    path = make_clip(tmp_path / "old.mkv", seconds=1, codec="mpeg2video", container="matroska")
    with pytest.raises(UnsupportedVideoError, match="mpeg2video"):
        sample_frames(path)
    avi = make_clip(
        tmp_path / "old.avi", seconds=1, codec="msvideo1", container="avi", pix_fmt="rgb555le"
    )
    with pytest.raises(UnsupportedVideoError, match="msvideo1"):
        sample_frames(avi)


def test_a_decode_past_the_time_limit_is_stopped(clip):
    with pytest.raises(VideoTimeoutError, match="limit of 0.05 s"):
        sample_frames(clip, VideoLimits(time_limit_s=0.05))


def test_a_decoder_out_of_memory_is_reported_not_fatal(clip, tmp_path):
    # 300 MB is room enough for the decoder and a small clip's frames ...
    small = VideoLimits(memory_limit_bytes=300 * 1024 * 1024)
    assert sample_frames(clip, small).frames
    # ... but not for 1080p frames: the child runs out, the caller gets an error.
    yy, xx = np.mgrid[0:1080, 0:1920]
    base = np.stack([xx * 255 // 1920, yy * 255 // 1080, (xx + yy) * 255 // 3000], -1)
    frames = [np.roll(base.astype(np.uint8), i * 40, axis=1) for i in range(10)]
    big = make_clip(tmp_path / "big.mp4", 1, 10, 1920, 1080, frames=frames)
    with pytest.raises(DecoderCrashedError, match="more memory than allowed"):
        sample_frames(big, small)
    # With almost nothing, the child cannot even start its decoder: the same error.
    with pytest.raises(DecoderCrashedError, match="memory"):
        sample_frames(clip, VideoLimits(memory_limit_bytes=64 * 1024 * 1024))


def test_a_crashing_decoder_does_not_take_the_caller_down(clip, tmp_path, monkeypatch):
    # A stand-in interpreter that dies of SIGSEGV, as a decoder bug would.
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nkill -SEGV $$\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(video.sys, "executable", str(fake))
    with pytest.raises(DecoderCrashedError, match="signal 11"):
        sample_frames(clip)


def test_temporary_files_are_removed(clip, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    sample_frames(clip.read_bytes())
    with pytest.raises(CorruptVideoError):
        sample_frames(clip.read_bytes()[:5000])
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- the clip verdict


def test_the_clip_probability_is_the_mean_of_frame_logits():
    assert clip_probability([0.5, 0.5]) == pytest.approx(0.5)
    # logit 0.9 = 2.197, logit 0.1 = -2.197: they cancel, unlike a max (0.9) would say.
    assert clip_probability([0.9, 0.1]) == pytest.approx(0.5)
    assert clip_probability([0.9, 0.9, 0.5]) == pytest.approx(
        1 / (1 + np.exp(-(2 * np.log(9)) / 3))
    )
    assert drivers([0.2, 0.9, 0.8, 0.1, 0.95], 0.7) == (1, 2, 4)
    assert drivers([0.2, 0.9, 0.8, 0.1, 0.95], 0.3, k=2) == (0, 3)


def test_score_video_gives_one_verdict_with_a_timeline(tiny_weights, clip):
    detector = Detector(tiny_weights)
    verdict = detector.score_video(clip)
    assert isinstance(verdict, ClipVerdict)
    frames = verdict.frames
    assert len(frames) == VideoLimits().frames_scored
    # The stated rule, recomputed from the frames it keeps.
    assert verdict.ai_probability == pytest.approx(
        clip_probability([f.ai_probability for f in frames])
    )
    assert verdict.band is detector.cutoffs.band(verdict.ai_probability)
    # Each frame, scored alone as an image, gets the probability the timeline shows.
    sample = sample_frames(clip)
    alone = detector.score(sample.frames[3].image)
    assert frames[3].ai_probability == pytest.approx(alone.ai_probability, abs=1e-6)
    assert frames[3].time_s == sample.frames[3].time_s
    assert len(verdict.drivers) == 3
    assert verdict.share_looked_at == pytest.approx(1.0)
    record = verdict.to_dict()
    assert record["rule"].startswith("mean of frame logits")
    assert len(record["frames"]) == len(frames)
    assert sum(f["driver"] for f in record["frames"]) == 3
    assert record["coverage"]["frames_scored"] == len(frames)
    assert "video, 8 frames over 4.0 s (all of the clip)" in verdict.summary()


def test_score_video_scores_an_animated_gif(tiny_weights):
    verdict = Detector(tiny_weights).score_video(make_animation("GIF", n=20))
    assert verdict.media.kind == "animation" and "animation" in verdict.summary()
    assert 0.0 < verdict.ai_probability < 1.0


def test_score_video_says_what_share_of_a_long_clip_it_looked_at(tiny_weights, tmp_path):
    path = make_clip(
        tmp_path / "l.mp4",
        seconds=20,
        fps=2,
        width=64,
        height=48,
        gop=4,
        frames=list(_distinct_frames(40, 64, 48)),
    )
    verdict = Detector(tiny_weights).score_video(path, limits=VideoLimits(max_duration_s=5))
    assert verdict.share_looked_at == pytest.approx(0.25, abs=0.02)
    assert "25% of the clip's 0:20" in verdict.summary()
    assert max(f.time_s for f in verdict.frames) <= 5.0


def test_frames_too_small_to_judge_give_the_image_error(tiny_weights, tmp_path):
    path = make_clip(tmp_path / "s.mp4", seconds=1, width=16, height=16)
    with pytest.raises(ImageTooSmallError, match="No frame of the clip could be scored"):
        Detector(tiny_weights).score_video(path)


def test_an_all_black_clip_has_nothing_to_score(tiny_weights, tmp_path):
    path = make_clip(tmp_path / "k.mp4", frames=[np.zeros((120, 160, 3), np.uint8)] * 10)
    with pytest.raises(VideoError, match="black"):
        Detector(tiny_weights).score_video(path)


# --------------------------------------------------------------------------- provenance


def test_a_c2pa_manifest_in_an_mp4_declaring_ai_sets_the_band(tiny_weights, clip):
    pytest.importorskip("c2pa")
    from test_provenance import c2pa_sign

    signed = c2pa_sign(clip.read_bytes(), "video/mp4")
    verdict = Detector(tiny_weights).score_video(signed)
    (item,) = [e for e in verdict.evidence if e.kind == "c2pa"]
    assert item.details["digital_source_types"] == ["trainedAlgorithmicMedia"]
    assert verdict.band.value == "likely_ai"
    assert verdict.decided_by.value == "provenance"
    assert verdict.summary().startswith("Likely AI — the file's C2PA manifest declares")
    assert "— video, " in verdict.summary()
    assert verdict.to_dict()["evidence"][0]["kind"] == "c2pa"
    # Nothing in the file: the pixels decide.
    plain = Detector(tiny_weights).score_video(clip)
    assert plain.evidence == () and plain.decided_by.value == "pixels"


# --------------------------------------------------------------------------- budgets, in-process


def _worker_limits(**changes) -> dict:
    from dataclasses import asdict, replace

    return asdict(replace(VideoLimits(), **changes))


def test_the_decoded_frame_budget_stops_a_video_and_keeps_what_it_has(tmp_path):
    import time

    from detector_core.video_worker import _sample_video

    # One keyframe for 100 frames: every frame must be decoded to reach the later ones.
    path = make_clip(tmp_path / "gop.mp4", seconds=10, fps=10)
    limits = _worker_limits(max_frames_decoded=30)
    result = _sample_video(str(path), "mov", limits, time.monotonic() + 60)
    assert result["frames_decoded"] == 30
    assert "30 decoded frames" in result["stopped_early"]
    kept = [t for t, _ in result["picker"].kept]
    assert kept and max(kept) < 3.0
    # The span reached, not the 10 s planned: the verdict's share looked at is honest.
    assert max(kept) <= result["window_s"] < 3.0


def test_a_sample_out_of_time_before_any_frame_is_a_timeout(tmp_path, clip):
    import time

    from detector_core.video_worker import _sample_video

    with pytest.raises(VideoTimeoutError, match="before the time limit"):
        _sample_video(str(clip), "mov", _worker_limits(), time.monotonic() - 1)


def test_score_on_a_video_points_to_score_video(tiny_weights, clip):
    from detector_core.errors import NotAnImageError

    with pytest.raises(NotAnImageError, match="score_video"):
        Detector(tiny_weights).score(clip)


COMFY_GRAPH = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 7, "steps": 20, "cfg": 6.0}},
    "4": {"class_type": "UNETLoader", "inputs": {"unet_name": "wan2.1_t2v_1.3B.safetensors"}},
    "9": {"class_type": "SaveVideo", "inputs": {}},
}


def test_comfyui_graph_in_mp4_tags_is_strong_evidence(tiny_weights, tmp_path):
    import json

    # As ComfyUI's SaveVideo writes it: one JSON per tag, in MP4 user metadata.
    core = make_clip(tmp_path / "core.mp4", seconds=1, tags={"prompt": json.dumps(COMFY_GRAPH)})
    # As VideoHelperSuite's Video Combine writes it: both in `comment`, in a WebM.
    wrapped = json.dumps({"prompt": COMFY_GRAPH, "workflow": {"nodes": []}})
    vhs = make_clip(
        tmp_path / "vhs.webm",
        seconds=1,
        codec="libvpx-vp9",
        container="webm",
        tags={"comment": wrapped},
    )
    detector = Detector(tiny_weights)
    for path, where in ((core, "MP4/MOV metadata tag 'prompt'"), (vhs, "comment")):
        verdict = detector.score_video(path)
        (item,) = [e for e in verdict.evidence if e.kind == "generator_parameters"]
        assert item.details["generator"] == "ComfyUI" and where in item.where
        assert "wan2.1_t2v_1.3B" in item.summary
        assert verdict.band.value == "likely_ai" and verdict.decided_by.value == "provenance"


def test_tool_tags_are_hints_or_context_and_ffmpeg_says_nothing(tiny_weights, tmp_path):
    from detector_core.provenance.video_tags import read_video_tags

    found = read_video_tags({"encoder": "Lavf61.7.100"}, "MP4/MOV")
    assert found == []
    (hint,) = read_video_tags({"software": "ComfyUI"}, "MP4/MOV")
    assert hint.strength.value == "weak_ai"
    (context,) = read_video_tags({"encoder": "Final Cut Pro 10.6"}, "MP4/MOV")
    assert context.strength.value == "context"
    path = make_clip(tmp_path / "tool.mp4", seconds=1, tags={"software": "ComfyUI"})
    verdict = Detector(tiny_weights).score_video(path)
    assert [e.strength.value for e in verdict.evidence] == ["weak_ai"]
    assert verdict.decided_by.value == "pixels"  # a hint never moves the band


def test_a_clip_as_bytes_or_file_object_is_the_same_clip(clip):
    by_path = sample_frames(clip)
    with open(clip, "rb") as fh:
        by_file = sample_frames(fh)
    by_bytes = sample_frames(clip.read_bytes())
    for other in (by_file, by_bytes):
        assert other.media == by_path.media  # the sha256 and size included
        assert [f.time_s for f in other.frames] == [f.time_s for f in by_path.frames]

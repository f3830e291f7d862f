"""Clip making (paper §4.1): non-overlapping counts, stride, centring, crop, resize, dtype."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.clipmaker import ClipOptions, make_clips
from ingest.clips import clip_indices, clip_starts
from ingest.geometry import centre_square, crop_roi, parse_roi, resize_frames
from ingest.intensity import WindowSpec
from ingest.sequence import RawSequence


def test_120_frame_cine_gives_15_clips_of_8() -> None:
    assert clip_starts(120, 8, 1) == list(range(0, 120, 8))


def test_leftover_frames_are_dropped_equally_from_both_ends() -> None:
    # 108 slices: 13 clips use 104, so 2 are dropped at each end.
    starts = clip_starts(108, 8, 1)
    assert len(starts) == 13 and starts[0] == 2 and starts[-1] + 8 == 106


def test_stride_spaces_frames_and_clips() -> None:
    starts = clip_starts(40, 8, 2)  # a clip spans 15 frames; the next starts 16 later
    assert starts == [4, 20]
    assert clip_indices(4, 8, 2) == [4, 6, 8, 10, 12, 14, 16, 18]


def test_too_short_sequence_gives_no_clip() -> None:
    assert clip_starts(7, 8, 1) == []
    assert clip_starts(14, 8, 2) == []
    assert clip_starts(15, 8, 2) == [0]


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 400), frames=st.integers(1, 16), stride=st.integers(1, 5))
def test_clips_never_share_a_frame_and_stay_inside(n: int, frames: int, stride: int) -> None:
    starts = clip_starts(n, frames, stride)
    used = [i for s in starts for i in clip_indices(s, frames, stride)]
    assert len(used) == len(set(used))
    assert all(0 <= i < n for i in used)
    # No further clip would fit: the count is the most that fit without overlap.
    assert len(starts) == (
        0 if n < (frames - 1) * stride + 1 else (n - (frames - 1) * stride - 1) // (frames * stride) + 1
    )


def test_make_clips_shape_dtype_and_window() -> None:
    frames = np.linspace(-1000, 400, 20, dtype=np.float32)[:, None, None] * np.ones((1, 30, 50), np.float32)
    clips = make_clips(RawSequence(frames), ClipOptions(8, 1, 16, WindowSpec.parse("ct:-1000,400")))
    assert len(clips) == 2
    assert all(c.frames.shape == (8, 16, 16) and c.frames.dtype == np.uint8 for c in clips)
    assert clips[0].start == 2
    # Frame 2 is -852.6 HU → 26.8 → 27 after rounding.
    assert clips[0].frames[0, 0, 0] == 27


def test_inverted_sequence_is_flipped_after_windowing() -> None:
    frames = np.zeros((8, 4, 4), np.float32)
    frames[:, 0, 0] = 100.0
    options = ClipOptions(8, 1, 4, WindowSpec.parse("ct:0,100"))
    (plain,) = make_clips(RawSequence(frames), options)
    (inverted,) = make_clips(RawSequence(frames, inverted=True), options)
    np.testing.assert_array_equal(inverted.frames, 255 - plain.frames)


def test_non_finite_values_are_refused() -> None:
    frames = np.zeros((8, 4, 4), np.float32)
    frames[3, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        make_clips(RawSequence(frames), ClipOptions(8, 1, 4, WindowSpec.parse("percentile:1,99")))


def test_centre_square_keeps_the_middle_and_the_physical_aspect() -> None:
    frames = np.arange(2 * 4 * 10, dtype=np.float32).reshape(2, 4, 10)
    square = centre_square(frames)
    np.testing.assert_array_equal(square, frames[:, :, 3:7])
    # 4 rows of 3 mm are 12 mm, 10 columns of 1 mm are 10 mm: the 10 mm square is 3 rows × 10 columns.
    anisotropic = centre_square(frames, (3.0, 1.0))
    assert anisotropic.shape == (2, 3, 10)


def test_resize_keeps_constant_frames_constant() -> None:
    frames = np.full((3, 40, 40), 77.0, np.float32)
    resized = resize_frames(frames, 16)
    assert resized.shape == (3, 16, 16)
    np.testing.assert_allclose(resized, 77.0, atol=1e-3)


def test_roi_is_parsed_and_bounds_checked() -> None:
    frames = np.zeros((2, 10, 20), np.float32)
    assert crop_roi(frames, parse_roi("2:8,5:15")).shape == (2, 6, 10)
    with pytest.raises(ValueError, match="exceeds the 10x20 frames"):
        crop_roi(frames, parse_roi("0:11,0:5"))
    with pytest.raises(ValueError, match="expected 'Y0:Y1,X0:X1'"):
        parse_roi("0-5,1-2")

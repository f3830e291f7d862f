"""Each reader on a tiny real file of its format, and the clear errors for broken ones."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ingest.errors import IngestError
from ingest.readers import read_source


def test_multiframe_dicom_applies_rescale_to_hounsfield_units(tmp_path: Path, dicom_writer) -> None:
    stored = np.arange(10 * 16 * 12, dtype=np.int16).reshape(10, 16, 12)
    path = dicom_writer(
        tmp_path / "cine.dcm",
        stored,
        Modality="CT",
        RescaleSlope=2,
        RescaleIntercept=-1024,
        PixelSpacing=[0.5, 0.75],
    )
    (sequence,) = read_source(path)
    assert sequence.frames.shape == (10, 16, 12)
    assert sequence.frames.dtype == np.float32
    np.testing.assert_array_equal(sequence.frames, stored * 2.0 - 1024.0)
    assert sequence.modality == "CT"
    assert sequence.pixel_spacing == (0.5, 0.75)


def test_rgb_dicom_becomes_bt601_luma(tmp_path: Path, dicom_writer) -> None:
    rgb = np.zeros((3, 4, 4, 3), dtype=np.uint8)
    rgb[0, ..., 0] = 255
    rgb[1, ..., 1] = 255
    rgb[2, ..., 2] = 255
    (sequence,) = read_source(dicom_writer(tmp_path / "rgb.dcm", rgb, photometric="RGB", Modality="US"))
    np.testing.assert_allclose(sequence.frames[:, 0, 0], [0.299 * 255, 0.587 * 255, 0.114 * 255], rtol=1e-5)


def test_monochrome1_dicom_is_marked_inverted(tmp_path: Path, dicom_writer) -> None:
    pixels = np.zeros((2, 4, 4), dtype=np.uint16)
    (sequence,) = read_source(dicom_writer(tmp_path / "m1.dcm", pixels, photometric="MONOCHROME1"))
    assert sequence.inverted


def test_dicom_series_folder_is_sorted_by_slice_position(tmp_path: Path, dicom_writer) -> None:
    series = tmp_path / "series"
    z_positions = [4.0, -2.0, 10.0, 0.0, 6.0, 2.0, 8.0, -4.0]
    for index, z in enumerate(z_positions):
        # InstanceNumber deliberately disagrees with position: position must win.
        dicom_writer(
            series / f"slice{index}.dcm",
            np.full((1, 6, 5), int(z) + 100, dtype=np.int16),
            ImagePositionPatient=[0, 0, z],
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
            InstanceNumber=len(z_positions) - index,
            SeriesInstanceUID="1.2.3",
            Modality="CT",
        )
    (series / "notes.txt").write_text("not part of the series")
    (sequence,) = read_source(series)
    assert sequence.frames.shape == (8, 6, 5)
    np.testing.assert_array_equal(sequence.frames[:, 0, 0], np.array(sorted(z_positions)) + 100)


def test_dicom_series_without_positions_falls_back_to_instance_number(tmp_path: Path, dicom_writer) -> None:
    series = tmp_path / "series"
    for index, number in enumerate([3, 1, 2]):
        dicom_writer(
            series / f"s{index}.dcm", np.full((1, 4, 4), number, dtype=np.int16), InstanceNumber=number
        )
    (sequence,) = read_source(series)
    np.testing.assert_array_equal(sequence.frames[:, 0, 0], [1, 2, 3])


def test_dicom_folder_mixing_two_series_is_refused(tmp_path: Path, dicom_writer) -> None:
    for index, uid in enumerate(["1.2.3", "1.2.4"]):
        dicom_writer(
            tmp_path / "mixed" / f"s{index}.dcm", np.zeros((1, 4, 4), np.int16), SeriesInstanceUID=uid
        )
    with pytest.raises(IngestError, match=r"mixed: folder holds 2 series"):
        read_source(tmp_path / "mixed")


def test_truncated_dicom_is_reported_by_name(tmp_path: Path, dicom_writer) -> None:
    path = dicom_writer(tmp_path / "a.dcm", np.zeros((4, 32, 32), dtype=np.int16))
    path.write_bytes(path.read_bytes()[:-3000])
    with pytest.raises(IngestError, match=r"^a\.dcm: truncated DICOM: .*less than expected"):
        read_source(path)


def test_non_dicom_with_dcm_suffix_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "b.dcm"
    path.write_bytes(b"this is not a dicom file" * 20)
    with pytest.raises(IngestError, match=r"^b\.dcm: not a DICOM file"):
        read_source(path)


def test_nifti_is_reoriented_to_ras_and_sliced_along_the_axis(tmp_path: Path) -> None:
    volume = np.zeros((4, 5, 9), dtype=np.int16)
    volume[0, :, :] = 1  # voxel x=0 lies on the patient's right in this LAS file
    volume[:, :, 0] = 7  # first axial plane (inferior)
    affine = np.diag([-2.0, 3.0, 1.5, 1.0])  # L-A-S storage, 2 x 3 mm in plane
    nib.save(nib.Nifti1Image(volume, affine), tmp_path / "v.nii.gz")
    (sequence,) = read_source(tmp_path / "v.nii.gz", axis=2)
    assert sequence.frames.shape == (9, 5, 4)  # slices, rows (anterior → posterior), columns (x)
    assert sequence.pixel_spacing == (3.0, 2.0)
    assert np.all(sequence.frames[0] == 7)
    # RAS: column index grows to the patient's right, so the marked left-most stored voxel
    # (x = 0 of LAS storage, i.e. patient right) ends up in the last column.
    assert np.all(sequence.frames[1:, :, -1] == 1) and np.all(sequence.frames[1:, :, :-1] == 0)


def test_4d_nifti_gives_one_sequence_per_volume(tmp_path: Path) -> None:
    data = np.stack([np.full((3, 3, 10), t, dtype=np.float32) for t in range(3)], axis=-1)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "cine.nii")
    sequences = read_source(tmp_path / "cine.nii", axis=2)
    assert [s.part for s in sequences] == ["t0", "t1", "t2"]
    assert [float(s.frames.mean()) for s in sequences] == [0.0, 1.0, 2.0]


def test_broken_nifti_is_reported(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), np.eye(4)), tmp_path / "v.nii.gz")
    data = (tmp_path / "v.nii.gz").read_bytes()
    (tmp_path / "v.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(IngestError, match=r"^v\.nii\.gz: unreadable NIfTI"):
        read_source(tmp_path / "v.nii.gz")


@pytest.mark.parametrize(("name", "codec"), [("clip.mp4", "libx264"), ("clip.avi", "mpeg4")])
def test_video_frames_decode_to_gray(tmp_path: Path, video_writer, name: str, codec: str) -> None:
    levels = np.linspace(30, 220, 12).astype(np.uint8)
    frames = np.broadcast_to(levels[:, None, None], (12, 32, 48)).copy()
    (sequence,) = read_source(video_writer(tmp_path / name, frames, codec))
    assert sequence.frames.shape == (12, 32, 48)
    np.testing.assert_allclose(sequence.frames.mean(axis=(1, 2)), levels, atol=3)


def test_npy_and_npz_frames_are_read(tmp_path: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 255, (9, 6, 7)).astype(np.uint8)
    np.save(tmp_path / "a.npy", frames)
    np.savez(tmp_path / "b.npz", frames=frames, other=np.zeros(3))
    np.savez(tmp_path / "c.npz", frames.astype(np.float64))
    for name in ("a.npy", "b.npz", "c.npz"):
        (sequence,) = read_source(tmp_path / name)
        np.testing.assert_array_equal(sequence.frames, frames)


def test_rgb_npy_becomes_luma(tmp_path: Path) -> None:
    rgb = np.zeros((2, 3, 3, 3), dtype=np.uint8)
    rgb[..., 1] = 100
    np.save(tmp_path / "rgb.npy", rgb)
    (sequence,) = read_source(tmp_path / "rgb.npy")
    np.testing.assert_allclose(sequence.frames, 58.7, rtol=1e-5)


def test_pickled_object_npy_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "evil.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(IngestError, match=r"^evil\.npy: pickled object array refused.*allow_pickle=False"):
        read_source(tmp_path / "evil.npy")


def test_pickled_object_in_npz_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "evil.npz", frames=np.array([object()], dtype=object))
    with pytest.raises(IngestError, match=r"^evil\.npz: pickled object array refused"):
        read_source(tmp_path / "evil.npz")


def test_npz_without_a_frames_key_lists_its_arrays(tmp_path: Path) -> None:
    np.savez(tmp_path / "two.npz", x=np.zeros((8, 2, 2)), y=np.zeros((8, 2, 2)))
    with pytest.raises(IngestError, match=r"two\.npz: NPZ holds \['x', 'y'\]; name the clip array 'frames'"):
        read_source(tmp_path / "two.npz")


@pytest.mark.parametrize(
    ("array", "message"),
    [(np.zeros((4, 4), np.uint8), r"shape \(4, 4\)"), (np.array([["a"]] * 3), r"dtype <U1")],
)
def test_arrays_of_wrong_shape_or_dtype_are_refused(tmp_path: Path, array: np.ndarray, message: str) -> None:
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(IngestError, match=message):
        read_source(tmp_path / "x.npy")


def test_invesalius_project_is_read_in_hounsfield_units(tmp_path: Path, inv3_writer) -> None:
    stack = np.arange(10 * 6 * 4, dtype=np.int16).reshape(10, 6, 4) - 1000
    (sequence,) = read_source(inv3_writer(tmp_path / "head.inv3", stack, (0.5, 0.5, 1.5)), axis=2)
    assert sequence.modality == "CT"
    assert sequence.frames.shape == (10, 6, 4)
    assert sequence.pixel_spacing == (0.5, 0.5)
    # Stored rows run posterior → anterior and columns from the patient's right to left; shown
    # anterior-up with the patient's right on the image's right, both in-plane axes are mirrored.
    np.testing.assert_array_equal(sequence.frames, stack[:, ::-1, ::-1])


def test_truncated_invesalius_volume_is_reported(tmp_path: Path, inv3_writer) -> None:
    path = inv3_writer(tmp_path / "head.inv3", np.zeros((4, 4, 4), np.int16), (1, 1, 1), truncate=10)
    with pytest.raises(IngestError, match=r"^head\.inv3: truncated volume: 118 bytes"):
        read_source(path)


def test_unknown_format_is_reported(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(IngestError, match=r"^notes\.txt: unknown input format"):
        read_source(tmp_path / "notes.txt")


def test_ybr_full_dicom_uses_its_y_plane(tmp_path: Path, dicom_writer) -> None:
    ybr = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    ybr[0, ..., 0], ybr[1, ..., 0] = 40, 90
    ybr[..., 1:] = 200  # strong chroma must not leak into the gray values
    (sequence,) = read_source(dicom_writer(tmp_path / "ybr.dcm", ybr, photometric="YBR_FULL"))
    np.testing.assert_array_equal(sequence.frames[:, 0, 0], [40.0, 90.0])

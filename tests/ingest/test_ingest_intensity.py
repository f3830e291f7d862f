"""Intensity windows: CT HU windows, percentile clipping, parsing errors, luma."""

from __future__ import annotations

import numpy as np
import pytest

from ingest.intensity import WindowSpec, apply_window, default_window, rgb_to_luminance


def test_ct_window_maps_hounsfield_units_linearly() -> None:
    spec = WindowSpec.parse("ct:-1000,400")
    hu = np.array([-2000, -1000, -300, 400, 3000], dtype=np.float32)
    low, high = spec.bounds_for(hu)
    assert (low, high) == (-1000.0, 400.0)
    np.testing.assert_allclose(apply_window(hu, low, high), [0.0, 0.0, 127.5, 255.0, 255.0])


def test_percentile_window_clips_outliers() -> None:
    values = np.concatenate([np.arange(1, 99, dtype=np.float32), [-1e6, 1e6]])
    spec = WindowSpec.parse("percentile:1,99")
    low, high = spec.bounds_for(values)
    assert low == pytest.approx(np.percentile(values, 1)) and high == pytest.approx(np.percentile(values, 99))
    mapped = apply_window(values, low, high)
    assert mapped.min() == 0.0 and mapped.max() == 255.0
    assert mapped[-2] == 0.0 and mapped[-1] == 255.0  # the outliers are clipped
    assert 0.0 < mapped[49] < 255.0


def test_flat_window_gives_zeros() -> None:
    assert not apply_window(np.full(5, 3.0, np.float32), 3.0, 3.0).any()


def test_default_windows_by_modality() -> None:
    assert str(default_window("CT")) == "ct:-1000,400"
    assert str(default_window("US")) == "percentile:1,99"
    assert str(default_window(None)) == "percentile:1,99"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hu:0,1", "expected 'ct:LOW,HIGH'"),
        ("ct:400,-1000", "LOW must be below HIGH"),
        ("percentile:1,101", r"percentiles must lie in \[0, 100\]"),
        ("ct:a,b", "bounds must be two numbers"),
    ],
)
def test_bad_windows_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WindowSpec.parse(text)


def test_luminance_weights() -> None:
    rgb = np.array([[255, 255, 255], [10, 20, 30]], dtype=np.uint8)
    np.testing.assert_allclose(
        rgb_to_luminance(rgb), [255.0, 0.299 * 10 + 0.587 * 20 + 0.114 * 30], rtol=1e-5
    )

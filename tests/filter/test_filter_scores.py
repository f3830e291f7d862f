"""`S.npz`: saved and loaded exactly; a missing or mis-shaped field is named in the error."""

from __future__ import annotations

import numpy as np
import pytest

from filter.scores import check_scores, load_scores, save_scores

F32 = np.float32


def arrays(n: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "group": np.arange(n) % 2,
        "loss": rng.random(n),
        "latents": rng.standard_normal((n, 3, 4, 2, 2)).astype(np.float16),
    }


def test_round_trip(tmp_path):
    saved = arrays()
    save_scores(tmp_path / "S.npz", **saved)
    loaded = load_scores(tmp_path / "S.npz")
    for name, value in saved.items():
        np.testing.assert_array_equal(getattr(loaded, name), value)
    assert loaded.latents.dtype == np.float16 and loaded.loss.dtype == np.float64


def test_string_group_ids_round_trip(tmp_path):
    saved = arrays(3) | {"group": np.array(["bank-a", "bank-b", "bank-a"])}
    save_scores(tmp_path / "S.npz", **saved)
    assert load_scores(tmp_path / "S.npz").group.tolist() == ["bank-a", "bank-b", "bank-a"]


def test_missing_field_is_named(tmp_path):
    saved = arrays()
    np.savez(tmp_path / "S.npz", group=saved["group"], latents=saved["latents"])
    with pytest.raises(ValueError, match=r"S.npz: missing field\(s\) 'loss'"):
        load_scores(tmp_path / "S.npz")


def test_mis_shaped_field_is_named_on_load(tmp_path):
    saved = arrays()
    np.savez(tmp_path / "S.npz", group=saved["group"], loss=saved["loss"][:4], latents=saved["latents"])
    with pytest.raises(ValueError, match=r"field 'loss' must have shape \(N,\) = \(5,\), got \(4,\)"):
        load_scores(tmp_path / "S.npz")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="scores file not found"):
        load_scores(tmp_path / "absent.npz")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("group", np.zeros((5, 1), dtype=int), r"field 'group' must have shape \(N,\), got \(5, 1\)"),
        ("group", np.zeros(0, dtype=int), "field 'group' is empty"),
        ("group", np.zeros(5), "field 'group' must hold integers or strings, got dtype float64"),
        ("loss", np.array([0.1, np.inf, 0.2, 0.3, 0.4]), r"'loss' has non-finite values \(first at clip 1\)"),
        ("latents", np.zeros((5, 8), dtype=F32), r"'latents' must have shape \(N=5, frames, \.\.\.\)"),
        ("latents", np.zeros((4, 3, 2), dtype=F32), r"field 'latents' must have shape \(N=5"),
        ("latents", np.zeros((5, 1, 2), dtype=F32), "'latents' needs at least 2 frames per clip, got 1"),
        ("latents", np.zeros((5, 3, 2), dtype=np.uint8), "'latents' must be floating point, got dtype uint8"),
    ],
)
def test_bad_fields_are_named(field, value, message):
    given = arrays() | {field: value}
    with pytest.raises(ValueError, match=message):
        check_scores(**given)


def test_save_refuses_bad_scores_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="field 'loss'"):
        save_scores(tmp_path / "S.npz", **(arrays() | {"loss": np.zeros(3)}))
    assert not (tmp_path / "S.npz").exists()

"""Per-clip filter inputs (`S.npz`): group id, semantic loss and VAE latents, validated in and out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCORE_FIELDS = ("group", "loss", "latents")


@dataclass(frozen=True)
class Scores:
    """`group` (N,) int or str, `loss` (N,) float, `latents` (N, frames >= 2, ...) float."""

    group: np.ndarray
    loss: np.ndarray
    latents: np.ndarray


def check_scores(group: np.ndarray, loss: np.ndarray, latents: np.ndarray) -> Scores:
    """Return the arrays as `Scores`, or raise ValueError naming the field that is wrong."""
    group, loss, latents = np.asarray(group), np.asarray(loss), np.asarray(latents)
    if group.ndim != 1:
        raise ValueError(f"field 'group' must have shape (N,), got {group.shape}")
    n = group.shape[0]
    if n == 0:
        raise ValueError("field 'group' is empty: there are no clips to filter")
    if group.dtype.kind not in "iuU":
        raise ValueError(f"field 'group' must hold integers or strings, got dtype {group.dtype}")
    if loss.shape != (n,):
        raise ValueError(f"field 'loss' must have shape (N,) = ({n},), got {loss.shape}")
    if loss.dtype.kind not in "iuf":
        raise ValueError(f"field 'loss' must be numeric, got dtype {loss.dtype}")
    bad_loss = np.flatnonzero(~np.isfinite(loss))
    if bad_loss.size:
        raise ValueError(f"field 'loss' has non-finite values (first at clip {bad_loss[0]})")
    if latents.ndim < 3 or latents.shape[0] != n:
        raise ValueError(f"field 'latents' must have shape (N={n}, frames, ...), got {latents.shape}")
    if latents.shape[1] < 2:
        raise ValueError(f"field 'latents' needs at least 2 frames per clip, got {latents.shape[1]}")
    if latents.dtype.kind != "f":
        raise ValueError(f"field 'latents' must be floating point, got dtype {latents.dtype}")
    return Scores(group=group, loss=loss.astype(np.float64, copy=False), latents=latents)


def save_scores(path: str | Path, group: np.ndarray, loss: np.ndarray, latents: np.ndarray) -> Path:
    """Validate, then write `S.npz` (uncompressed: latents barely compress)."""
    scores = check_scores(group, loss, latents)
    path = Path(path)
    with path.open("wb") as fh:
        np.savez(fh, group=scores.group, loss=scores.loss, latents=scores.latents)
    return path


def load_scores(path: str | Path) -> Scores:
    """Read and validate `S.npz`; errors name the missing or mis-shaped field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scores file not found: {path}")
    with np.load(path, allow_pickle=False) as npz:
        missing = [name for name in SCORE_FIELDS if name not in npz.files]
        if missing:
            raise ValueError(f"{path}: missing field(s) {', '.join(repr(m) for m in missing)}")
        arrays = {name: npz[name] for name in SCORE_FIELDS}
    try:
        return check_scores(**arrays)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc

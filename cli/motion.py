"""`ctrlgenaug motion ...`: motion fields from H.264 codec motion vectors (paper §3.3)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    import numpy as np

motion_app = typer.Typer(
    help="Motion fields from codec motion vectors (the sequential condition).", no_args_is_help=True
)


def _load_source(path: Path) -> Path | np.ndarray:
    """A clip `.npz` (key `frames`) or `.npy` becomes its uint8 frames; any other file is read as a video."""
    import numpy as np

    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if "frames" not in archive.files:
                raise typer.BadParameter(
                    f"{path} has no 'frames' array (keys: {archive.files})", param_hint="INPUT"
                )
            return archive["frames"]
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    return path


@motion_app.command("extract")
def extract(
    source: Path = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        metavar="INPUT",
        help="video file (H.264 used as is, others re-encoded) or clip .npz/.npy",
    ),
    out: Path = typer.Option(..., "--out", help="output .npz; holds `field` float32 (F, 2, H, W)"),
    max_frames: int | None = typer.Option(
        None, "--max-frames", min=1, help="keep the first N decoded frames"
    ),
    height: int | None = typer.Option(None, "--height", min=1, help="resize the field to this height"),
    width: int | None = typer.Option(None, "--width", min=1, help="resize the field to this width"),
    crf: int = typer.Option(18, "--crf", min=0, max=51, help="libx264 CRF when the input must be encoded"),
) -> None:
    """Extract the dense motion field of INPUT (dx, dy in pixels; frame 0 is zero)."""
    import numpy as np

    from generator.motion import H264Settings, extract_motion_field, resize_motion_field
    from ingest.npz import save_npz

    if out.suffix != ".npz":
        raise typer.BadParameter(f"--out must end with .npz, got {out.name}", param_hint="--out")
    if (height is None) != (width is None):
        raise typer.BadParameter("give both --height and --width, or neither", param_hint="--height/--width")
    try:
        field = extract_motion_field(
            _load_source(source), max_frames=max_frames, settings=H264Settings(crf=crf)
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="INPUT") from exc
    if height is not None and width is not None:
        field = resize_motion_field(field, (height, width))
    digest = save_npz(out, field=field)
    magnitude = float(np.linalg.norm(field, axis=1).mean())
    typer.echo(f"field {tuple(field.shape)} mean |v| {magnitude:.3f} px -> {out} (sha256 {digest})")


def register(app: typer.Typer) -> None:
    app.add_typer(motion_app, name="motion")

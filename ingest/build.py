"""`build_dataset`: labelled inputs → clips, patient-level split, manifest, motion cache, report."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from ingest.clipmaker import Clip, ClipOptions, make_clips
from ingest.errors import IngestError
from ingest.intensity import WindowSpec, default_window
from ingest.labels import LabelRow, read_labels
from ingest.manifest import CLASSES_NAME, MANIFEST_NAME, REPORT_NAME, ClipRecord, write_manifest
from ingest.motion_cache import cache_motion
from ingest.npz import save_npz
from ingest.readers import read_source
from ingest.sources import Rejected, resolve_sources
from ingest.split import SplitItem, assign_splits

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class BuildSettings(BaseModel):
    """Clip making (paper §4.1: non-overlapping 8-frame clips, 256×256) and split settings."""

    frames: int = Field(default=8, ge=1, description="frames (or slices) per clip")
    stride: int = Field(default=1, ge=1, description="take every `stride`-th frame/slice within a clip")
    size: int = Field(default=256, ge=8, description="clips are size×size (centred square crop, then resize)")
    window: str = Field(
        default="auto",
        description="'auto' (CT: ct:-1000,400, else percentile:1,99), 'ct:L,H' or 'percentile:L,H'",
    )
    axis: int = Field(default=2, ge=0, le=2, description="slice axis of volumes in RAS order (2 = axial)")
    test_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    seed: int = 0
    motion: bool = True
    pathway_m: int = Field(default=8, ge=1, description="MFA down-sampling m of the cached pathways (§3.4)")

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        return value if value == "auto" else str(WindowSpec.parse(value))


@dataclass(frozen=True)
class _PendingClip:
    clip_id: str
    path: str
    sha256: str
    row: LabelRow
    part: str
    start: int
    stride: int
    window: str
    modality: str | None
    shape: tuple[int, int, int]


class BuildReport(BaseModel):
    sources_read: int
    clips: int
    rejected: list[dict[str, str]]
    unlabelled: list[str]
    clips_per_class: dict[str, int]
    clips_per_split: dict[str, int]
    patients_per_split: dict[str, int]
    time_split_patients: list[str]
    motion: Literal["off", "field", "field+pathways"]
    manifest_sha256: str
    settings: BuildSettings


def _clip_id(source: str, part: str, start: int) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", source).strip("_")[:48] or "source"
    digest = hashlib.sha256(source.encode()).hexdigest()[:8]
    return f"{slug}-{digest}{'-' + part if part else ''}-f{start:05d}"


def _window_for(row: LabelRow, settings: BuildSettings, modality: str | None) -> WindowSpec:
    if row.window:
        return WindowSpec.parse(row.window)
    if settings.window != "auto":
        return WindowSpec.parse(settings.window)
    return default_window(modality)


def _clips_of_source(row: LabelRow, path: Path, settings: BuildSettings, out_dir: Path) -> list[_PendingClip]:
    """All clips of one source, written only once every sequence of it has been cut (no orphans)."""
    stride = row.stride or settings.stride
    sequences = read_source(path, row.axis if row.axis is not None else settings.axis)
    cut: list[tuple[str, str | None, str, Clip]] = []
    for sequence in sequences:
        modality = row.modality or sequence.modality
        window = _window_for(row, settings, modality)
        try:
            clips = make_clips(sequence, ClipOptions(settings.frames, stride, settings.size, window, row.roi))
        except ValueError as exc:
            raise IngestError(path.name, str(exc)) from exc
        if not clips:
            span = (settings.frames - 1) * stride + 1
            raise IngestError(
                path.name,
                f"{sequence.frames.shape[0]} frames/slices: one clip of {settings.frames}"
                f" at stride {stride} needs {span}",
            )
        cut.extend((sequence.part, modality, str(window), clip) for clip in clips)
    pending = []
    for part, modality, window_text, clip in cut:
        clip_id = _clip_id(row.source, part, clip.start)
        relative = f"clips/{clip_id}.npz"
        digest = save_npz(out_dir / relative, frames=clip.frames)
        pending.append(
            _PendingClip(
                clip_id,
                relative,
                digest,
                row,
                part,
                clip.start,
                stride,
                window_text,
                modality,
                clip.frames.shape,
            )
        )
    return pending


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    previous = [out_dir / n for n in (MANIFEST_NAME, CLASSES_NAME, REPORT_NAME, "clips", "motion")]
    if any(p.exists() for p in previous):
        if not overwrite:
            raise ValueError(
                f"{out_dir} already holds a clip set; pass overwrite (--overwrite) to replace it"
            )
        for p in previous:
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def _records(pending: list[_PendingClip], settings: BuildSettings) -> list[ClipRecord]:
    class_names = sorted({p.row.class_name for p in pending})
    items = [SplitItem(p.row.patient_id, p.row.class_name, (p.row.source, p.part, p.start)) for p in pending]
    assignments = assign_splits(items, settings.test_fraction, settings.seed)
    return [
        ClipRecord(
            clip_id=p.clip_id,
            path=p.path,
            sha256=p.sha256,
            class_name=p.row.class_name,
            class_index=class_names.index(p.row.class_name),
            text=p.row.text,
            patient_id=p.row.patient_id,
            split=a.split,
            source=p.row.source,
            frames=p.shape[0],
            height=p.shape[1],
            width=p.shape[2],
            modality=p.modality,
            split_by=a.split_by,
            source_part=p.part,
            start_frame=p.start,
            stride=p.stride,
            window=p.window,
        )
        for p, a in zip(pending, assignments, strict=True)
    ]


def build_dataset(
    inputs: list[Path],
    labels: Path,
    out_dir: Path,
    settings: BuildSettings | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> BuildReport:
    """Build `out_dir` (manifest.jsonl, classes.json, report.json, clips/, motion/).

    An input that cannot be read is listed in the report with its reason and the build goes on.
    """
    settings = settings or BuildSettings()
    rows = read_labels(labels)
    resolved = resolve_sources(inputs, rows)
    _prepare_out_dir(out_dir, overwrite)
    rejected = list(resolved.rejected)
    pending: list[_PendingClip] = []
    for done, (row, path) in enumerate(resolved.found, start=1):
        try:
            pending.extend(_clips_of_source(row, path, settings, out_dir))
        except IngestError as exc:
            rejected.append(Rejected(row.source, exc.reason))
        except Exception as exc:  # one broken input must not stop the build; its reason is reported
            rejected.append(Rejected(row.source, f"{type(exc).__name__}: {exc}"))
        if progress is not None:
            progress("read", done, len(resolved.found))
    records = _records(pending, settings)
    motion: Literal["off", "field", "field+pathways"] = "off"
    if settings.motion and records:
        stage_progress = (lambda d, t: progress("motion", d, t)) if progress is not None else None
        records, with_pathways = cache_motion(
            out_dir, records, settings.seed, settings.pathway_m, stage_progress
        )
        motion = "field+pathways" if with_pathways else "field"
    manifest_sha256 = write_manifest(out_dir / MANIFEST_NAME, records)
    class_names = sorted({r.class_name for r in records})
    (out_dir / CLASSES_NAME).write_text(json.dumps({"class_names": class_names}, indent=2) + "\n")
    report = BuildReport(
        sources_read=len({p.row.source for p in pending}),
        clips=len(records),
        rejected=[asdict(r) for r in rejected],
        unlabelled=resolved.unlabelled,
        clips_per_class=dict(sorted(Counter(r.class_name for r in records).items())),
        clips_per_split=dict(sorted(Counter(r.split for r in records).items())),
        patients_per_split={
            split: len({r.patient_id for r in records if r.split == split}) for split in ("train", "test")
        },
        time_split_patients=sorted({r.patient_id for r in records if r.split_by == "time"}),
        motion=motion,
        manifest_sha256=manifest_sha256,
        settings=settings,
    )
    (out_dir / REPORT_NAME).write_text(report.model_dump_json(indent=2) + "\n")
    return report

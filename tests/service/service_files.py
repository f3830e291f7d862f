"""Helpers of the service tests: upload files (valid and hostile: bombs, truncations, lies, pickles),
row counts and bucket listings."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from pydicom.data import get_testdata_file
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from store.models import Base
from store.objects import ObjectStore


def png(height: int = 32, width: int = 32, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def decompression_bomb_png(side: int = 10_000) -> bytes:
    """A valid 1-bit PNG of side×side zero pixels: a few KB that decode to side² pixels."""
    row = b"\x00" + bytes(side // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def dicom_bytes(name: str = "CT_small.dcm") -> bytes:
    with open(get_testdata_file(name), "rb") as fh:  # type: ignore[arg-type]
        return fh.read()


def truncated_dicom() -> bytes:
    data = dicom_bytes()
    return data[: len(data) - 4096]


def nifti(shape: tuple[int, ...] = (32, 32, 8)) -> bytes:
    volume = np.random.default_rng(0).integers(0, 1000, shape).astype(np.int16)
    return nib.Nifti1Image(volume, np.eye(4)).to_bytes()


def nifti_with_lying_header() -> bytes:
    """The header claims 64×64×64 int16 voxels; the file holds the data of 32×32×8."""
    image = nib.Nifti1Image(np.zeros((32, 32, 8), dtype=np.int16), np.eye(4))
    header = image.header.copy()
    header.set_data_shape((64, 64, 64))
    data = image.to_bytes()
    return header.binaryblock + data[len(header.binaryblock) :]


def pickled_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"exploit": "os.system"}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def moving_square_frames(frames: int = 8, size: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clip = rng.integers(0, 40, (frames, size, size)).astype(np.uint8)
    for t in range(frames):
        clip[t, 8:16, 4 + 2 * t : 12 + 2 * t] = 220
    return clip


def clip_npz(frames: int = 8, size: int = 32, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, frames=moving_square_frames(frames, size, seed))
    return buffer.getvalue()


def row_counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        return {
            t.name: session.scalar(select(func.count()).select_from(t)) or 0
            for t in Base.metadata.sorted_tables
        }


def bucket_keys(store: ObjectStore) -> list[str]:
    return sorted(info.key for info in store.list())


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


CPU_EXECUTION = {"device": "cpu", "precision": "fp32", "cast_unet": False, "torch": "2.14.1"}
GPU_EXECUTION = {"device": "NVIDIA H200", "precision": "bf16", "cast_unet": True, "torch": "2.11.0"}


def write_clips_as_the_worker_does(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    job_id: str,
    kept: list[bool],
    with_previews: bool = True,
    resumed_at: int | None = None,
) -> None:
    """What worker/ records for a finished job: one NPZ (+ preview) per clip, its row, its filter decision.

    Clips are computed as `CPU_EXECUTION`, from clip `resumed_at` on as `GPU_EXECUTION` (a job resumed by
    another worker)."""
    import uuid

    from store.jobs import clip_object_key, clip_preview_key, clip_seed, upsert_clip
    from store.models import Job, JobStatus

    with sessions() as session:
        job = session.get_one(Job, uuid.UUID(job_id))
        slots = [(bank, i) for bank in job.banks for i in range(bank.samples)]
        assert len(slots) == len(kept)
        for n, ((bank, i), keep) in enumerate(zip(slots, kept, strict=True)):
            seed = clip_seed(job.seed, bank.index, i)
            data = npz_bytes(frames=moving_square_frames(8, 32, seed=seed % 1000))
            info = store.put(clip_object_key(job.id, bank.index, i), data)
            preview = None
            if with_previews:
                preview = store.put(
                    clip_preview_key(job.id, bank.index, i, "gif"), b"GIF89a" + bytes([n])
                ).key
            upsert_clip(
                session,
                job_id=job.id,
                bank_id=bank.id,
                index_in_bank=i,
                seed=seed,
                object_key=info.key,
                sha256=info.sha256,
                size_bytes=info.size,
                preview_key=preview,
                kept=keep,
                reason=None if keep else "duplicate",
                loss=0.1 * n,
                group_threshold=0.5,
                vae_seq=0.9,
                theta=0.5,
                execution=GPU_EXECUTION if resumed_at is not None and n >= resumed_at else CPU_EXECUTION,
            )
        job.status = JobStatus.succeeded
        job.clips_kept = sum(kept)
        job.band_low, job.band_high = 0.8, 0.95
        session.commit()


def data_build_zip(root: Path, wrong_checksum: str | None = None) -> bytes:
    """A data build (ingest's layout) with 3 training clips (2 × class_0, 1 × class_1) and 1 test clip;
    `wrong_checksum` names a clip whose manifest SHA-256 is wrong."""
    import hashlib
    import json
    import zipfile

    lines = []
    specs = [
        ("c0a", "class_0", 0, "train"),
        ("c0b", "class_0", 0, "train"),
        ("c1a", "class_1", 1, "train"),
        ("c1t", "class_1", 1, "test"),
    ]
    for i, (clip_id, name, index, split) in enumerate(specs):
        path = root / "clips" / f"{clip_id}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, frames=moving_square_frames(8, 32, seed=i))
        lines.append(
            {
                "clip_id": clip_id,
                "path": f"clips/{clip_id}.npz",
                "sha256": "0" * 64
                if clip_id == wrong_checksum
                else hashlib.sha256(path.read_bytes()).hexdigest(),
                "class_name": name,
                "class_index": index,
                "text": f"{name} clip",
                "patient_id": f"p{i}",
                "split": split,
                "source": "synthetic-test",
                "frames": 8,
                "height": 32,
                "width": 32,
                "modality": "US",
            }
        )
    cached = root / "motion" / "c0a.npz"
    cached.parent.mkdir()
    np.savez(cached, field=np.full((8, 2, 32, 32), 0.25, dtype=np.float32))
    (root / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in root.rglob("*"):
            if path.is_file():
                archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()

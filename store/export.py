"""The downloadable database of a job: kept clips (+ previews), `manifest.csv` and `croissant.json`, as a
streamed ZIP; and its verification (`ctrlgenaug verify DB.zip`)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.database_terms import cite_as, date_published, license_text, reference_checks
from store.jobs import database_object_key
from store.models import Bank, Clip, Dataset, Job
from store.nifti import NIFTI_EXTENSION, clip_nifti_bytes, nifti_source_sha256
from store.objects import ObjectInfo, ObjectNotFound, ObjectStore
from store.provenance import software_version

MANIFEST_NAME = "manifest.csv"
CROISSANT_NAME = "croissant.json"
MANIFEST_COLUMNS = (
    "path",
    "clip_id",
    "sha256",
    "bytes",
    "class",
    "class_index",
    "source_clip_id",
    "source_patient_id",
    "bank",
    "index_in_bank",
    "seed",
    "loss",
    "group_threshold",
    "vae_seq",
    "theta",
    "real_distance",
    "memorised",
    "off_manifold",
    "preview",
    "preview_sha256",
)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

CROISSANT_CONTEXT = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/",
    "dct": "http://purl.org/dc/terms/",
    "ctrlgenaug": "urn:ctrlgenaug:",
    "conformsTo": "dct:conformsTo",
    "column": "cr:column",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "includes": "cr:includes",
    "key": "cr:key",
    "recordSet": "cr:recordSet",
    "source": "cr:source",
}
_TEXT_COLUMNS = {
    "path",
    "clip_id",
    "sha256",
    "class",
    "source_clip_id",
    "source_patient_id",
    "preview",
    "preview_sha256",
}
_INTEGER_COLUMNS = {"bytes", "class_index", "bank", "index_in_bank", "seed"}
# the reference checks' verdicts (issue 17): "true" / "false", empty when the check did not run
_BOOLEAN_COLUMNS = {"memorised", "off_manifold"}


@dataclass(frozen=True)
class ClipFormat:
    """How the database holds its clips: the stored NPZ as is, or converted (`convert(npz, sha256)`)."""

    name: str
    extension: str
    encoding_format: str
    convert: Callable[[bytes, str], bytes] | None = None


ClipFormatName = Literal["npz", "nifti"]
NPZ = ClipFormat("npz", "npz", "application/x-npz")
NIFTI = ClipFormat("nifti", NIFTI_EXTENSION, "application/x-nifti", clip_nifti_bytes)
CLIP_FORMATS: dict[str, ClipFormat] = {clip_format.name: clip_format for clip_format in (NPZ, NIFTI)}


class _ChunkSink(io.RawIOBase):
    """A write-only, unseekable file whose written bytes are drained as chunks (zipfile streams into it)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._chunks.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def drain(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def _clip_path(bank_index: int, index_in_bank: int, extension: str) -> str:
    return f"clips/bank-{bank_index:04d}/clip-{index_in_bank:04d}.{extension}"


def _preview_path(bank_index: int, index_in_bank: int, extension: str) -> str:
    return f"previews/bank-{bank_index:04d}/clip-{index_in_bank:04d}.{extension}"


def kept_clips(session: Session, job: Job) -> list[Clip]:
    return list(
        session.scalars(
            select(Clip)
            .join(Bank)
            .where(Clip.job_id == job.id, Clip.kept.is_(True))
            .order_by(Bank.index, Clip.index_in_bank)
        )
    )


def source_patients(session: Session, job: Job) -> dict[str, str]:
    """The patient of each training clip of the dataset a `banks_from` job drew its banks from (a clip whose
    manifest named no patient counts as its own); empty for other jobs or when the dataset is gone."""
    source = job.request.get("banks_from")
    if not source:
        return {}
    query = select(Dataset).where(Dataset.project_id == job.project_id)
    try:
        query = query.where(Dataset.id == uuid.UUID(source["dataset"]))
    except ValueError:
        query = query.where(Dataset.name == source["dataset"])
    dataset = session.scalar(query)
    if dataset is None:
        return {}
    return {clip.clip_id: clip.patient_id or clip.clip_id for clip in dataset.clips}


def manifest_row(clip: Clip, patients: dict[str, str], clip_format: ClipFormat = NPZ) -> dict[str, Any]:
    """One manifest.csv row; `source_clip_id` / `source_patient_id` (empty unless the bank came from a real
    training clip) let a classifier's cross-validation keep a patient's real and synthetic clips together."""
    bank = clip.bank
    preview = ""
    if clip.preview_key:
        preview = _preview_path(bank.index, clip.index_in_bank, clip.preview_key.rsplit(".", 1)[-1])
    source_clip_id = bank.source_clip_id or ""
    return {
        "path": _clip_path(bank.index, clip.index_in_bank, clip_format.extension),
        "clip_id": str(clip.id),
        "sha256": clip.sha256,
        "bytes": clip.size_bytes,
        "class": bank.class_label or "",
        "class_index": -1 if bank.class_index is None else bank.class_index,
        "source_clip_id": source_clip_id,
        "source_patient_id": patients.get(source_clip_id, source_clip_id),
        "bank": bank.index,
        "index_in_bank": clip.index_in_bank,
        "seed": clip.seed,
        "loss": clip.loss,
        "group_threshold": clip.group_threshold,
        "vae_seq": clip.vae_seq,
        "theta": clip.theta,
        "real_distance": clip.real_distance,
        "memorised": _verdict(clip.memorised),
        "off_manifold": _verdict(clip.off_manifold),
        "preview": preview,
        "preview_sha256": "",
    }


def manifest_csv(rows: list[dict[str, Any]]) -> bytes:
    # RFC 4180 line ends: the csv module quotes only fields holding a character of the line terminator,
    # so with "\n" alone a class name holding "\r" would be written bare and read back broken.
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=MANIFEST_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _verdict(value: bool | None) -> str:
    return "" if value is None else str(value).lower()


def _data_type(column: str) -> str:
    if column in _TEXT_COLUMNS:
        return "sc:Text"
    if column in _BOOLEAN_COLUMNS:
        return "sc:Boolean"
    return "sc:Integer" if column in _INTEGER_COLUMNS else "sc:Float"


def distinct_executions(clips: list[Clip]) -> list[dict[str, Any]]:
    """The clips' execution records, each once, in first-seen order: one, unless the job was resumed by a
    worker that computes differently (another GPU, precision or library version)."""
    found: list[dict[str, Any]] = []
    for clip in clips:
        if clip.execution is not None and clip.execution not in found:
            found.append(clip.execution)
    return found


def croissant_metadata(
    job: Job,
    rows: list[dict[str, Any]],
    manifest_bytes: bytes,
    executions: list[dict[str, Any]],
    clip_format: ClipFormat = NPZ,
) -> dict[str, Any]:
    """Croissant 1.0 JSON-LD: the manifest as a FileObject, the clips as a FileSet, records inline."""
    model = job.model
    return {
        "@context": CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": "http://mlcommons.org/croissant/1.0",
        "name": f"ctrlgenaug-job-{job.id}",
        "description": (
            f"Synthetic sequences generated by {model.name} {model.version} and filtered with the noisy "
            "synthetic data filter (Ctrl-GenAug, Algorithm 1)."
        ),
        "version": software_version(),
        "license": license_text(job),
        "datePublished": date_published(job),
        "citeAs": cite_as(job),
        "distribution": [
            {
                "@type": "cr:FileObject",
                "@id": MANIFEST_NAME,
                "name": MANIFEST_NAME,
                "contentUrl": MANIFEST_NAME,
                "encodingFormat": "text/csv",
                "sha256": hashlib.sha256(manifest_bytes).hexdigest(),
            },
            {
                "@type": "cr:FileSet",
                "@id": "clip-files",
                "name": "clip-files",
                "encodingFormat": clip_format.encoding_format,
                "includes": f"clips/*/*.{clip_format.extension}",
            },
        ],
        "recordSet": [
            {
                "@type": "cr:RecordSet",
                "@id": "clips",
                "name": "clips",
                "key": {"@id": "clips/clip_id"},
                "field": [
                    {
                        "@type": "cr:Field",
                        "@id": f"clips/{column}",
                        "name": column,
                        "dataType": _data_type(column),
                        "source": {"fileObject": {"@id": MANIFEST_NAME}, "extract": {"column": column}},
                    }
                    for column in MANIFEST_COLUMNS
                ],
                "data": [{f"clips/{k}": v for k, v in row.items()} for row in rows],
            }
        ],
        "ctrlgenaug:model": {"name": model.name, "version": model.version, "checksum": model.checksum},
        "ctrlgenaug:jobId": str(job.id),
        "ctrlgenaug:seed": job.seed,
        "ctrlgenaug:sampler": job.sampler,
        "ctrlgenaug:executions": executions,
        "ctrlgenaug:filterSettings": job.filter_settings,
        "ctrlgenaug:consistencyBand": None if job.band_low is None else [job.band_low, job.band_high],
        "ctrlgenaug:referenceChecks": reference_checks(job),
    }


def iter_database_zip(
    session: Session, store: ObjectStore, job: Job, clip_format: ClipFormat = NPZ
) -> Iterator[bytes]:
    """Stream the ZIP chunk by chunk; each clip is checked against its recorded SHA-256 on the way (and
    converted to `clip_format`), each preview is hashed on the way into its manifest row (written last)."""
    clips = kept_clips(session, job)
    patients = source_patients(session, job)
    rows = [manifest_row(clip, patients, clip_format) for clip in clips]
    sink = _ChunkSink()
    with zipfile.ZipFile(sink, mode="w", allowZip64=True) as archive:
        for clip, row in zip(clips, rows, strict=True):
            if clip_format.convert is None:
                yield from _stream_member(
                    archive, sink, store, clip.object_key, row["path"], expected_sha256=clip.sha256
                )
            else:
                converted = clip_format.convert(_checked_object(store, clip), clip.sha256)
                row["sha256"], row["bytes"] = hashlib.sha256(converted).hexdigest(), len(converted)
                yield from _write_member(archive, sink, row["path"], converted)
            if row["preview"]:
                row["preview_sha256"] = yield from _stream_member(
                    archive, sink, store, clip.preview_key or "", row["preview"]
                )
        manifest_bytes = manifest_csv(rows)
        metadata = croissant_metadata(job, rows, manifest_bytes, distinct_executions(clips), clip_format)
        croissant = json.dumps(metadata, indent=2).encode()
        for name, data in ((MANIFEST_NAME, manifest_bytes), (CROISSANT_NAME, croissant)):
            yield from _write_member(archive, sink, name, data, zipfile.ZIP_DEFLATED)
    yield sink.drain()


def _checked_object(store: ObjectStore, clip: Clip) -> bytes:
    data = store.get(clip.object_key)
    if hashlib.sha256(data).hexdigest() != clip.sha256:
        raise ValueError(f"object {clip.object_key}: SHA-256 differs from the recorded {clip.sha256}")
    return data


def _write_member(
    archive: zipfile.ZipFile, sink: _ChunkSink, name: str, data: bytes, compression: int = zipfile.ZIP_STORED
) -> Iterator[bytes]:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = compression
    archive.writestr(info, data)
    yield sink.drain()


def _stream_member(
    archive: zipfile.ZipFile,
    sink: _ChunkSink,
    store: ObjectStore,
    key: str,
    name: str,
    expected_sha256: str | None = None,
) -> Generator[bytes, None, str]:
    """Stream one stored object into the archive; returns its SHA-256."""
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED
    digest = hashlib.sha256()
    with archive.open(info, mode="w", force_zip64=True) as member:
        for chunk in store.iter_chunks(key):
            digest.update(chunk)
            member.write(chunk)
            yield sink.drain()
    if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
        raise ValueError(
            f"object {key}: SHA-256 {digest.hexdigest()} differs from the recorded {expected_sha256}"
        )
    yield sink.drain()
    return digest.hexdigest()


def _write_database(session: Session, store: ObjectStore, job: Job, clip_format: ClipFormat) -> ObjectInfo:
    with tempfile.TemporaryFile() as spool:
        for chunk in iter_database_zip(session, store, job, clip_format):
            spool.write(chunk)
        spool.seek(0)
        key = database_object_key(job.id, clip_format.name)
        return store.put(key, spool, content_type="application/zip")


def export_database(session: Session, store: ObjectStore, job: Job) -> ObjectInfo:
    """Write the job's database ZIP to object storage and record it on the job (the caller commits)."""
    info = _write_database(session, store, job, NPZ)
    job.database_object_key = info.key
    job.database_sha256 = info.sha256
    job.database_size_bytes = info.size
    return info


def database_in_format(session: Session, store: ObjectStore, job: Job, clip_format: ClipFormat) -> ObjectInfo:
    """The exported database (`job.database_object_key` set) with its clips in `clip_format`: the NPZ
    database as recorded, another format converted from it at its first request and kept beside it."""
    assert job.database_object_key is not None
    if clip_format == NPZ:
        return ObjectInfo(job.database_object_key, job.database_size_bytes or 0, job.database_sha256)
    try:
        return store.stat(database_object_key(job.id, clip_format.name))
    except ObjectNotFound:
        return _write_database(session, store, job, clip_format)


@dataclass
class VerificationReport:
    files_checked: int = 0
    previews_checked: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


ProvenanceLookup = Callable[[str], dict[str, Any] | None]


def _unsafe_name(name: str) -> bool:
    """Absolute (POSIX, Windows drive or UNC) or climbing out with `..`: never part of a database."""
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts


def _archive_files(archive: zipfile.ZipFile, report: VerificationReport) -> dict[str, zipfile.ZipInfo]:
    """The archive's files by name. Folder entries (a database unzipped and zipped again) hold nothing and are
    skipped; unsafe names, duplicate names and folder entries holding bytes are reported."""
    files: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename
        if _unsafe_name(name):
            report.errors.append(f"{name}: absolute or '..' path in the archive")
        elif info.is_dir():
            if info.file_size:
                report.errors.append(f"{name}: folder entry holding {info.file_size} bytes")
        elif name in files:
            report.errors.append(f"{name}: in the archive more than once")
        else:
            files[name] = info
    return files


def _database_root(files: dict[str, zipfile.ZipInfo]) -> str | None:
    """The prefix of the database's files: empty when manifest.csv sits at the top, "<folder>/" when it sits
    in one top-level folder (a database unzipped into a folder and zipped again), None when it is missing."""
    if MANIFEST_NAME in files:
        return ""
    inside = [name for name in files if name.count("/") == 1 and name.endswith("/" + MANIFEST_NAME)]
    return inside[0][: -len(MANIFEST_NAME)] if len(inside) == 1 else None


def verify_database_zip(path: Path, provenance_lookup: ProvenanceLookup | None = None) -> VerificationReport:
    """Check every file against manifest.csv (clips and previews by SHA-256; any file the manifest does not
    list fails, wherever it is), manifest.csv against croissant.json, and (optionally) every clip's checksum
    against the provenance record the service holds (`provenance_lookup(clip_id)`)."""
    report = VerificationReport()
    with zipfile.ZipFile(path) as archive:
        files = _archive_files(archive, report)
        root = _database_root(files)
        if root is None:
            report.errors.append(f"{MANIFEST_NAME}: missing from the archive")
            return report
        if root + CROISSANT_NAME not in files:
            report.errors.append(f"{CROISSANT_NAME}: missing from the archive")
            return report
        manifest_bytes = archive.read(files[root + MANIFEST_NAME])
        # A damaged manifest or metadata file is a finding of the verification, not a crash of it.
        try:
            rows = list(csv.DictReader(io.StringIO(manifest_bytes.decode())))
        except (UnicodeDecodeError, csv.Error) as exc:
            report.errors.append(f"{MANIFEST_NAME}: unreadable ({exc})")
            return report
        try:
            croissant = json.loads(archive.read(files[root + CROISSANT_NAME]))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            report.errors.append(f"{CROISSANT_NAME}: unreadable ({exc})")
            croissant = {}
        _check_croissant(croissant, manifest_bytes, rows, report)
        listed = {root + MANIFEST_NAME, root + CROISSANT_NAME}
        for number, row in enumerate(rows, start=2):
            try:
                size = int(row["bytes"])
                member, sha256, preview = row["path"], row["sha256"], row["preview"]
            except (KeyError, TypeError, ValueError) as exc:
                report.errors.append(f"{MANIFEST_NAME} row {number}: malformed ({exc!r})")
                continue
            listed.add(root + member)
            if _check_member(archive, files, root + member, sha256, size, report):
                report.files_checked += 1
            if preview:
                listed.add(root + preview)
                preview_sha256 = row.get("preview_sha256") or ""
                if not preview_sha256:
                    report.errors.append(f"{preview}: {MANIFEST_NAME} row {number} has no preview_sha256")
                elif _check_member(archive, files, root + preview, preview_sha256, None, report):
                    report.previews_checked += 1
            if provenance_lookup is not None:
                source_sha256 = None
                if member.endswith(f".{NIFTI_EXTENSION}") and root + member in files:
                    source_sha256 = nifti_source_sha256(archive.read(files[root + member])) or ""
                _check_provenance(row, provenance_lookup(row["clip_id"]), report, source_sha256)
        for extra in sorted(set(files) - listed):
            report.errors.append(f"{extra}: in the archive but not in {MANIFEST_NAME}")
    return report


def _check_member(
    archive: zipfile.ZipFile,
    files: dict[str, zipfile.ZipInfo],
    name: str,
    sha256: str,
    size: int | None,
    report: VerificationReport,
) -> bool:
    """Hash one listed file; False when it is missing."""
    if name not in files:
        report.errors.append(f"{name}: listed in {MANIFEST_NAME} but missing")
        return False
    digest = hashlib.sha256()
    read = 0
    with archive.open(files[name]) as member:
        while chunk := member.read(1024 * 1024):
            digest.update(chunk)
            read += len(chunk)
    if digest.hexdigest() != sha256:
        report.errors.append(f"{name}: SHA-256 {digest.hexdigest()} does not match the manifest's {sha256}")
    if size is not None and read != size:
        report.errors.append(f"{name}: {read} bytes, the manifest says {size}")
    return True


def _check_croissant(
    croissant: dict[str, Any], manifest_bytes: bytes, rows: list[dict[str, str]], report: VerificationReport
) -> None:
    files = {d.get("@id"): d for d in croissant.get("distribution", [])}
    declared = files.get(MANIFEST_NAME, {}).get("sha256")
    if declared != hashlib.sha256(manifest_bytes).hexdigest():
        report.errors.append(f"{MANIFEST_NAME}: SHA-256 does not match the one in {CROISSANT_NAME}")
    record_sets = {r.get("@id"): r for r in croissant.get("recordSet", [])}
    records = record_sets.get("clips", {}).get("data", [])
    declared_pairs = {(r.get("clips/path"), r.get("clips/sha256")) for r in records}
    manifest_pairs = {(row["path"], row["sha256"]) for row in rows}
    if declared_pairs != manifest_pairs:
        report.errors.append(f"{CROISSANT_NAME}: its records differ from {MANIFEST_NAME}")


def _check_provenance(
    row: dict[str, str],
    provenance: dict[str, Any] | None,
    report: VerificationReport,
    source_sha256: str | None = None,
) -> None:
    """The clip against the service's record: its checksum and size, or for a converted clip (NIfTI) the
    checksum of the clip it was converted from (`source_sha256`, from its header)."""
    if provenance is None:
        report.errors.append(f"{row['path']}: clip {row['clip_id']} is unknown to the service")
        return
    recorded = provenance["clip"]
    if source_sha256 is None:
        differs = recorded["sha256"] != row["sha256"] or int(recorded["size_bytes"]) != int(row["bytes"])
    else:
        differs = recorded["sha256"] != source_sha256
    if differs:
        report.errors.append(
            f"{row['path']}: differs from the service's provenance record of clip {row['clip_id']}"
        )


def manifest_clip_ids(path: Path) -> list[str]:
    """The clip ids manifest.csv lists, to look their provenance up before verifying (empty when the manifest
    is missing or unreadable: the verification reports that)."""
    with zipfile.ZipFile(path) as archive:
        files = _archive_files(archive, VerificationReport())
        root = _database_root(files)
        if root is None:
            return []
        try:
            rows = list(csv.DictReader(io.StringIO(archive.read(files[root + MANIFEST_NAME]).decode())))
        except (UnicodeDecodeError, csv.Error):
            return []
    return [row.get("clip_id") or "" for row in rows]

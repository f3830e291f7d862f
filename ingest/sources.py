"""Match label rows to input files/folders; list missing labelled sources and unlabelled inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ingest.labels import LabelRow
from ingest.readers import has_known_suffix


@dataclass(frozen=True)
class Rejected:
    source: str
    reason: str


@dataclass(frozen=True)
class ResolvedSources:
    found: list[tuple[LabelRow, Path]]
    rejected: list[Rejected]
    unlabelled: list[str]


def _candidates(row: LabelRow, inputs: list[Path]) -> set[Path]:
    found = set()
    for given in inputs:
        if given.is_dir():
            root = given.resolve()
            target = (root / row.source).resolve()
            if target.is_relative_to(root) and target.exists():
                found.add(target)
        elif row.source in (given.name, given.as_posix(), str(given)):
            found.add(given.resolve())
    return found


def resolve_sources(inputs: list[Path], rows: list[LabelRow]) -> ResolvedSources:
    """A row's `source` is a path relative to an inputs folder, or the name/path of an input file."""
    for given in inputs:
        if not given.exists():
            raise ValueError(f"--inputs {given}: no such file or folder")
    found: list[tuple[LabelRow, Path]] = []
    rejected: list[Rejected] = []
    for row in rows:
        candidates = _candidates(row, inputs)
        if len(candidates) == 1:
            found.append((row, candidates.pop()))
        elif candidates:
            names = ", ".join(sorted(str(c) for c in candidates))
            rejected.append(Rejected(row.source, f"ambiguous: the source matches {names}"))
        else:
            rejected.append(Rejected(row.source, "labelled but not found under the inputs"))
    used = [path for _, path in found]
    unlabelled = []
    for given in inputs:
        files = sorted(given.rglob("*")) if given.is_dir() else [given]
        for file in files:
            resolved = file.resolve()
            if (
                file.is_file()
                and has_known_suffix(file)
                and not any(resolved == u or resolved.is_relative_to(u) for u in used)
            ):
                unlabelled.append(file.relative_to(given).as_posix() if given.is_dir() else file.name)
    return ResolvedSources(found, rejected, unlabelled)

"""A model directory's card file name and its checksum, as the generator writes them and the store registers
and verifies them."""

from __future__ import annotations

import hashlib
from pathlib import Path

MODEL_CARD = "ctrlgenaug_model.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def model_checksum(model_dir: str | Path) -> str:
    """SHA-256 over the sorted (relative path, file SHA-256) list, as `sha256sum` lines `<sha>  <path>\\n`."""
    root = Path(model_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"model_dir {root} is not a directory")
    listing = sorted(
        (path.relative_to(root).as_posix(), file_sha256(path)) for path in root.rglob("*") if path.is_file()
    )
    return hashlib.sha256("".join(f"{sha}  {rel}\n" for rel, sha in listing).encode()).hexdigest()

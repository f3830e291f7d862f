"""Checkpoint folders: accelerate's state (safetensors weights, optimizer, scheduler, RNG states),
config.json and metadata.json."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from training.config import ConfigError, config_to_dict

CHECKPOINTS_DIR = "checkpoints"
FINAL_DIR = "final"
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")

# Settings that may change between a run and its resumption without changing what is computed.
RESUMABLE_CHANGES = frozenset(
    {
        "output_dir",
        "epochs",
        "max_steps",
        "checkpoint_every",
        "checkpoints_total_limit",
        "log_every",
        "num_workers",
    }
)


def code_version() -> dict[str, str | None]:
    try:
        package = importlib_metadata.version("ctrlgenaug")
    except importlib_metadata.PackageNotFoundError:
        package = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"package_version": package, "git_commit": commit or None}


def write_run_files(
    directory: Path, config: BaseModel, manifest_checksum: str, step: int, **extra: Any
) -> None:
    """`config.json` (the run config) and `metadata.json` (data checksum, code version, step, config)."""
    directory.mkdir(parents=True, exist_ok=True)
    config_dict = config_to_dict(config)
    (directory / CONFIG_FILE).write_text(json.dumps(config_dict, indent=2, sort_keys=True))
    meta = {
        "stage": config_dict.get("stage"),
        "step": step,
        "data_manifest_checksum": manifest_checksum,
        "code_version": code_version(),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": config_dict,
        **extra,
    }
    (directory / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))


def read_metadata(directory: Path) -> dict[str, Any]:
    path = directory / METADATA_FILE
    if not path.is_file():
        raise ConfigError(f"{directory} is not a training checkpoint: {METADATA_FILE} is missing")
    return json.loads(path.read_text())


def checkpoint_dir(output_dir: Path, step: int) -> Path:
    return output_dir / CHECKPOINTS_DIR / f"step-{step:07d}"


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    root = output_dir / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / METADATA_FILE).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(output_dir: Path) -> Path:
    found = list_checkpoints(output_dir)
    if not found:
        raise ConfigError(f"--resume: no checkpoint under {output_dir / CHECKPOINTS_DIR}")
    return found[-1][1]


def prune_checkpoints(output_dir: Path, keep: int | None) -> None:
    if keep is None:
        return
    for _, path in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(path)


def _differences(saved: Any, current: Any, prefix: str = "") -> list[str]:
    if isinstance(saved, dict) and isinstance(current, dict):
        out: list[str] = []
        for key in sorted(set(saved) | set(current)):
            if not prefix and key in RESUMABLE_CHANGES:
                continue
            out += _differences(saved.get(key), current.get(key), f"{prefix}{key}.")
        return out
    return [] if saved == current else [prefix.rstrip(".")]


def check_resumable(directory: Path, config: BaseModel, manifest_checksum: str) -> dict[str, Any]:
    """Refuse to resume with another config or other data: the continuation would not be the same run."""
    meta = read_metadata(directory)
    changed = _differences(meta["config"], config_to_dict(config))
    if changed:
        raise ConfigError(
            f"--resume: {', '.join(changed)} differ from the checkpoint's config in {directory}"
        )
    if meta["data_manifest_checksum"] != manifest_checksum:
        raise ConfigError(
            f"--resume: data.data_dir: the manifest changed since {directory} was written "
            f"({meta['data_manifest_checksum'][:12]} != {manifest_checksum[:12]})"
        )
    return meta

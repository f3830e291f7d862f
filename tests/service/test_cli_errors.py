"""The `ctrlgenaug` command as a user runs it: the embedded default migrates its own database, a server
database that is not migrated is refused with the command to run, and each command given a bad path, a bad
URL, a missing key or a server that is down prints one line naming the problem and the fix, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECRET = {"CTRLGENAUG_SECRET_KEY": "cli-test-secret"}
DOWN = {"CTRLGENAUG_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/ctrlgenaug", **SECRET}


def ctrlgenaug(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CTRLGENAUG_")}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(REPO), "CTRLGENAUG_DATA_DIR": str(cwd / "data"), **env},
        capture_output=True,
        text=True,
        timeout=600,  # a loaded machine imports torch slowly
    )


def test_embedded_commands_migrate_a_new_data_folder_themselves(tmp_path: Path) -> None:
    created = ctrlgenaug(["keys", "create", "--project", "p"], tmp_path)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().startswith("cga_")
    listed = ctrlgenaug(["models", "list"], tmp_path)
    assert listed.returncode == 0 and listed.stderr == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["keys", "create", "--project", "p"], "run `ctrlgenaug db upgrade`"),
        (["models", "list"], "run `ctrlgenaug db upgrade`"),
        (["api", "--port", "1"], "run `ctrlgenaug db upgrade`"),
        (["worker"], "run `ctrlgenaug db upgrade`"),
    ],
)
def test_a_server_database_that_is_not_migrated_is_refused_with_the_command_to_run(
    args: list[str], expected: str, fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    result = ctrlgenaug(args, tmp_path, CTRLGENAUG_DATABASE_URL=fresh_database(), **SECRET)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr


USER_ERRORS: list[tuple[list[str], dict[str, str], str]] = [
    (["db", "upgrade"], DOWN, "cannot use the database"),
    (["keys", "create", "--project", "p"], DOWN, "start it or set"),
    (["models", "list"], {"CTRLGENAUG_DATABASE_URL": "not-a-url", **SECRET}, "CTRLGENAUG_DATABASE_URL"),
    (["keys", "create"], {}, "Missing option '--project'"),
    (["keys", "create", "--project", " "], {}, "name must be 1-100 characters"),
    (["models", "register", "/nonexistent/model"], {}, "'/nonexistent/model' does not exist"),
    (["datasets", "register", "/nonexistent/manifest.jsonl", "--project", "p"], {}, "does not exist"),
    (["up", "--model", "/nonexistent/model"], {}, "'/nonexistent/model' does not exist"),
    (["verify", "not-a-zip.txt"], {}, "is not a ZIP file"),
    (["verify", "db.zip", "--api", "http://127.0.0.1:1"], {}, "--key is needed with --api"),
    (["verify", "db.zip", "--api", "http://127.0.0.1:1", "--key", "k"], {}, "cannot reach the service"),
    (["verify", "db.zip", "--api", "127.0.0.1:8000", "--key", "k"], {}, "give the service URL like http://"),
    (["data", "verify", "."], {}, "manifest.jsonl: No such file or directory"),
    (["data", "build", "--inputs", ".", "--labels", "/nonexistent.csv", "--out", "o"], {}, "does not exist"),
    (["data", "demo", "--out", "o", "--sources-dir", "/nonexistent"], {}, "demo sources not found"),
    (["motion", "extract", "/nonexistent.mp4", "--out", "o"], {}, "does not exist"),
    (["filter", "rerun", "--scores", "/nonexistent.npz", "--out", "o"], {}, "not found"),
    (["train", "vae", "--config", "/nonexistent.yaml"], {}, "does not exist"),
    (["train", "report", "--model", "/nonexistent", "--data", "."], {}, "does not exist"),
    (["evaluate", "paradigms", "--real", "/nonexistent", "--out", "o"], {}, "No such file or directory"),
    (["evaluate", "synthesis", "--model", "/nonexistent", "--data", ".", "--out", "o"], {}, "not found"),
]


@pytest.mark.parametrize(
    ("args", "env", "expected"), USER_ERRORS, ids=[" ".join(a[:2]) for a, _, _ in USER_ERRORS]
)
def test_a_user_error_is_one_line_with_exit_code_2(
    args: list[str], env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    (tmp_path / "not-a-zip.txt").write_text("hello")
    with zipfile.ZipFile(tmp_path / "db.zip", "w") as archive:
        archive.writestr("manifest.json", "{}")
    result = ctrlgenaug(args, tmp_path, **env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr

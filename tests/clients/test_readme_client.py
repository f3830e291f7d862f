"""README's "Python client and jobs CLI": every `ctrlgenaug` command of its shell block parses with the
options it shows, and its Python block runs as written against a live service (the tiny model and data
build for the demo ones, 3 denoising steps for 20)."""

from __future__ import annotations

import re
import shlex
import uuid
from pathlib import Path
from typing import Any

import pytest
from live_service import DATASET, LiveService
from typer.testing import CliRunner

from cli.main import app as cli_app

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Python client and jobs CLI"


def blocks(language: str) -> list[str]:
    section = README.read_text().split(f"\n{SECTION}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"^```{language}\n(.*?)^```$", section, re.S | re.M)


def ctrlgenaug_commands() -> list[list[str]]:
    (shell,) = blocks("bash")
    commands = []
    for line in shell.splitlines():
        line = line.split("  #", 1)[0]
        for command in re.findall(r"\$\((ctrlgenaug [^)]*)\)", line) or (
            [line] if line.startswith("ctrlgenaug") else []
        ):
            commands.append([word.replace("$JOB", str(uuid.uuid4())) for word in shlex.split(command)[1:]])
    return commands


@pytest.mark.parametrize("args", ctrlgenaug_commands(), ids=" ".join)
def test_shell_block_commands_parse(args: list[str]) -> None:
    result = CliRunner().invoke(cli_app, [*args, "--help"])
    assert result.exit_code == 0, result.output


def test_python_block_runs_against_a_live_service(
    live: LiveService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (code,) = blocks("python")
    for shown, actual in (
        ('"demo-clips"', f'"{DATASET}"'),
        ('"model": "demo"', f'"model": "{live.model}"'),
        ('"steps": 20', '"steps": 3'),
        ('"data/db"', f'"{tmp_path}"'),
    ):
        assert shown in code
        code = code.replace(shown, actual)
    monkeypatch.setenv("CTRLGENAUG_URL", live.url)
    monkeypatch.setenv("CTRLGENAUG_API_KEY", live.key)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["done"].status.value == "succeeded"
    assert len(namespace["kept"]) == namespace["done"].results.clips_kept
    assert namespace["database"].parent == tmp_path

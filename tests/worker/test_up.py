"""`ctrlgenaug up` (API + worker on SQLite, a local object folder and the embedded broker) and the demo
script that drives it through the REST API."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner
from worker_helpers import build_named_model_dir, build_tiny_data_build

import cli.worker
from cli.embedded_client import EmbeddedService
from cli.main import app as cli_app
from store.export import verify_database_zip

REPO = Path(__file__).resolve().parents[2]


def test_up_without_any_model_says_how_to_build_the_demo_model(
    embedded_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.worker, "DEMO_MODEL_DIR", tmp_path / "models" / "demo")
    result = CliRunner().invoke(cli_app, ["up", "--port", "1"])
    assert result.exit_code == 2
    assert "no model is registered and the demo model" in result.output
    assert "make train-demo" in result.output and "--model" in result.output
    assert (embedded_data_dir / "ctrlgenaug.db").is_file()  # `db upgrade` ran first


def test_demo_script_registers_the_data_build_and_prints_the_jobs_quality(tmp_path: Path) -> None:
    _, manifest_sha256, _ = build_tiny_data_build(tmp_path / "build")
    model_dir = build_named_model_dir(tmp_path / "model", manifest_sha256)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "scripts/demo.py",
            "--model",
            str(model_dir),
            "--data",
            str(tmp_path / "build"),
            "--data-dir",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "out"),
            "--banks-per-class",
            "1",
            "--samples",
            "2",
            "--steps",
            "6",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert f"ctrlgenaug datasets register {tmp_path / 'build' / 'manifest.jsonl'} --project demo" in output
    assert "dataset demo-dataset: 6 training clips" in output
    assert (
        "banks from demo-dataset's training clips, 1 per class (class_0, class_1, class_2) × 2 clips, "
        "dpmsolver++ 6 steps"
    ) in output
    assert "succeeded  banks 3/3  clips 6/6" in output
    assert (
        f"quality against dataset demo-dataset (6 training clips, manifest {manifest_sha256[:12]}…)" in output
    )
    header = next(line for line in output.splitlines() if "all clips" in line)
    assert header.split() == [
        "class_0",
        "kept",
        "class_1",
        "kept",
        "class_2",
        "kept",
        "all",
        "kept",
        "all",
        "clips",
    ]
    clips_row = next(line for line in output.splitlines() if line.strip().startswith("clips "))
    assert clips_row.split()[-1] == "6"
    assert any(line.strip().startswith("coherence ratio") for line in output.splitlines())
    assert "files verified against the service" in output
    assert "worker stopped (code 0)" not in output  # the service's own log goes to a file, not the terminal
    assert "worker stopped (code 0)" in (tmp_path / "out" / "service.log").read_text()
    (database,) = (tmp_path / "out").glob("ctrlgenaug-demo-*.zip")
    assert verify_database_zip(database).ok
    assert (tmp_path / "data" / "broker.db").is_file() and (tmp_path / "data" / "objects" / "jobs").is_dir()


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def test_sigterm_stops_up_and_its_worker(worker_model_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "up.log"
    with (
        log.open("wb") as out,
        EmbeddedService(tmp_path / "data", worker_model_dir, stdout=out, stderr=out) as up,
    ):
        assert up.process is not None
        workers = children(up.process.pid)
        assert workers, "up started no worker process"
        up.process.send_signal(signal.SIGTERM)
        assert up.process.wait(120) == 128 + signal.SIGTERM
    assert "worker stopped (code" in log.read_text(), log.read_text()[-3000:]
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]

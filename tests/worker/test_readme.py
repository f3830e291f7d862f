"""README's "Run the service": every fenced `bash` block runs, in order, against a live `ctrlgenaug up` (the
first block, started in the background), in a scratch working folder that has the repository's `models/`.
The service's port 8000 is mapped to a free port; the compose block is checked against docker-compose.yml."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SECTION = "## Run the service"
PORT = "8000"
READY_TIMEOUT_S = 300
SCRIPT_TIMEOUT_S = 1800


def section_blocks() -> list[tuple[str, str]]:
    """(info string, code) of each fenced block of the section."""
    text = (REPO / "README.md").read_text()
    section = text.split(f"\n{SECTION}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```([^\n]*)\n(.*?)^```$", section, re.S | re.M)


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def test_the_compose_block_names_services_of_docker_compose_yml() -> None:
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    (compose,) = [code for info, code in section_blocks() if info == "bash compose"]
    commands = [shlex.split(line.split("#")[0]) for line in compose.splitlines() if line.startswith("docker")]
    assert [words[:3] for words in commands] == [["docker", "compose", "up"], ["docker", "compose", "run"]]
    assert commands[1][-1] in services and "init" in services[commands[1][-1]]["profiles"]


@pytest.mark.slow
def test_every_bash_block_runs_against_a_live_embedded_service(tmp_path: Path) -> None:
    start, *blocks = [code for info, code in section_blocks() if info == "bash"]
    assert start.strip() == f"ctrlgenaug up --port {PORT}"
    port = free_port()
    (tmp_path / "models").symlink_to(REPO / "models")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CTRLGENAUG_")},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
    }
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            ["bash", "-c", f"exec {start.strip().replace(PORT, port)}"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its worker too is stopped below, whatever happens to `up`
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "Ctrl-GenAug is ready:" not in log.read_text():
            assert up.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(1)
        time.sleep(0.5)
        banner = log.read_text()
        assert f"console   http://127.0.0.1:{port}/console" in banner
        assert f"API docs  http://127.0.0.1:{port}/docs" in banner
        assert "ctrlgenaug keys create --project NAME" in banner

        script = "set -euo pipefail\n" + "\n".join(block.replace(PORT, port) for block in blocks)
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{output[-6000:]}\n--- ctrlgenaug up:\n{log.read_text()[-4000:]}"
    finally:
        up.terminate()
        try:
            up.wait(120)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(up.pid, signal.SIGKILL)
    assert "files verified against the service" in result.stdout
    assert '"status":"succeeded"' in result.stdout and "cancelled" in result.stdout
    assert '"ok":true' in result.stdout  # the audit chain verifies

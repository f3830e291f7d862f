"""The embedded service's worker process, kept running: a worker that dies (killed, out of memory, crashed)
is started again while the API keeps serving. It starts with `--requeue-unfinished`, so the job it was
running is delivered again, counted; a job that keeps killing its worker ends `failed` after
`worker_max_deliveries` (worker.jobs.begin_delivery)."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable

from cli.embedded_client import stop

FIRST_RESTART_DELAY_S = 1.0
MAX_RESTART_DELAY_S = 60.0
# A worker that ran this long before dying is restarted after the first delay again.
HEALTHY_RUN_S = 120.0


class WorkerSupervisor(threading.Thread):
    """Runs `command` until `stop()`, restarting it after it exits on its own (delays double from
    FIRST_RESTART_DELAY_S up to MAX_RESTART_DELAY_S while it keeps dying quickly)."""

    def __init__(self, command: list[str], env: dict[str, str], report: Callable[[str], None]) -> None:
        super().__init__(name="worker-supervisor", daemon=True)
        self.command = command
        self.env = env
        self.report = report
        self.restarts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        delay = FIRST_RESTART_DELAY_S
        while True:
            with self._lock:
                if self._stopping.is_set():
                    return
                self._process = subprocess.Popen(self.command, env=self.env)
                process = self._process
            started = time.monotonic()
            code = process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= HEALTHY_RUN_S:
                delay = FIRST_RESTART_DELAY_S
            self.restarts += 1
            self.report(
                f"the worker exited unexpectedly (code {code}); starting it again in {delay:g} s "
                f"(restart {self.restarts})"
            )
            if self._stopping.wait(delay):
                return
            delay = min(2 * delay, MAX_RESTART_DELAY_S)

    def stop(self, timeout_s: float) -> int | None:
        """Stop supervising and stop the worker (SIGTERM: it finishes or requeues its job); its exit code, or
        None when none was running."""
        with self._lock:
            self._stopping.set()
            process = self._process
        code = None if process is None else stop(process, signal.SIGTERM, timeout_s)
        self.join(timeout_s)
        return code

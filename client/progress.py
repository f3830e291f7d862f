"""A tqdm bar of a job's progress: clips done of the plan, the worker's phase and sampling ETA beside it."""

from __future__ import annotations

from tqdm import tqdm

from api.schemas import JobOut


class JobProgressBar:
    """`update(job)` after each poll; `close()` at the end. `enabled=False` shows nothing."""

    def __init__(self, enabled: bool = True) -> None:
        self._bar: tqdm | None = None
        self._enabled = enabled

    def update(self, job: JobOut) -> None:
        progress = job.progress
        if self._bar is None:
            self._bar = tqdm(
                total=progress.clips_total,
                unit="clip",
                desc=f"job {str(job.id)[:8]}",
                disable=not self._enabled,
            )
        self._bar.update(progress.clips_done - self._bar.n)
        postfix = {"status": job.status.value}
        if progress.phase is not None:
            postfix["phase"] = progress.phase.value
        if progress.eta_seconds is not None:
            postfix["eta"] = f"{progress.eta_seconds:.0f}s"
        self._bar.set_postfix(postfix, refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

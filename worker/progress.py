"""Where a delivery's sampling stands and how long it has left, from the measured denoising steps."""

from __future__ import annotations

from collections.abc import Callable


class SamplingClock:
    """The batch being denoised (1-based, of `batches`) and the seconds left: seconds per denoising step of
    the current batch × (its steps left + the steps of the batches after it).

    A batch's first step has no step of its own batch to time: it is timed by the previous batch's rate,
    or (the first batch) by the time since the plan was made, which includes preparing its conditions.
    """

    def __init__(self, batches: int, clock: Callable[[], float]) -> None:
        self.batches = batches
        self.batch = 0
        self._clock = clock
        self._last_at = clock()
        self._first_step_at = self._last_at
        self._seconds_per_step: float | None = None

    def step(self, step: int, steps: int) -> float:
        """Step `step` of `steps` of the current batch has finished; returns the ETA in seconds."""
        now = self._clock()
        if step == 1:
            self.batch += 1
            self._first_step_at = now
            if self._seconds_per_step is None:
                self._seconds_per_step = now - self._last_at
        else:
            self._seconds_per_step = (now - self._first_step_at) / (step - 1)
        self._last_at = now
        remaining = steps - step + steps * (self.batches - self.batch)
        return self._seconds_per_step * remaining

"""Job statuses and the moves between them (DESIGN: queued → generating → filtering → exporting → succeeded,
or failed / cancelled)."""

from __future__ import annotations

import enum


class JobStatus(str, enum.Enum):
    queued = "queued"
    generating = "generating"
    filtering = "filtering"
    exporting = "exporting"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


_STOPS = frozenset({JobStatus.failed, JobStatus.cancelled})
# A running job goes back to queued when its worker yields its turn or its delivery is interrupted.
JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.queued: frozenset({JobStatus.generating}) | _STOPS,
    JobStatus.generating: frozenset({JobStatus.filtering, JobStatus.queued}) | _STOPS,
    JobStatus.filtering: frozenset({JobStatus.exporting, JobStatus.queued}) | _STOPS,
    JobStatus.exporting: frozenset({JobStatus.succeeded, JobStatus.queued}) | _STOPS,
    JobStatus.succeeded: frozenset(),
    JobStatus.failed: frozenset(),
    JobStatus.cancelled: frozenset(),
}
FINISHED_JOB_STATUSES = frozenset(status for status, moves in JOB_TRANSITIONS.items() if not moves)

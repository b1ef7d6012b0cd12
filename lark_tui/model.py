"""Immutable snapshots the data source hands to the screens.

Every value a screen renders comes from one of these frozen dataclasses, built
in one place (:mod:`lark_tui.datasource`) from ``lark_core`` objects. Times are
epoch milliseconds, as in ``JobRecord.to_dict()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: the six job states, in the order the jobs screen offers them (failed first)
STATES: tuple[str, ...] = ("failed", "waiting", "active", "delayed", "paused", "completed")


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One queue's counts and recent throughput."""

    name: str
    waiting: int = 0
    active: int = 0
    delayed: int = 0
    completed: int = 0
    failed: int = 0
    paused: int = 0
    is_paused: bool = False
    #: completed jobs per minute, oldest first (empty until metrics are fetched)
    throughput: tuple[int, ...] = ()

    def count(self, state: str) -> int:
        return int(getattr(self, state))


@dataclass(frozen=True, slots=True)
class WorkerEntry:
    """A worker as the engine's registry lists it (any host)."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    started: int
    jobs_done: int = 0
    jobs_failed: int = 0
    current: tuple[str, ...] = ()
    last_seen: int = 0
    state: str = "running"


@dataclass(frozen=True, slots=True)
class Overview:
    """Every configured queue and every registered worker, as of ``fetched_at``."""

    queues: tuple[QueueStats, ...]
    workers: tuple[WorkerEntry, ...] = ()
    fetched_at: float = 0.0

    def get(self, name: str) -> QueueStats | None:
        return next((q for q in self.queues if q.name == name), None)


@dataclass(frozen=True, slots=True)
class JobSummary:
    """One row of a jobs list."""

    id: str
    name: str
    queue: str
    state: str
    attempts_made: int
    max_attempts: int
    timestamp: int
    finished_on: int | None = None
    delay_until: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a queue's jobs in one state; ``total`` is the state's count."""

    queue: str
    state: str
    page: int
    page_size: int
    total: int
    jobs: tuple[JobSummary, ...] = ()
    #: the queue's count of every state, read with the page
    counts: dict[str, int] = field(default_factory=dict)
    is_paused: bool = False

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


@dataclass(frozen=True, slots=True)
class JobDetail:
    """Everything the detail view shows about one job."""

    id: str
    name: str
    queue: str
    state: str
    payload: Any = None
    return_value: Any = None
    priority: int = 0
    attempts_made: int = 0
    max_attempts: int = 1
    stalled_count: int = 0
    failed_reason: str | None = None
    stacktrace: tuple[str, ...] = ()
    progress: Any = None
    timestamp: int = 0
    processed_on: int | None = None
    finished_on: int | None = None
    delay_until: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> JobSummary:
        return JobSummary(
            id=self.id, name=self.name, queue=self.queue, state=self.state,
            attempts_made=self.attempts_made, max_attempts=self.max_attempts,
            timestamp=self.timestamp, finished_on=self.finished_on,
            delay_until=self.delay_until, reason=self.failed_reason or "",
        )


@dataclass(frozen=True, slots=True)
class LocalWorker:
    """A worker process this console spawned (see :mod:`lark_tui.supervisor`)."""

    key: int
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    state: str  # running | stopping | stopped | killed | crashed | exited
    started: float  # epoch seconds
    cpu: float | None = None
    memory: int | None = None
    exit_code: int | None = None
    last_output: tuple[str, ...] = ()

    @property
    def alive(self) -> bool:
        return self.state in ("starting", "running", "stopping")

"""The stored form of a job: ``JobState`` and the ``JobRecord`` read back from Redis."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from lark_core.errors import JobNotFound

if TYPE_CHECKING:
    from lark_core.queue import Queue


class JobState(StrEnum):
    WAITING = "waiting"
    ACTIVE = "active"
    DELAYED = "delayed"
    COMPLETED = "completed"
    FAILED = "failed"
    PAUSED = "paused"


STATES: tuple[str, ...] = tuple(s.value for s in JobState)

#: Hash fields of ``lark:{q}:job:<id>`` (short names keep memory per job small).
FIELDS = {
    "name": "job name (Job class name or its ``name``)",
    "data": "payload, JSON",
    "opts": "options given at dispatch, JSON object",
    "prio": "priority, integer",
    "ts": "created, epoch ms",
    "state": "one of JobState",
    "atm": "attempts made (tries that started)",
    "stc": "stalled count",
    "pon": "processed on (last start), epoch ms",
    "fon": "finished on, epoch ms",
    "due": "delayed until, epoch ms",
    "rv": "return value, JSON",
    "fr": "failed reason",
    "st": "stacktrace",
    "prog": "progress, JSON",
    "tok": "lock token of the claim in force ('d:<token>' once acknowledged)",
    "matm": "max attempts as the worker resolved them (after its first acknowledgement)",
}


def _int(value: str | None, default: int | None = None) -> int | None:
    if value in (None, ""):
        return default
    try:
        return int(float(value))  # type: ignore[arg-type]
    except ValueError:
        return default


def _json(value: str | None, default: Any = None) -> Any:
    if value in (None, ""):
        return default
    try:
        return json.loads(value)  # type: ignore[arg-type]
    except ValueError:
        return value


@dataclass
class JobRecord:
    """A snapshot of one job as stored in Redis, with the actions that apply to it."""

    id: str
    name: str
    queue: str
    payload: Any = field(default_factory=dict)
    state: str = JobState.WAITING.value
    priority: int = 0
    attempts_made: int = 0
    max_attempts: int = 1
    stalled_count: int = 0
    failed_reason: str | None = None
    stacktrace: str | None = None
    return_value: Any = None
    progress: Any = None
    timestamp: int | None = None
    processed_on: int | None = None
    finished_on: int | None = None
    delay_until: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    _queue: Queue | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_hash(cls, job_id: str, queue: Queue | None, queue_name: str,
                  raw: dict[str, str], default_attempts: int = 1) -> JobRecord:
        opts = _json(raw.get("opts"), {})
        if not isinstance(opts, dict):
            opts = {}
        attempts = _int(raw.get("matm")) or opts.get("attempts", default_attempts)
        return cls(
            id=job_id,
            name=raw.get("name", ""),
            queue=queue_name,
            payload=_json(raw.get("data"), {}),
            state=raw.get("state") or JobState.WAITING.value,
            priority=_int(raw.get("prio"), 0) or 0,
            attempts_made=_int(raw.get("atm"), 0) or 0,
            max_attempts=attempts if isinstance(attempts, int) else default_attempts,
            stalled_count=_int(raw.get("stc"), 0) or 0,
            failed_reason=raw.get("fr") or None,
            stacktrace=raw.get("st") or None,
            return_value=_json(raw.get("rv")),
            progress=_json(raw.get("prog")),
            timestamp=_int(raw.get("ts")),
            processed_on=_int(raw.get("pon")),
            finished_on=_int(raw.get("fon")),
            delay_until=_int(raw.get("due")) if raw.get("state") == "delayed" else None,
            options=opts,
            _queue=queue,
        )

    def to_dict(self) -> dict[str, Any]:
        """The one JSON shape every ``--json`` output and the console use."""
        # not asdict(): it deep-copies ``_queue`` (whose connection holds a lock) and fails
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)
                if f.name != "_queue"}

    def _q(self) -> Queue:
        if self._queue is None:
            raise JobNotFound(f"job {self.id} is not bound to a queue")
        return self._queue

    async def retry(self) -> None:
        """Failed or completed -> back of waiting (or paused); attempts, reason and result reset."""
        queue = self._q()
        await queue.retry_job(self.id)
        self.state = (JobState.PAUSED if await queue.is_paused() else JobState.WAITING).value
        self.attempts_made = self.stalled_count = 0
        self.failed_reason = self.stacktrace = self.return_value = self.progress = None
        self.processed_on = self.finished_on = None

    async def remove(self) -> None:
        await self._q().remove_job(self.id)

    async def promote(self) -> None:
        """Delayed -> ready now."""
        await self._q().promote_job(self.id)
        self.delay_until = None

    async def get_logs(self, start: int = 0, end: int = -1) -> list[str]:
        return await self._q().get_job_logs(self.id, start, end)

    async def refresh(self) -> JobRecord:
        fresh = await self._q().get_job(self.id)
        if fresh is None:
            raise JobNotFound(f"job {self.id} no longer exists in queue {self.queue!r}")
        return fresh

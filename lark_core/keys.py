"""The Redis key schema. Every key of a queue shares the hash tag ``{<queue>}``.

| key                              | type   | meaning                                              |
|----------------------------------|--------|------------------------------------------------------|
| ``lark:{q}:job:<id>``            | hash   | one job (fields in ``lark_core.record.FIELDS``)       |
| ``lark:{q}:logs:<id>``           | list   | the job's log lines, capped                           |
| ``lark:{q}:wait``                | zset   | ready jobs; score = priority * 2**31 + ready seq      |
| ``lark:{q}:paused``              | zset   | ready jobs while the queue is paused (same scores)    |
| ``lark:{q}:active``              | zset   | claimed jobs; score = lock deadline (ms, Redis clock) |
| ``lark:{q}:delayed``             | zset   | delayed jobs; score = due time (ms, Redis clock)      |
| ``lark:{q}:completed``           | zset   | completed jobs; score = finished time (ms)            |
| ``lark:{q}:failed``              | zset   | failed jobs; score = finished time (ms)               |
| ``lark:{q}:meta``                | hash   | ``paused`` flag, ``seq`` ready-order counter          |
| ``lark:{q}:marker``              | zset   | wake-up marker workers block on (BZPOPMIN)            |
| ``lark:{q}:events``              | stream | job events, capped                                    |
| ``lark:{q}:metrics``             | hash   | ``c:<minute>`` / ``f:<minute>`` counts                |
| ``lark:{q}:sweep``               | string | ``SET NX PX`` guard: one stalled-job sweeper at a time|
| ``lark:workers``                 | hash   | worker id -> JSON registry entry (with last seen ms)  |
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "lark"
WORKERS = f"{PREFIX}:workers"


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """Key names of one queue."""

    queue: str

    @property
    def base(self) -> str:
        return f"{PREFIX}:{{{self.queue}}}:"

    def job(self, job_id: str) -> str:
        return f"{self.base}job:{job_id}"

    def logs(self, job_id: str) -> str:
        return f"{self.base}logs:{job_id}"

    @property
    def wait(self) -> str:
        return self.base + "wait"

    @property
    def paused(self) -> str:
        return self.base + "paused"

    @property
    def active(self) -> str:
        return self.base + "active"

    @property
    def delayed(self) -> str:
        return self.base + "delayed"

    @property
    def completed(self) -> str:
        return self.base + "completed"

    @property
    def failed(self) -> str:
        return self.base + "failed"

    @property
    def meta(self) -> str:
        return self.base + "meta"

    @property
    def marker(self) -> str:
        return self.base + "marker"

    @property
    def events(self) -> str:
        return self.base + "events"

    @property
    def metrics(self) -> str:
        return self.base + "metrics"

    @property
    def sweep(self) -> str:
        return self.base + "sweep"

    def state_key(self, state: str) -> str:
        """The zset holding jobs in ``state`` (one of ``JobState``)."""
        return self.base + ("wait" if state == "waiting" else state)

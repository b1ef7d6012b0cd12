"""Fixed data for stable snapshots: a data source and a supervisor that never change."""

from __future__ import annotations

import dataclasses
from typing import Any

from lark_core.errors import JobNotFound, RedisUnavailable
from lark_tui.datasource import DataSource
from lark_tui.model import (
    JobDetail,
    JobPage,
    LocalWorker,
    Overview,
    QueueStats,
    WorkerEntry,
)
from lark_tui.supervisor import Supervisor

#: 2026-01-01 00:00:00 UTC: the frozen "now" of every snapshot
NOW = 1_767_225_600.0
NOW_MS = int(NOW * 1000)
HOST = "testhost"

SERIES = (0, 0, 1, 3, 5, 8, 13, 21, 34, 21, 13, 8, 5, 3, 8, 13, 21, 34, 55, 34,
          21, 13, 8, 5, 3, 2, 1, 1, 0, 2)

QUEUES = (
    QueueStats("default", waiting=1_000_000, active=10, delayed=3, completed=48_211,
               failed=12, throughput=SERIES),
    QueueStats("high-priority", waiting=4, active=2, completed=1_532, throughput=SERIES[::-1]),
    QueueStats("emails", failed=100_000, paused=250, is_paused=True, completed=77,
               throughput=(0,) * 25 + (4, 9, 2, 0, 0)),
    QueueStats("reports", delayed=7, throughput=(0,) * 30),
)

WORKERS = (
    WorkerEntry("testhost:1001:AAAA", HOST, 1001, ("default", "high-priority"), 10,
                NOW_MS - 3_725_000, jobs_done=5_120, jobs_failed=3, last_seen=NOW_MS - 1000),
    WorkerEntry("worker-2:4242:BBBB", "worker-2", 4242, ("emails",), 4, NOW_MS - 90_061_000,
                jobs_done=88_000, jobs_failed=100_000, current=("01JOBEMAIL0000000000000001",),
                last_seen=NOW_MS - 2000),
)

LOCAL = (
    LocalWorker(1, 1001, ("default", "high-priority"), 10, "running", NOW - 3725, cpu=12.0,
                memory=48 * 1024 * 1024),
    LocalWorker(2, 1002, ("reports",), 2, "crashed", NOW - 600, exit_code=2,
                last_output=("lark-core: cannot import jobs/reports.py: No module named 'pdfkit'",)),
)

WORKER_LINES = {
    1: [f"2026-01-01 00:00:{i:02d},000 INFO    [default] SendReport 01JOB{i:021d}: completed"
        for i in range(30)] + ["2026-01-01 00:00:31,000 ERROR   [default] Boom 01JOB: failed"],
    2: ["Traceback (most recent call last):", "  File \"jobs/reports.py\", line 1",
        "ModuleNotFoundError: No module named 'pdfkit'",
        "lark-core: cannot import jobs/reports.py: No module named 'pdfkit'"],
}

TRACE = ("Traceback (most recent call last):\n"
         "  File \"/srv/app/jobs/mail.py\", line 42, in handle\n"
         "    await smtp.send(message)\n"
         "ConnectionRefusedError: [Errno 111] Connection refused")


def failed_job(i: int) -> JobDetail:
    return JobDetail(
        id=f"01JOBEMAIL{i:016d}", name="SendWelcomeEmail", queue="emails", state="failed",
        payload={"to": f"user{i}@example.com", "template": "welcome", "vars": {"n": i}},
        attempts_made=5, max_attempts=5, failed_reason="ConnectionRefusedError: [Errno 111] "
        "Connection refused", stacktrace=(TRACE,), timestamp=NOW_MS - 3_600_000 - i * 1000,
        processed_on=NOW_MS - 60_000 - i * 1000, finished_on=NOW_MS - 59_000 - i * 1000,
    )


def jobs() -> dict[str, JobDetail]:
    out = {j.id: j for j in (failed_job(i) for i in range(1, 13))}
    done = JobDetail(id="01JOBREPORT0000000000000001", name="BuildReport", queue="reports",
                     state="completed", payload={"month": "2025-12"},
                     return_value={"pages": 12, "path": "reports/2025-12.pdf"},
                     attempts_made=1, max_attempts=3, timestamp=NOW_MS - 120_000,
                     processed_on=NOW_MS - 119_000, finished_on=NOW_MS - 65_000, progress=100)
    later = JobDetail(id="01JOBREPORT0000000000000002", name="BuildReport", queue="reports",
                      state="delayed", payload={"month": "2026-01"}, max_attempts=3,
                      timestamp=NOW_MS - 10_000, delay_until=NOW_MS + 3_600_000)
    out[done.id] = done
    out[later.id] = later
    return out


JOB_LOGS = {
    "01JOBEMAIL0000000000000001": [
        "2026-01-01T00:00:01Z INFO sending to user1@example.com",
        "2026-01-01T00:00:02Z WARN smtp.example.com slow to answer",
        "2026-01-01T00:00:03Z ERROR connection refused",
    ],
}


class FakeData(DataSource):
    """An in-memory project; ``down`` makes every call fail as if Redis were away."""

    redis_url = "redis://:***@redis.example:6379/0"
    queue_names = tuple(q.name for q in QUEUES)
    config_path = "lark.config.yaml"

    def __init__(self, down: str | None = None) -> None:
        self.queues = {q.name: q for q in QUEUES}
        self.jobs = jobs()
        self.down = down
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if self.down:
            raise RedisUnavailable(self.down)

    async def overview(self) -> Overview:
        self._call("overview")
        return Overview(tuple(self.queues.values()), WORKERS, NOW)

    async def set_paused(self, queue: str, paused: bool) -> None:
        self._call("set_paused", queue, paused)
        self.queues[queue] = dataclasses.replace(self.queues[queue], is_paused=paused)

    async def jobs_page(self, queue: str, state: str, page: int, page_size: int) -> JobPage:
        self._call("jobs_page", queue, state, page, page_size)
        stats = self.queues[queue]
        chosen = sorted((j for j in self.jobs.values() if j.queue == queue and j.state == state),
                        key=lambda j: j.id)
        start = page * page_size
        counts = {s: stats.count(s) for s in ("waiting", "active", "delayed", "completed",
                                                "failed", "paused")}
        return JobPage(queue, state, page, page_size, counts[state],
                       tuple(j.summary() for j in chosen[start:start + page_size]), counts)

    async def job(self, queue: str, job_id: str) -> JobDetail | None:
        self._call("job", queue, job_id)
        return self.jobs.get(job_id)

    async def job_logs(self, queue: str, job_id: str, start: int) -> tuple[str, ...]:
        self._call("job_logs", queue, job_id, start)
        if job_id not in self.jobs:
            raise JobNotFound(job_id)
        return tuple(JOB_LOGS.get(job_id, [])[start:])

    async def find_job(self, job_id: str) -> JobDetail:
        self._call("find_job", job_id)
        if job_id not in self.jobs:
            raise JobNotFound(f"no job {job_id!r} in any queue")
        return self.jobs[job_id]

    async def retry(self, queue: str, job_id: str) -> None:
        self._call("retry", queue, job_id)

    async def remove(self, queue: str, job_id: str) -> None:
        self._call("remove", queue, job_id)

    async def promote(self, queue: str, job_id: str) -> None:
        self._call("promote", queue, job_id)

    async def retry_all_failed(self, queue: str) -> int:
        self._call("retry_all_failed", queue)
        return self.queues[queue].failed

    async def dispatch(self, queue: str, name: str, payload: Any, delay_ms: int = 0,
                       priority: int = 0) -> str:
        self._call("dispatch", queue, name, payload, delay_ms, priority)
        return "01JOBNEW0000000000000000001"

    async def close(self) -> None:
        self.calls.append(("close", ()))


class FakeSupervisor(Supervisor):
    """Shows fixed local workers and output; starts nothing."""

    def __init__(self, rows: tuple[LocalWorker, ...] = LOCAL,
                 lines: dict[int, list[str]] | None = None) -> None:
        super().__init__(["true"], env={})
        self.rows = rows
        self.lines = WORKER_LINES if lines is None else lines
        self.requests: list[tuple[Any, ...]] = []

    def snapshot(self) -> tuple[LocalWorker, ...]:
        return self.rows

    def lines_since(self, key: int, seq: int) -> tuple[list[str], int]:
        lines = self.lines.get(key, [])
        return lines[seq:], len(lines)

    def start(self, queues: Any, concurrency: int, count: int = 1) -> list[int]:
        self.requests.append(("start", tuple(queues), concurrency, count))
        return list(range(count))

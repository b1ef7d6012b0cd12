"""The console's only door to Redis: a documented interface over ``lark_core``.

Screens and widgets call a :class:`DataSource`; they never see ``redis`` or
``lark_core`` objects, only the frozen snapshots of :mod:`lark_tui.model`.
:class:`LarkDataSource` is the real implementation. Tests may hand the app any
other implementation (a fake with fixed data, for stable snapshots).

Every coroutine raises a :class:`lark_core.LarkError` on failure;
``RedisUnavailable`` (message naming the masked URL) when Redis is away.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from lark_core.errors import EmbeddedRedisError, JobNotFound, LarkError, RedisUnavailable
from lark_tui.model import (
    STATES,
    JobDetail,
    JobPage,
    JobSummary,
    Overview,
    QueueStats,
    WorkerEntry,
)

T = TypeVar("T")
COUNT_KEYS = ("waiting", "active", "delayed", "completed", "failed", "paused")
METRIC_MINUTES = 30


class DataSource(abc.ABC):
    """What the console reads and does. One instance per app."""

    #: the Redis URL with any password masked, for banners and titles
    redis_url: str = ""
    #: the configured queues, in config order
    queue_names: tuple[str, ...] = ()
    #: where the config came from (shown in the title)
    config_path: str = ""
    #: set when the console started the project's embedded redis-server again after it
    #: had stopped; the app reports it once Redis answers, then clears it
    revived: str | None = None

    @abc.abstractmethod
    async def overview(self) -> Overview:
        """Counts and throughput of every queue, and every registered worker on any
        host: one Redis round trip, whatever the number of queues."""

    @abc.abstractmethod
    async def set_paused(self, queue: str, paused: bool) -> None:
        """Pause or resume a queue (global: every worker, every host)."""

    @abc.abstractmethod
    async def jobs_page(self, queue: str, state: str, page: int, page_size: int) -> JobPage:
        """One page (0-based) of a queue's jobs in one state; never loads the rest."""

    @abc.abstractmethod
    async def job(self, queue: str, job_id: str) -> JobDetail | None:
        """One job, or ``None`` if it no longer exists."""

    @abc.abstractmethod
    async def job_logs(self, queue: str, job_id: str, start: int) -> tuple[str, ...]:
        """The job's log lines from index ``start`` on; ``JobNotFound`` if it is gone."""

    @abc.abstractmethod
    async def find_job(self, job_id: str) -> JobDetail:
        """A job by id in any queue; raises ``JobNotFound`` / ``AmbiguousJobId``."""

    @abc.abstractmethod
    async def retry(self, queue: str, job_id: str) -> None:
        """Failed or completed -> waiting (or paused)."""

    @abc.abstractmethod
    async def remove(self, queue: str, job_id: str) -> None:
        """Delete the job and its logs."""

    @abc.abstractmethod
    async def promote(self, queue: str, job_id: str) -> None:
        """A delayed job becomes ready now."""

    @abc.abstractmethod
    async def retry_all_failed(self, queue: str) -> int:
        """Retry every failed job of ``queue``; returns how many."""

    @abc.abstractmethod
    async def dispatch(self, queue: str, name: str, payload: Any, delay_ms: int = 0,
                       priority: int = 0) -> str:
        """Add a job; returns its id."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _opt_int(value: Any) -> int | None:
    return None if value in (None, "", 0) else _int(value)


def _trace(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def detail_from_dict(d: Mapping[str, Any]) -> JobDetail:
    """A :class:`JobDetail` from ``JobRecord.to_dict()``."""
    known = set(JobDetail.__slots__)  # type: ignore[attr-defined]
    return JobDetail(
        id=str(d.get("id", "")), name=str(d.get("name", "")), queue=str(d.get("queue", "")),
        state=str(d.get("state", "")), payload=d.get("payload"),
        return_value=d.get("return_value"), priority=_int(d.get("priority")),
        attempts_made=_int(d.get("attempts_made")), max_attempts=_int(d.get("max_attempts")),
        stalled_count=_int(d.get("stalled_count")), failed_reason=d.get("failed_reason"),
        stacktrace=_trace(d.get("stacktrace")), progress=d.get("progress"),
        timestamp=_int(d.get("timestamp")), processed_on=_opt_int(d.get("processed_on")),
        finished_on=_opt_int(d.get("finished_on")), delay_until=_opt_int(d.get("delay_until")),
        extra={k: v for k, v in d.items() if k not in known},
    )


def summary_from_dict(d: Mapping[str, Any]) -> JobSummary:
    return detail_from_dict(d).summary()


def record_dict(record: Any) -> dict[str, Any]:
    """``JobRecord.to_dict()``'s shape, read field by field (no deep copy of the
    record's queue handle, which holds locks)."""
    if dataclasses.is_dataclass(record):
        return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)
                if not f.name.startswith("_")}
    return dict(record.to_dict())


def throughput(points: Iterable[Mapping[str, Any]], now_ms: int,
               minutes: int = METRIC_MINUTES) -> tuple[int, ...]:
    """Completed-per-minute for the last ``minutes`` minutes, gaps as 0, oldest first."""
    current = now_ms // 60_000
    series = [0] * minutes
    for point in points:
        idx = minutes - 1 - (current - _int(point.get("minute")) // 60_000)
        if 0 <= idx < minutes:
            series[idx] += _int(point.get("completed"))
    return tuple(series)


def stats_from_counts(name: str, counts: Mapping[str, Any],
                      series: tuple[int, ...]) -> QueueStats:
    values = {k: _int(counts.get(k)) for k in COUNT_KEYS}
    return QueueStats(name=name, is_paused=bool(counts.get("is_paused")),
                      throughput=series, **values)


def worker_entry(info: Any) -> WorkerEntry:
    """A :class:`WorkerEntry` from a ``lark_core`` worker-registry object or dict."""
    get: Callable[[str], Any] = (
        info.get if isinstance(info, Mapping) else lambda k: getattr(info, k, None)
    )
    return WorkerEntry(
        id=str(get("id")), host=str(get("host") or "?"), pid=_int(get("pid")),
        queues=tuple(get("queues") or ()), concurrency=_int(get("concurrency")),
        started=_int(get("started")), jobs_done=_int(get("jobs_done")),
        jobs_failed=_int(get("jobs_failed")), current=tuple(get("current") or ()),
        last_seen=_int(get("last_seen")), state=str(get("state") or "running"),
    )


class LarkDataSource(DataSource):
    """The real data source: one ``lark_core.Lark`` handle on the project's Redis."""

    def __init__(self, lark: Any, config_path: str = "") -> None:
        self._lark = lark
        try:
            self.redis_url = str(lark.redis_display_url)
        except LarkError:
            self.redis_url = "the project's managed redis-server (.lark/)"
        self.queue_names = tuple(lark.queues)
        self.config_path = config_path

    def _queue(self, name: str) -> Any:
        try:
            return self._lark.queues[name]
        except KeyError:
            raise LarkError(f"unknown queue {name!r}") from None

    async def _guard(self, coro: Awaitable[T]) -> T:
        """Await ``coro``; a raw client error becomes ``RedisUnavailable``."""
        try:
            return await coro
        except EmbeddedRedisError as exc:
            raise RedisUnavailable(str(exc)) from exc
        except RedisUnavailable as exc:
            raise RedisUnavailable(str(exc) + await self._revive()) from exc
        except LarkError:
            raise
        except (OSError, TimeoutError) as exc:
            message = f"cannot reach Redis at {self.redis_url}: {exc}"
            raise RedisUnavailable(message + await self._revive()) from exc
        except Exception as exc:
            if type(exc).__module__.startswith("redis"):
                message = f"Redis error at {self.redis_url}: {exc}"
                if any(c.__name__ == "ConnectionError" for c in type(exc).__mro__):
                    message += await self._revive()
                raise RedisUnavailable(message) from exc
            raise

    async def _revive(self) -> str:
        """With ``embedded: true``, ``lark_core`` starts the project's server again when it
        died; a sentence for the banner ('' for a remote Redis)."""
        started, note = await self._lark.connection.revive_embedded()
        if started:
            self.revived = note
            return f" {note} Reconnecting."
        return f" {note}" if note else ""

    async def overview(self) -> Overview:
        raw = await self._guard(self._lark.overview(minutes=METRIC_MINUTES))
        now_ms = int(raw.at_ms)
        queues = tuple(
            stats_from_counts(name, raw.counts.get(name, {}),
                              throughput(raw.metrics.get(name, ()), now_ms))
            for name in self.queue_names
        )
        workers = tuple(sorted((worker_entry(w) for w in raw.workers),
                               key=lambda w: (w.host, w.pid)))
        return Overview(queues=queues, workers=workers, fetched_at=now_ms / 1000)

    async def set_paused(self, queue: str, paused: bool) -> None:
        q = self._queue(queue)
        await self._guard(q.pause() if paused else q.resume())

    async def jobs_page(self, queue: str, state: str, page: int, page_size: int) -> JobPage:
        if state not in STATES:
            raise LarkError(f"unknown state {state!r}")
        q = self._queue(queue)
        counts = await self._guard(q.get_job_counts())
        total = _int(counts.get(state))
        pages = max(1, -(-total // page_size))
        page = min(max(0, page), pages - 1)
        start = page * page_size
        records = await self._guard(q.get_jobs(state, start, start + page_size - 1))
        return JobPage(
            queue=queue, state=state, page=page, page_size=page_size, total=total,
            jobs=tuple(summary_from_dict(record_dict(r)) for r in records),
            counts={k: _int(counts.get(k)) for k in COUNT_KEYS},
        )

    async def job(self, queue: str, job_id: str) -> JobDetail | None:
        record = await self._guard(self._queue(queue).get_job(job_id))
        return None if record is None else detail_from_dict(record_dict(record))

    async def job_logs(self, queue: str, job_id: str, start: int) -> tuple[str, ...]:
        q = self._queue(queue)
        lines = await self._guard(q.get_job_logs(job_id, start=start, end=-1))
        if not lines and await self._guard(q.get_job(job_id)) is None:
            raise JobNotFound(f"job {job_id} not found in {queue}")
        return tuple(lines)

    async def find_job(self, job_id: str) -> JobDetail:
        record = await self._guard(self._lark.find_job(job_id))
        return detail_from_dict(record_dict(record))

    async def retry(self, queue: str, job_id: str) -> None:
        await self._guard(self._queue(queue).retry_job(job_id))

    async def remove(self, queue: str, job_id: str) -> None:
        await self._guard(self._queue(queue).remove_job(job_id))

    async def promote(self, queue: str, job_id: str) -> None:
        await self._guard(self._queue(queue).promote_job(job_id))

    async def retry_all_failed(self, queue: str) -> int:
        return int(await self._guard(self._queue(queue).retry_failed()))

    async def dispatch(self, queue: str, name: str, payload: Any, delay_ms: int = 0,
                       priority: int = 0) -> str:
        opts: dict[str, Any] = {}
        if delay_ms:
            opts["delay"] = delay_ms
        if priority:
            opts["priority"] = priority
        record = await self._guard(self._queue(queue).add(name, payload, **opts))
        return str(record.id)

    async def close(self) -> None:
        await self._guard(self._lark.close())

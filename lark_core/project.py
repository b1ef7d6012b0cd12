"""``Lark``: one project (config + connection + queues), and the ``queues`` proxy over it."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lark_core.connection import Connection, translate_errors
from lark_core.errors import AmbiguousJobId, JobNotFound, UnknownQueue
from lark_core.queue import Queue
from lark_core.record import JobRecord
from lark_core.registry import WorkerInfo, read_workers, workers_from, workers_into
from lark_core.settings import Config


@dataclass(frozen=True)
class Overview:
    """What a console refresh needs, read in one round trip."""

    counts: dict[str, dict[str, Any]]
    metrics: dict[str, list[dict[str, int]]]
    workers: list[WorkerInfo]
    at_ms: int


class Lark:
    """A project handle. Build it from a ``Config`` (or a config path) and pass it on."""

    def __init__(self, config: Config | None = None, *,
                 config_path: str | os.PathLike[str] | None = None) -> None:
        if config is None:
            from lark_core.config import load_config

            config = load_config(config_path)
        self.config = config
        self.connection = Connection(config)
        self.queues: dict[str, Queue] = {
            name: Queue(name, self.connection, config) for name in config.jobs.queues
        }

    @property
    def redis_display_url(self) -> str:
        return self.connection.display_url

    def queue(self, name: str) -> Queue:
        try:
            return self.queues[name]
        except KeyError:
            known = ", ".join(self.queues)
            raise UnknownQueue(f"queue {name!r} is not configured (jobs.queues: {known})") from None

    @translate_errors
    async def get_all_counts(self) -> dict[str, dict[str, Any]]:
        """Counts of every queue in one round trip (plus ``is_paused``)."""
        pipe = self.connection.client().pipeline(transaction=False)
        for q in self.queues.values():
            q.queue_counts_into(pipe)
        replies = await pipe.execute()
        out: dict[str, dict[str, Any]] = {}
        for i, (name, q) in enumerate(self.queues.items()):
            counts, paused = q.counts_from(replies[i * 7:(i + 1) * 7])
            out[name] = {**counts, "is_paused": paused}
        return out

    @translate_errors
    async def get_all_metrics(self, minutes: int = 30) -> dict[str, list[dict[str, int]]]:
        """Per-minute completed/failed counts of every queue in one round trip."""
        now = int(time.time() * 1000)
        pipe = self.connection.client().pipeline(transaction=False)
        fields = {}
        for name, q in self.queues.items():
            fields[name] = q.metric_fields(minutes, now)
            q.metrics_into(pipe, fields[name])
        replies = await pipe.execute()
        return {name: Queue.metrics_from(fields[name], reply)
                for name, reply in zip(self.queues, replies, strict=True)}

    @translate_errors
    async def overview(self, minutes: int = 30) -> Overview:
        """Counts, per-minute metrics of every queue and the live workers: one round trip."""
        now = int(time.time() * 1000)
        pipe = self.connection.client().pipeline(transaction=False)
        fields = {}
        for name, q in self.queues.items():
            q.queue_counts_into(pipe)
            fields[name] = q.metric_fields(minutes, now)
            q.metrics_into(pipe, fields[name])
        workers_into(pipe)
        replies = await pipe.execute()
        counts: dict[str, dict[str, Any]] = {}
        metrics: dict[str, list[dict[str, int]]] = {}
        for i, (name, q) in enumerate(self.queues.items()):
            chunk = replies[i * 8:(i + 1) * 8]
            c, paused = q.counts_from(chunk[:7])
            counts[name] = {**c, "is_paused": paused}
            metrics[name] = Queue.metrics_from(fields[name], chunk[7])
        return Overview(counts, metrics, workers_from(replies[-1], now), now)

    @translate_errors
    async def list_workers(self) -> list[WorkerInfo]:
        return await read_workers(self.connection.client())

    async def find_job(self, job_id: str, queue: str | None = None) -> JobRecord:
        """Look a job id up in every queue (or one); raise if none or several match."""
        names = [queue] if queue else list(self.queues)
        found = [rec for name in names if (rec := await self.queue(name).get_job(job_id))]
        if not found:
            where = f"queue {queue!r}" if queue else "any queue"
            raise JobNotFound(f"no job {job_id!r} in {where}")
        if len(found) > 1:
            raise AmbiguousJobId(
                f"job id {job_id!r} exists in queues {', '.join(r.queue for r in found)}; "
                "narrow with --queue"
            )
        return found[0]

    async def close(self) -> None:
        await self.connection.aclose()


_default: Lark | None = None
_default_lock = threading.Lock()


def default_project() -> Lark:
    """The project of ``$LARK_CONFIG`` or ``./lark.config.yaml``, loaded on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Lark(config_path=None)
        return _default


def set_default_project(project: Lark | None) -> None:
    global _default
    with _default_lock:
        _default = project


class QueuesProxy:
    """``queues.default`` / ``queues["high-priority"]``: queues of the default project."""

    def __getitem__(self, name: str) -> Queue:
        return default_project().queue(name)

    def __getattr__(self, name: str) -> Queue:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return default_project().queue(name)
        except UnknownQueue as exc:
            raise AttributeError(str(exc)) from None

    def __iter__(self) -> Any:
        return iter(default_project().queues)

    def __contains__(self, name: object) -> bool:
        return name in default_project().queues


queues = QueuesProxy()


def configure_queue(name: str, redis: dict[str, Any] | None = None,
                    default_job_options: dict[str, Any] | None = None,
                    project_dir: str | Path | None = None) -> Queue:
    """A queue built from explicit settings, with no config file lookup."""
    from lark_core.config import parse_config

    data: dict[str, Any] = {"jobs": {"queues": [name]}}
    if redis:
        data["redis"] = redis
    if default_job_options:
        data["jobs"]["options"] = default_job_options
    config = parse_config(data, Path(project_dir).resolve() if project_dir else None,
                          source=f"configure_queue({name!r})")
    return Lark(config).queue(name)

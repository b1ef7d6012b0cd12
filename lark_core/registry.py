"""The worker registry: one hash of live workers, each entry refreshed on its heartbeat.

``lark:workers`` maps worker id -> JSON entry; an entry not refreshed for ``STALE_MS``
is a worker that is gone (readers skip it, writers prune it). One HGETALL reads all,
so the console gets counts, metrics and workers in one round trip.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from lark_core import keys

#: a worker not seen for this long is gone
STALE_MS = 30_000


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started: int
    jobs_done: int = 0
    jobs_failed: int = 0
    current: list[str] = field(default_factory=list)
    last_seen: int = 0
    state: str = "running"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        data = self.to_dict()
        data["current"] = data["current"][:100]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> WorkerInfo | None:
        try:
            data = json.loads(text)
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except (ValueError, TypeError):
            return None


async def heartbeat(client: Any, info: WorkerInfo, prune: bool = False) -> None:
    await client.hset(keys.WORKERS, info.id, info.to_json())
    if prune:
        entries = await client.hgetall(keys.WORKERS)
        gone = [wid for wid, text in entries.items()
                if (w := WorkerInfo.from_json(text)) is None or w.last_seen < info.last_seen - STALE_MS]
        if gone:
            await client.hdel(keys.WORKERS, *gone)


async def unregister(client: Any, worker_id: str) -> None:
    await client.hdel(keys.WORKERS, worker_id)


def workers_into(pipe: Any) -> None:
    pipe.hgetall(keys.WORKERS)


def workers_from(reply: dict[str, str], now_ms: int | None = None) -> list[WorkerInfo]:
    now = int(time.time() * 1000) if now_ms is None else now_ms
    live = [w for text in (reply or {}).values()
            if (w := WorkerInfo.from_json(text)) is not None and w.last_seen >= now - STALE_MS]
    return sorted(live, key=lambda w: (w.host, w.started, w.pid))


async def read_workers(client: Any) -> list[WorkerInfo]:
    return workers_from(await client.hgetall(keys.WORKERS))

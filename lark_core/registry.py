"""The worker registry: every running worker's entry, refreshed on its heartbeat."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from lark_core import keys

#: a worker not seen for this long is gone (its entry also expires)
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

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> WorkerInfo:
        def num(k: str) -> int:
            try:
                return int(raw.get(k) or 0)
            except ValueError:
                return 0

        def lst(k: str) -> list[str]:
            try:
                value = json.loads(raw.get(k) or "[]")
            except ValueError:
                return []
            return [str(v) for v in value] if isinstance(value, list) else []

        return cls(id=raw.get("id", "?"), host=raw.get("host", "?"), pid=num("pid"),
                   queues=lst("queues"), concurrency=num("concurrency"), started=num("started"),
                   jobs_done=num("done"), jobs_failed=num("failed"), current=lst("current"),
                   last_seen=num("seen"), state=raw.get("state", "running"))


def entry_fields(info: WorkerInfo) -> dict[str, Any]:
    return {"id": info.id, "host": info.host, "pid": info.pid, "queues": json.dumps(info.queues),
            "concurrency": info.concurrency, "started": info.started, "done": info.jobs_done,
            "failed": info.jobs_failed, "current": json.dumps(info.current[:100]),
            "seen": info.last_seen, "state": info.state}


async def heartbeat(client: Any, info: WorkerInfo, ttl_ms: int = STALE_MS) -> None:
    key = keys.worker_key(info.id)
    pipe = client.pipeline(transaction=False)
    pipe.hset(key, mapping=entry_fields(info))
    pipe.pexpire(key, ttl_ms)
    pipe.zadd(keys.WORKERS, {info.id: info.last_seen})
    pipe.zremrangebyscore(keys.WORKERS, "-inf", info.last_seen - ttl_ms)
    await pipe.execute()


async def unregister(client: Any, worker_id: str) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.delete(keys.worker_key(worker_id))
    pipe.zrem(keys.WORKERS, worker_id)
    await pipe.execute()


async def read_workers(client: Any) -> list[WorkerInfo]:
    now = int(time.time() * 1000)
    ids = await client.zrangebyscore(keys.WORKERS, now - STALE_MS, "+inf")
    if not ids:
        return []
    pipe = client.pipeline(transaction=False)
    for worker_id in ids:
        pipe.hgetall(keys.worker_key(worker_id))
    raws = await pipe.execute()
    return sorted((WorkerInfo.from_hash(r) for r in raws if r), key=lambda w: (w.host, w.started))

#!/usr/bin/env python3
"""Redis memory per waiting job: Lark beside BullMQ's Python port, on one Redis.

Each system adds N no-op jobs (empty payload) to an empty database; the figure is the
growth of Redis's ``used_memory`` divided by N. BullMQ is measured only where the
``bullmq`` package is installed (``pip install bullmq``).

    python bench/memory_peers.py --redis-url redis://127.0.0.1:6390/0 --jobs 20000

The database is FLUSHDB'ed; port 6379 is refused unless --allow-6379.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlparse

import redis

BATCH = 1000


async def add_lark(url: str, n: int) -> None:
    from lark_core import Lark
    from lark_core.config import load_config

    folder = Path(tempfile.mkdtemp(prefix="lark-memory-"))
    (folder / "jobs").mkdir()
    cfg = folder / "lark.config.yaml"
    cfg.write_text(f"jobs:\n  queues: [bench]\n  dir: ./jobs\nredis:\n  url: {url}\n")
    lark = Lark(load_config(str(cfg)))
    q = lark.queue("bench")
    for start in range(0, n, BATCH):
        await q.add_bulk([{"name": "NoOp", "payload": {}} for _ in range(min(BATCH, n - start))])
    await lark.close()


async def add_bullmq(url: str, n: int) -> None:
    from bullmq import Queue

    q = Queue("bench", {"connection": url})
    for start in range(0, n, BATCH):
        await q.addBulk([{"name": "NoOp", "data": {}} for _ in range(min(BATCH, n - start))])
    await q.close()


SYSTEMS: dict[str, Callable[[str, int], Awaitable[None]]] = {"lark": add_lark, "bullmq": add_bullmq}


def bytes_per_job(r: redis.Redis, url: str, system: str, n: int) -> float:
    r.flushdb()
    base = int(r.info("memory")["used_memory"])
    asyncio.run(SYSTEMS[system](url, n))
    grown = int(r.info("memory")["used_memory"]) - base
    waiting = r.dbsize()
    r.flushdb()
    assert waiting > 0, f"{system}: nothing was stored"
    return round(grown / n, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--jobs", type=int, default=20_000)
    ap.add_argument("--allow-6379", action="store_true")
    args = ap.parse_args()
    if urlparse(args.redis_url).port in (None, 6379) and not args.allow_6379:
        sys.exit("refusing to FLUSHDB port 6379 (pass --allow-6379 if you mean it)")
    r = redis.Redis.from_url(args.redis_url)
    out: dict[str, object] = {"jobs": args.jobs}
    for system in SYSTEMS:
        if system != "lark" and importlib.util.find_spec(system) is None:
            out[f"{system}_bytes_per_waiting_job"] = None
            continue
        out[f"{system}_bytes_per_waiting_job"] = bytes_per_job(r, args.redis_url, system, args.jobs)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

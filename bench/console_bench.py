#!/usr/bin/env python3
"""What one console refresh costs as the data grows: 50 queues, up to 1M waiting and
100k failed jobs. Measures ``Lark.overview()`` (counts, metrics and workers of every queue in
one round trip) and one page of the failed list, at the start and at the end of the list.

    python bench/console_bench.py --redis-url redis://127.0.0.1:6390/0 [--waiting 1000000]
        [--failed 100000] [--queues 50] [--quick]

The database is FLUSHDB'ed (port 6379 is refused).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

from lark_core import Lark
from lark_core.config import load_config


def project(url: str, queues: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix="lark-console-bench-"))
    names = ", ".join(f"q{i:02d}" for i in range(queues))
    (root / "lark.config.yaml").write_text(f"jobs:\n  queues: [{names}]\nredis:\n  url: {url}\n")
    return root / "lark.config.yaml"


async def timed(fn, reps: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(samples), 2)


async def fill_waiting(lark: Lark, n: int) -> None:
    q = lark.queue("q00")
    for start in range(0, n, 5000):
        await q.add_bulk([{"name": "Noop", "payload": {"i": start + i}}
                          for i in range(min(5000, n - start))])


def fill_failed(r: redis.Redis, lark: Lark, n: int) -> None:
    """Failed jobs written in the engine's record layout (faster than failing them)."""
    keys = lark.queue("q01").keys
    now = int(time.time() * 1000)
    for start in range(0, n, 5000):
        pipe = r.pipeline(transaction=False)
        for i in range(start, min(start + 5000, n)):
            job_id = f"failed-{i:07d}"
            pipe.hset(keys.job(job_id), mapping={
                "name": "Noop", "data": "{}", "prio": 0, "ts": now, "state": "failed", "atm": 5,
                "fon": now + i, "fr": "RuntimeError: upstream said no", "st": "Traceback ..."})
            pipe.zadd(keys.failed, {job_id: now + i})
        pipe.execute()


async def measure(lark: Lark, reps: int) -> dict[str, float]:
    failed = lark.queue("q01")
    total = (await failed.get_job_counts())["failed"]
    return {
        "overview_ms": await timed(lambda: lark.overview(30), reps),
        "failed_first_page_ms": await timed(lambda: failed.get_failed(0, 49), reps),
        "failed_last_page_ms": await timed(lambda: failed.get_failed(max(total - 50, 0), total), reps),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6390/0")
    ap.add_argument("--queues", type=int, default=50)
    ap.add_argument("--waiting", type=int, default=1_000_000)
    ap.add_argument("--failed", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="small sizes (CI)")
    args = ap.parse_args()
    if (urlparse(args.redis_url).port or 6379) == 6379:
        sys.exit("refusing to FLUSHDB a Redis on port 6379")
    waiting, failed = (2000, 500) if args.quick else (args.waiting, args.failed)
    r = redis.Redis.from_url(args.redis_url)
    r.flushdb()
    lark = Lark(load_config(project(args.redis_url, args.queues)))

    async def run() -> dict[str, object]:
        out: dict[str, object] = {"queues": args.queues, "empty": await measure(lark, 20)}
        await fill_waiting(lark, waiting)
        fill_failed(r, lark, failed)
        out["loaded"] = {"waiting": waiting, "failed": failed, **await measure(lark, 20)}
        counts = (await lark.overview(30)).counts
        assert counts["q00"]["waiting"] == waiting and counts["q01"]["failed"] == failed
        await lark.close()
        return out

    print(json.dumps(asyncio.run(run())))
    r.flushdb()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Soak: workers under steady load for N minutes; Redis memory, worker RSS and connections.

    python bench/soak.py --redis-url redis://127.0.0.1:6390/0 --minutes 10 --rate 300 --workers 2

Prints one line per sample interval and a summary; with completed jobs removed
(``removeOnComplete: true``) every column should stay flat. The database is FLUSHDB'ed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import psutil
import redis

sys.path.insert(0, str(Path(__file__).parent))
from lark_bench import DONE_KEY, Workers, project  # noqa: E402


def sample(r: redis.Redis, workers: Workers) -> dict[str, float]:
    mem = r.info("memory")
    clients = r.info("clients")
    rss = 0
    for p in workers.procs:
        try:
            rss += psutil.Process(p.pid).memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return {"t": round(time.time(), 1), "done": int(r.get(DONE_KEY) or 0),
            "redis_used_mb": round(int(mem["used_memory"]) / 2**20, 2),
            "worker_rss_mb": round(rss / 2**20, 1),
            "connected_clients": int(clients["connected_clients"]), "dbsize": r.dbsize()}


async def produce(config: Path, rate: float, stop_at: float) -> int:
    from lark_core import Lark

    lark = Lark(config_path=config)
    q = lark.queue("bench")
    sent, t0 = 0, time.perf_counter()
    while time.monotonic() < stop_at:
        due = t0 + sent / rate - time.perf_counter()
        if due > 0:
            await asyncio.sleep(due)
        await q.add("NoOp", {})
        sent += 1
    await lark.close()
    return sent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6390/0")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--rate", type=float, default=300.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    args = ap.parse_args()
    if (urlparse(args.redis_url).port or 6379) == 6379:
        sys.exit("refusing to FLUSHDB a Redis on port 6379")
    r = redis.Redis.from_url(args.redis_url)
    r.flushdb()
    config = project(args.redis_url, 20)
    os.environ["LARK_BENCH_URL"] = args.redis_url
    workers = Workers(config, args.workers, args.redis_url)
    stop_at = time.monotonic() + args.minutes * 60
    samples: list[dict[str, float]] = []

    async def run() -> int:
        prod = asyncio.create_task(produce(config, args.rate, stop_at))
        while not prod.done():
            samples.append(sample(r, workers))
            print(json.dumps(samples[-1]), flush=True)
            await asyncio.wait([prod], timeout=args.every)
        return prod.result()

    sent = asyncio.run(run())
    deadline = time.monotonic() + 60
    while int(r.get(DONE_KEY) or 0) < sent and time.monotonic() < deadline:
        time.sleep(0.1)
    samples.append(sample(r, workers))
    workers.stop()
    first, last = samples[1] if len(samples) > 1 else samples[0], samples[-1]
    print(json.dumps({"sent": sent, "done": last["done"],
                      "redis_used_mb": [first["redis_used_mb"], last["redis_used_mb"]],
                      "worker_rss_mb": [first["worker_rss_mb"], last["worker_rss_mb"]],
                      "connected_clients": [first["connected_clients"], last["connected_clients"]]}))
    if last["done"] != sent:
        sys.exit(f"soak: {sent} jobs sent but {last['done']} ran")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Lark's own benchmark: enqueue, bulk enqueue, drain, pickup latency, cost per job.

    python bench/lark_bench.py --redis-url redis://127.0.0.1:6390/0 [--jobs 20000]
        [--workers 1] [--concurrency 50] [--rate 200 --duration 10] [--quick] [--json]

Runs against the Redis you name (its database is FLUSHDB'ed: port 6379 is refused unless
--allow-6379). Every no-op job INCRs a counter; a run counts only if the counter ends
exactly at N (nothing lost, nothing run twice). ``--quick`` is the small variant CI runs:
it checks the counts and prints the figures but asserts no timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import psutil
import redis

DONE_KEY = "bench:done"
LAT_KEY = "bench:lat"

JOB_FILE = '''import os, time
import redis.asyncio as aredis
from lark_core import Job

_client = None


class NoOp(Job):
    queue = "bench"

    async def handle(self, payload):
        global _client
        start = time.time()
        if _client is None:
            _client = aredis.Redis.from_url(os.environ["LARK_BENCH_URL"])
        t = payload.get("t", 0)
        if t:
            pipe = _client.pipeline(transaction=False)
            pipe.rpush("bench:lat", repr(start - t))
            pipe.incr("bench:done")
            await pipe.execute()
        else:
            await _client.incr("bench:done")
'''


def project(url: str, concurrency: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix="lark-bench-"))
    (root / "jobs").mkdir()
    (root / "jobs" / "noop.py").write_text(JOB_FILE)
    (root / "lark.config.yaml").write_text(
        "jobs:\n  queues: [bench]\n  dir: ./jobs\n  options:\n    removeOnComplete: true\n"
        f"    attempts: 1\nredis:\n  url: {url}\nworker:\n  concurrency: {concurrency}\n")
    return root / "lark.config.yaml"


def lark_core_exe() -> str:
    exe = Path(sys.executable).with_name("lark-core")
    return str(exe) if exe.exists() else "lark-core"


class Workers:
    def __init__(self, config: Path, n: int, url: str) -> None:
        env = dict(os.environ, LARK_BENCH_URL=url)
        self.log = open(config.parent / "workers.log", "wb")  # noqa: SIM115 - closed in stop()
        self.procs = [subprocess.Popen([lark_core_exe(), "worker", "--config", str(config)],
                                       env=env, stdout=self.log, stderr=subprocess.STDOUT)
                      for _ in range(n)]

    def cpu(self) -> float:
        total = 0.0
        for p in self.procs:
            try:
                t = psutil.Process(p.pid).cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def stop(self) -> list[int]:
        for p in self.procs:
            p.terminate()
        codes = [p.wait(timeout=30) for p in self.procs]
        self.log.close()
        return codes


def commands(r: redis.Redis) -> int:
    return int(r.info("stats")["total_commands_processed"])


async def enqueue(config: Path, n: int, bulk: bool, stamp: bool = False) -> float:
    os.environ["LARK_CONFIG"] = str(config)
    from lark_core import Lark

    lark = Lark(config_path=config)
    q = lark.queue("bench")
    t0 = time.perf_counter()
    if bulk:
        for start in range(0, n, 1000):
            await q.add_bulk([{"name": "NoOp", "payload": {}} for _ in range(min(1000, n - start))])
    else:
        for _ in range(n):
            await q.add("NoOp", {"t": time.time()} if stamp else {})
    took = time.perf_counter() - t0
    await lark.close()
    return took


def dispatch_sync_rate(config: Path, n: int) -> float:
    from lark_core import Lark

    q = Lark(config_path=config).queue("bench")
    t0 = time.perf_counter()
    for _ in range(n):
        q.add_sync("NoOp", {})
    return n / (time.perf_counter() - t0)


def drain(r: redis.Redis, config: Path, url: str, n: int, workers: int) -> dict[str, float]:
    c0 = commands(r)
    w = Workers(config, workers, url)
    t_first = c_first = cpu_first = None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        done = int(r.get(DONE_KEY) or 0)
        now = time.perf_counter()
        if done and t_first is None:
            t_first, c_first, cpu_first = now, done, w.cpu()
        if done >= n:
            break
        time.sleep(0.005)
    cpu = w.cpu() - (cpu_first or 0)
    time.sleep(0.3)
    final = int(r.get(DONE_KEY) or 0)
    c1 = commands(r)
    w.stop()
    assert final == n, f"drain: {final} jobs ran, expected exactly {n}"
    assert t_first is not None and c_first is not None
    span = max(now - t_first, 1e-9)
    return {"drain_jobs_s": round((n - c_first) / span, 1),
            "worker_cpu_ms_per_job": round(1000 * cpu / max(n - c_first, 1), 3),
            "redis_cmds_per_job": round((c1 - c0) / n, 2)}


def latency(r: redis.Redis, config: Path, url: str, rate: float, duration: float) -> dict[str, float]:
    w = Workers(config, 1, url)
    asyncio.run(enqueue(config, 10, bulk=False))
    deadline = time.monotonic() + 30
    while int(r.get(DONE_KEY) or 0) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    r.delete(LAT_KEY, DONE_KEY)
    time.sleep(2.0)  # the worker is idle, blocked waiting for work

    async def paced() -> None:
        os.environ["LARK_CONFIG"] = str(config)
        from lark_core import Lark

        lark = Lark(config_path=config)
        q = lark.queue("bench")
        t0 = time.perf_counter()
        for i in range(int(rate * duration)):
            pause = t0 + i / rate - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
            await q.add("NoOp", {"t": time.time()})
        await lark.close()

    asyncio.run(paced())
    n = int(rate * duration)
    deadline = time.monotonic() + 30
    while int(r.get(DONE_KEY) or 0) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    w.stop()
    lats = sorted(float(x) * 1000 for x in r.lrange(LAT_KEY, 0, -1))
    assert len(lats) == n, f"latency: {len(lats)} jobs ran, expected {n}"
    q = statistics.quantiles(lats, n=100)
    return {"p50_ms": round(q[49], 2), "p99_ms": round(q[98], 2)}


def memory_per_job(r: redis.Redis, config: Path, n: int) -> float:
    r.flushdb()
    base = int(r.info("memory")["used_memory"])
    asyncio.run(enqueue(config, n, bulk=True))
    return round((int(r.info("memory")["used_memory"]) - base) / n, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6390/0")
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--quick", action="store_true", help="small run that checks counts (CI)")
    ap.add_argument("--allow-6379", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if (urlparse(args.redis_url).port or 6379) == 6379 and not args.allow_6379:
        sys.exit("refusing to FLUSHDB a Redis on port 6379; start a private one (see bench/README.md)")
    n = 500 if args.quick else args.jobs
    rate, duration = (100.0, 1.0) if args.quick else (args.rate, args.duration)
    r = redis.Redis.from_url(args.redis_url)
    config = project(args.redis_url, args.concurrency)
    res: dict[str, object] = {"jobs": n, "workers": args.workers, "concurrency": args.concurrency}
    r.flushdb()
    res["bulk_enqueue_jobs_s"] = round(n / asyncio.run(enqueue(config, n, bulk=True)), 1)
    r.flushdb()
    res["dispatch_sync_jobs_s"] = round(dispatch_sync_rate(config, min(n, 5000)), 1)
    r.flushdb()
    c0 = commands(r)
    res["enqueue_jobs_s"] = round(n / asyncio.run(enqueue(config, n, bulk=False)), 1)
    res["redis_cmds_per_enqueue"] = round((commands(r) - c0) / n, 2)
    res.update(drain(r, config, args.redis_url, n, args.workers))
    r.flushdb()
    res.update(latency(r, config, args.redis_url, rate, duration))
    res["redis_bytes_per_waiting_job"] = memory_per_job(r, config, n)
    r.flushdb()
    print(json.dumps(res) if args.json else "\n".join(f"{k:32} {v}" for k, v in res.items()))


if __name__ == "__main__":
    main()

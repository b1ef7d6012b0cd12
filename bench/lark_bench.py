#!/usr/bin/env python3
"""Lark's own benchmark: enqueue, bulk enqueue, drain, pickup latency, delayed-job
lateness, and the cost per job (worker CPU, Redis commands, Redis memory).

Start a Redis of your own for it (its database is FLUSHDB'ed; port 6379 is refused
unless --allow-6379), then run from the repository root:

    redis-server --port 6390 --save '' --appendonly no --daemonize yes
    python bench/lark_bench.py --redis-url redis://127.0.0.1:6390/0
    python bench/lark_bench.py --redis-url redis://127.0.0.1:6390/0 --workers 2 --concurrency 20
    python bench/lark_bench.py --redis-url redis://127.0.0.1:6390/0 --only bulk,drain --repeat 5

Sections (--only, comma-separated; all by default):
  bulk      add_bulk of N no-op jobs in bulks of 1000        -> bulk_enqueue_jobs_s
  sync      add_sync (dispatch_sync) one by one, up to 5000  -> dispatch_sync_jobs_s
  enqueue   async add one by one                             -> enqueue_jobs_s, redis_cmds_per_enqueue
  drain     W worker processes (`lark-core worker`) x concurrency drain the N jobs
            -> drain_jobs_s (from the first job done to the last, start-up excluded),
               worker_cpu_ms_per_job (user+sys), drain_cores_busy (worker and Redis CPU
               seconds per second of drain), redis_cmds_per_job (all commands Redis
               ran during the drain, inside scripts too, incl. the job's own INCR)
  latency   one idle worker; jobs added at --rate for --duration -> p50_ms, p99_ms (add -> start)
  delayed   one idle worker; --delayed-jobs jobs due 50..1000 ms after they are added
            (every 10th one alone, nothing else waking the worker before it is due)
            -> delayed_late_p50_ms, delayed_late_p99_ms, delayed_late_max_ms (due -> start)
  memory    N waiting jobs                                   -> redis_bytes_per_waiting_job,
            and bullmq_bytes_per_waiting_job where `pip install bullmq` put BullMQ's Python port

Every no-op job INCRs a counter; a run counts only if the counter ends exactly at N
(nothing lost, nothing run twice). With --repeat R each figure is the median of R runs.
--quick is the small variant CI runs: it checks the counts and prints the figures but
asserts no timing.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
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


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


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
    redis_first = 0.0
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        done = int(r.get(DONE_KEY) or 0)
        now = time.perf_counter()
        if done and t_first is None:
            t_first, c_first, cpu_first, redis_first = now, done, w.cpu(), redis_cpu(r)
        if done >= n:
            break
        time.sleep(0.005)
    cpu = w.cpu() - (cpu_first or 0)
    redis_busy = redis_cpu(r) - redis_first
    time.sleep(0.3)
    final = int(r.get(DONE_KEY) or 0)
    c1 = commands(r)
    w.stop()
    assert final == n, f"drain: {final} jobs ran, expected exactly {n}"
    assert t_first is not None and c_first is not None
    span = max(now - t_first, 1e-9)
    return {"drain_jobs_s": round((n - c_first) / span, 1),
            "worker_cpu_ms_per_job": round(1000 * cpu / max(n - c_first, 1), 3),
            # cores kept busy by the workers and Redis together (of os.cpu_count())
            "drain_cores_busy": round((cpu + redis_busy) / span, 2),
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


def delayed(r: redis.Redis, config: Path, url: str, n: int) -> dict[str, float]:
    """How late delayed jobs start: each is due 50..1000 ms after it is added; idle worker."""
    w = Workers(config, 1, url)
    asyncio.run(enqueue(config, 10, bulk=False))
    deadline = time.monotonic() + 30
    while int(r.get(DONE_KEY) or 0) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    r.delete(LAT_KEY, DONE_KEY)
    time.sleep(1.0)
    rng = random.Random(7)

    async def add_delayed() -> None:
        from lark_core import Lark

        lark = Lark(config_path=config)
        q = lark.queue("bench")
        for i in range(n):
            delay_ms = rng.randint(50, 1000)
            # the due time as the producer sees it just before the send: at or before Redis's
            await q.add("NoOp", {"t": time.time() + delay_ms / 1000}, delay=delay_ms)
            # mostly a stream of adds (each wakes the worker); every 10th job is due alone,
            # with nothing else to wake the worker before it
            await asyncio.sleep(delay_ms / 1000 + 0.2 if i % 10 == 9 else rng.uniform(0, 0.02))
        await lark.close()

    asyncio.run(add_delayed())
    deadline = time.monotonic() + 30
    while int(r.get(DONE_KEY) or 0) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    w.stop()
    late = sorted(float(x) * 1000 for x in r.lrange(LAT_KEY, 0, -1))
    assert len(late) == n, f"delayed: {len(late)} jobs ran, expected {n}"
    q = statistics.quantiles(late, n=100)
    return {"delayed_late_p50_ms": round(q[49], 2), "delayed_late_p99_ms": round(q[98], 2),
            "delayed_late_max_ms": round(late[-1], 2)}


def memory_per_job(r: redis.Redis, add: Callable[[], Coroutine[Any, Any, int]]) -> float:
    """Growth of Redis's used_memory per job while ``add()`` puts N waiting jobs in."""
    r.flushdb()
    base = int(r.info("memory")["used_memory"])
    n = asyncio.run(add())
    grown = int(r.info("memory")["used_memory"]) - base
    r.flushdb()
    return round(grown / n, 1)


async def bullmq_enqueue(url: str, n: int) -> int:
    """The same N no-op jobs through BullMQ's Python port, for its memory per waiting job."""
    from bullmq import Queue

    q = Queue("bench", {"connection": url})
    for start in range(0, n, 1000):
        await q.addBulk([{"name": "NoOp", "data": {}} for _ in range(min(1000, n - start))])
    await q.close()
    return n


async def lark_enqueue(config: Path, n: int) -> int:
    await enqueue(config, n, bulk=True)
    return n


SECTIONS = ("bulk", "sync", "enqueue", "drain", "latency", "delayed", "memory")


def run_once(args: argparse.Namespace, sections: set[str], config: Path) -> dict[str, float]:
    """One run of the chosen sections; each starts from an empty database."""
    n = 500 if args.quick else args.jobs
    rate, duration = (100.0, 1.0) if args.quick else (args.rate, args.duration)
    r = redis.Redis.from_url(args.redis_url)
    res: dict[str, float] = {}
    if "bulk" in sections:
        r.flushdb()
        res["bulk_enqueue_jobs_s"] = round(n / asyncio.run(enqueue(config, n, bulk=True)), 1)
    if "sync" in sections:
        r.flushdb()
        res["dispatch_sync_jobs_s"] = round(dispatch_sync_rate(config, min(n, 5000)), 1)
    if sections & {"enqueue", "drain"}:
        r.flushdb()
        c0 = commands(r)
        res["enqueue_jobs_s"] = round(n / asyncio.run(enqueue(config, n, bulk=False)), 1)
        res["redis_cmds_per_enqueue"] = round((commands(r) - c0) / n, 2)
    if "drain" in sections:
        res.update(drain(r, config, args.redis_url, n, args.workers))
    if "latency" in sections:
        r.flushdb()
        res.update(latency(r, config, args.redis_url, rate, duration))
    if "delayed" in sections:
        r.flushdb()
        res.update(delayed(r, config, args.redis_url, 20 if args.quick else args.delayed_jobs))
    if "memory" in sections:
        res["redis_bytes_per_waiting_job"] = memory_per_job(r, lambda: lark_enqueue(config, n))
        if importlib.util.find_spec("bullmq") is not None:
            res["bullmq_bytes_per_waiting_job"] = memory_per_job(
                r, lambda: bullmq_enqueue(args.redis_url, n))
    r.flushdb()
    r.close()
    return res


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6390/0",
                    help="the Redis to use; its database is FLUSHDB'ed (default: %(default)s)")
    ap.add_argument("--jobs", type=int, default=20000, help="N, jobs per section (default: %(default)s)")
    ap.add_argument("--workers", type=int, default=1,
                    help="worker processes for the drain (default: %(default)s)")
    ap.add_argument("--concurrency", type=int, default=50,
                    help="jobs at once per worker process (default: %(default)s)")
    ap.add_argument("--rate", type=float, default=200.0,
                    help="jobs/s added in the latency section (default: %(default)s)")
    ap.add_argument("--duration", type=float, default=10.0,
                    help="seconds of the latency section (default: %(default)s)")
    ap.add_argument("--delayed-jobs", type=int, default=100,
                    help="delayed jobs in the delayed section (default: %(default)s)")
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help="sections to run, comma-separated (default: all)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs; each figure printed is the median (default: %(default)s)")
    ap.add_argument("--quick", action="store_true",
                    help="small run for CI: 500 jobs, 1 s of latency, 20 delayed jobs; checks counts")
    ap.add_argument("--allow-6379", action="store_true", help="allow a Redis on port 6379 (FLUSHDB!)")
    ap.add_argument("--json", action="store_true", help="print one JSON line (with every run's values)")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    if (urlparse(args.redis_url).port or 6379) == 6379 and not args.allow_6379:
        sys.exit("refusing to FLUSHDB a Redis on port 6379; start a private one (see --help)")
    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    if not sections or not sections <= set(SECTIONS):
        sys.exit(f"--only: expected some of {', '.join(SECTIONS)}, got {args.only!r}")
    config = project(args.redis_url, args.concurrency)
    runs = [run_once(args, sections, config) for _ in range(max(args.repeat, 1))]
    res: dict[str, object] = {"jobs": 500 if args.quick else args.jobs, "workers": args.workers,
                              "concurrency": args.concurrency}
    for key in runs[0]:
        res[key] = round(statistics.median(run[key] for run in runs), 2)
    if args.json:
        if len(runs) > 1:
            res["runs"] = runs
        print(json.dumps(res))
    else:
        print_table(res, runs)


def print_table(res: dict[str, object], runs: list[dict[str, float]]) -> None:
    for key, value in res.items():
        spread = ""
        if len(runs) > 1 and key in runs[0]:
            spread = f"  (runs: {', '.join(str(run[key]) for run in runs)})"
        print(f"{key:32} {value}{spread}")


if __name__ == "__main__":
    main()

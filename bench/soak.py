#!/usr/bin/env python3
"""Soak: `lark-core worker` processes under steady load for N minutes; Redis memory,
worker RSS and open connections over time.

    python bench/soak.py --minutes 10 [--rate 300] [--workers 2] [--concurrency 20]
    python bench/soak.py --redis-url redis://127.0.0.1:6390/0 --minutes 10   # a Redis of yours

Without ``--redis-url`` it starts a private redis-server on a free port (AOF,
``appendfsync everysec``) and removes it afterwards; a Redis you name is FLUSHDB'ed
(port 6379 is refused). Completed jobs are removed (``removeOnComplete: true``), so
after the first minute (the event stream filling to its cap) every column should stay
flat. The job handler does nothing, so every connection counted is the engine's, and
"done" is the engine's own completion count. Prints one row per sample, then the drift
from the first minute to the end; exits 1 unless completions equal the jobs sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psutil
import redis

from lark_core.keys import QueueKeys

QUEUE = "soak"
#: the handler touches no Redis of its own: every connection counted is the engine's,
#: and "done" is the engine's own per-minute completion count
JOB_FILE = '''from lark_core import Job


class NoOp(Job):
    queue = "soak"

    async def handle(self, payload):
        return None
'''

COLUMNS = ("t_s", "sent", "done", "backlog", "redis_mb", "redis_rss_mb", "keys", "worker_rss_mb",
           "worker_conns", "redis_clients")


@contextmanager
def private_redis() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server not found; pass --redis-url")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tempfile.mkdtemp(prefix="lark-soak-redis-")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", folder,
                             "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
                             "--maxmemory-policy", "noeviction", "--logfile", f"{folder}/redis.log"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    sys.exit("the private redis-server did not start")
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        shutil.rmtree(folder, ignore_errors=True)


def project(url: str, concurrency: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix="lark-soak-"))
    (root / "jobs").mkdir()
    (root / "jobs" / "noop.py").write_text(JOB_FILE)
    (root / "lark.config.yaml").write_text(
        f"jobs:\n  queues: [{QUEUE}]\n  dir: ./jobs\n  options:\n    removeOnComplete: true\n"
        f"    attempts: 1\nredis:\n  url: {url}\nworker:\n  concurrency: {concurrency}\n")
    return root / "lark.config.yaml"


class Workers:
    """``lark-core worker`` processes on the soak's project; output to one log file."""

    def __init__(self, config: Path, n: int) -> None:
        exe = Path(sys.executable).with_name("lark-core")
        cmd = [str(exe) if exe.exists() else "lark-core", "worker", "--config", str(config)]
        self.log = open(config.parent / "workers.log", "wb")  # noqa: SIM115 - closed in stop()
        self.procs = [subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
                      for _ in range(n)]

    def stop(self) -> list[int]:
        for p in self.procs:
            p.terminate()
        codes = [p.wait(timeout=30) for p in self.procs]
        self.log.close()
        return codes


def completed(r: redis.Redis) -> int:
    """Completions the engine recorded (per-minute metrics of the queue)."""
    metrics: dict[bytes, bytes] = r.hgetall(QueueKeys(QUEUE).metrics)  # type: ignore[assignment]
    return sum(int(v) for f, v in metrics.items() if f.startswith(b"c:"))


def worker_figures(workers: Workers, redis_port: int) -> tuple[float, int]:
    """(total RSS in MiB, TCP connections to Redis) over the worker processes."""
    rss, conns = 0, 0
    for p in workers.procs:
        try:
            proc = psutil.Process(p.pid)
            rss += proc.memory_info().rss
            conns += sum(1 for c in proc.net_connections("tcp") if c.raddr and c.raddr.port == redis_port)
        except psutil.Error:
            pass
    return round(rss / 2**20, 1), conns


def sample(r: redis.Redis, workers: Workers, port: int, t0: float, sent: Callable[[], int]) -> dict[str, Any]:
    mem = r.info("memory")
    done = completed(r)
    sent_n = sent()  # read after done (an add can complete before its await returns)
    rss, conns = worker_figures(workers, port)
    return {"t_s": round(time.monotonic() - t0), "sent": sent_n, "done": done,
            "backlog": max(sent_n - done, 0),
            "redis_mb": round(int(mem["used_memory"]) / 2**20, 2),
            "redis_rss_mb": round(int(mem["used_memory_rss"]) / 2**20, 1),
            "keys": r.dbsize(), "worker_rss_mb": rss, "worker_conns": conns,
            "redis_clients": int(r.info("clients")["connected_clients"])}


class Producer:
    """Adds no-op jobs at a steady rate, one ``add`` per job."""

    def __init__(self, config: Path, rate: float) -> None:
        self.config, self.rate, self.sent = config, rate, 0

    async def run(self, stop_at: float) -> None:
        from lark_core import Lark

        lark = Lark(config_path=self.config)
        q = lark.queue(QUEUE)
        t0 = time.perf_counter()
        while time.monotonic() < stop_at:
            due = t0 + self.sent / self.rate - time.perf_counter()
            if due > 0:
                await asyncio.sleep(due)
            await q.add("NoOp", {})
            self.sent += 1
        await lark.close()


def drift(samples: list[dict[str, Any]], warmup_s: float) -> dict[str, list[float]]:
    """Each column at the end of the warm-up and at the end: [first, last]."""
    steady = [s for s in samples if s["t_s"] >= warmup_s] or samples
    first, last = steady[0], samples[-1]
    return {k: [first[k], last[k]] for k in ("redis_mb", "redis_rss_mb", "keys", "worker_rss_mb",
                                             "worker_conns", "redis_clients")}


def soak(url: str, args: argparse.Namespace) -> int:
    r = redis.Redis.from_url(url)
    r.flushdb()
    port = urlparse(url).port or 6379
    config = project(url, args.concurrency)
    workers = Workers(config, args.workers)
    producer = Producer(config, args.rate)
    t0 = time.monotonic()
    stop_at = t0 + args.minutes * 60
    samples: list[dict[str, Any]] = []
    print(" ".join(f"{c:>13}" for c in COLUMNS), flush=True)

    def record() -> None:
        samples.append(sample(r, workers, port, t0, lambda: producer.sent))
        print(" ".join(f"{samples[-1][c]:>13}" for c in COLUMNS), flush=True)

    async def run() -> None:
        task = asyncio.create_task(producer.run(stop_at))
        while not task.done():
            await asyncio.to_thread(record)
            await asyncio.wait([task], timeout=args.every)
        task.result()

    try:
        asyncio.run(run())
        deadline = time.monotonic() + 60
        while completed(r) < producer.sent and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        record()
    finally:
        codes = workers.stop()
    result = {"minutes": args.minutes, "rate_per_s": args.rate, "workers": args.workers,
              "concurrency": args.concurrency, "sent": producer.sent, "done": samples[-1]["done"],
              "worker_exit_codes": codes, "first_minute_vs_end": drift(samples, min(60.0, args.minutes * 20))}
    print(json.dumps(result) if args.json else "\n".join(
        [f"sent {producer.sent}, completed {samples[-1]['done']} (equal: "
         f"{samples[-1]['done'] == producer.sent}); worker exit codes {codes}",
         "from the end of the first minute to the end:"]
        + [f"  {k:14} {a} -> {b}" for k, (a, b) in result["first_minute_vs_end"].items()]))
    if samples[-1]["done"] != producer.sent:
        print(f"soak: {producer.sent} jobs sent but {samples[-1]['done']} completed; worker logs in "
              f"{config.parent}", file=sys.stderr)
        return 1
    shutil.rmtree(config.parent, ignore_errors=True)
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis-url", default=None, help="default: a private redis-server on a free port")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--rate", type=float, default=300.0, help="jobs added per second")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--json", action="store_true", help="summary as JSON")
    args = ap.parse_args()
    if args.redis_url is None:
        with private_redis() as url:
            sys.exit(soak(url, args))
    if (urlparse(args.redis_url).port or 6379) == 6379:
        sys.exit("refusing to FLUSHDB a Redis on port 6379")
    sys.exit(soak(args.redis_url, args))


if __name__ == "__main__":
    main()

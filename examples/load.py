"""A load generator for the demo project: a realistic mixed stream of jobs on all four queues.

    python examples/load.py                       # 5 jobs/s until Ctrl-C
    python examples/load.py --rate 50 --duration 30
    python examples/load.py --config path/to/lark.config.yaml

It only produces: it enqueues by job name through the public ``queues`` proxy
(``add`` for a single job, ``add_bulk`` for a batch: one round trip per queue per
tick) and never imports the job classes. Start ``lark-core worker`` to process them.
Each second it prints what it enqueued and each queue's backlog.

The stream: welcome e-mails (a few with a bad address, which fail validation), flaky
API calls (some fail and are retried with backoff), image resizes, inventory syncs on
``high-priority`` (urgent ones jump the line) and sales reports, some scheduled a few
seconds ahead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "lark.config.yaml"
QUEUES = ("default", "high-priority", "emails", "reports")
TICK_S = 0.1

# fmt: off
FIRST = ["Ada", "Grace", "Alan", "Barbara", "Edsger", "Frances", "Donald", "Radia", "Ken",
         "Margaret", "Linus", "Guido"]
LAST = ["Lovelace", "Hopper", "Turing", "Liskov", "Dijkstra", "Allen", "Knuth", "Perlman",
        "Thompson", "Hamilton", "Torvalds", "van Rossum", "Wilson", "Berners-Lee"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com"]
PLANS = ["starter", "starter", "team", "pro"]
ENDPOINTS = ["/v1/orders/sync", "/v1/invoices", "/v2/shipments/track", "/v1/payments/capture"]
WAREHOUSES = ["AMS-1", "FRA-2", "DUB-1", "IAD-3", "SFO-1", "SIN-1", "GRU-1"]
# fmt: on
REGIONS = [None, None, "EMEA", "North America", "APAC", "LATAM"]
MONTHS: list[tuple[str | None, str | None]] = [
    *(
        (f"2024-{m:02d}-01", f"2024-{m:02d}-{d}")
        for m, d in zip(range(1, 7), (31, 29, 31, 30, 31, 30), strict=True)
    ),
    ("2024-01-01", "2024-03-31"),
    ("2024-04-01", "2024-06-30"),
    (None, None),
]

#: One job for the stream: (queue, {"name", "payload", "opts"}) as ``add_bulk`` takes it.
Spec = tuple[str, dict[str, Any]]


def welcome_email(rng: random.Random) -> Spec:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    address = f"{first}.{last}".lower().replace(" ", "") + f"@{rng.choice(DOMAINS)}"
    if rng.random() < 0.03:  # a sign-up form let a typo through: fails validation
        address = address.replace("@", rng.choice([" at ", "@@", ""]))
    payload = {"to": address, "name": f"{first} {last}", "plan": rng.choice(PLANS)}
    return "emails", {"name": "SendWelcomeEmail", "payload": payload, "opts": {}}


def flaky_call(rng: random.Random) -> Spec:
    payload = {
        "endpoint": rng.choice(ENDPOINTS),
        "failure_rate": rng.choice([0.1, 0.2, 0.3, 0.5]),
        "latency_ms": [30, rng.choice([150, 300, 600])],
    }
    return "default", {"name": "FlakyApiCall", "payload": payload, "opts": {}}


def resize_image(rng: random.Random) -> Spec:
    width, height = rng.choice([(640, 480), (800, 600), (1024, 768), (480, 480)])
    payload = {
        "image": f"uploads/{rng.choice(['avatar', 'product', 'banner'])}-{rng.randint(1000, 9999)}.png",
        "width": width,
        "height": height,
        "sizes": rng.choice([[256, 64], [128]]),
    }
    return "default", {"name": "ResizeImage", "payload": payload, "opts": {}}


def sync_inventory(rng: random.Random) -> Spec:
    urgent = rng.random() < 0.25  # an order came in for low stock: jump the line
    payload = {"warehouse": rng.choice(WAREHOUSES), "skus": rng.choice([10, 20, 40, 80])}
    opts = {"priority": 0 if urgent else 10}
    return "high-priority", {"name": "SyncInventory", "payload": payload, "opts": opts}


def sales_report(rng: random.Random) -> Spec:
    start, end = rng.choice(MONTHS)
    payload: dict[str, Any] = {"format": rng.choice(["md", "md", "csv"])}
    if region := rng.choice(REGIONS):
        payload["region"] = region
    if start:
        payload["from"], payload["to"] = start, end
    opts = {"delay": rng.randint(2, 10) * 1000} if rng.random() < 0.3 else {}
    return "reports", {"name": "BuildSalesReport", "payload": payload, "opts": opts}


MIX: list[tuple[Callable[[random.Random], Spec], int]] = [
    (welcome_email, 35),
    (flaky_call, 25),
    (sync_inventory, 20),
    (resize_image, 12),
    (sales_report, 8),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Put a realistic mixed stream of demo jobs on the Lark queues."
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=5.0,
        metavar="JOBS_PER_S",
        help="jobs enqueued per second (default: 5)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=0.0,
        metavar="S",
        help="stop after this many seconds (default: 0, run until Ctrl-C)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="lark.config.yaml to use (default: $LARK_CONFIG, else ./lark.config.yaml, else the demo's own)",
    )
    parser.add_argument("--seed", type=int, help="seed the random stream, for a repeatable run")
    args = parser.parse_args(argv)
    if not args.rate > 0:
        parser.error(f"--rate must be above 0, got {args.rate}")
    if args.duration < 0:
        parser.error(f"--duration must be 0 or more, got {args.duration}")
    return args


def choose_config(given: Path | None) -> Path:
    if given is not None:
        return given
    if os.environ.get("LARK_CONFIG"):
        return Path(os.environ["LARK_CONFIG"])
    local = Path("lark.config.yaml")
    return local if local.is_file() else DEMO_CONFIG


class LoadGenerator:
    def __init__(self, queues: Any, rate: float, rng: random.Random) -> None:
        self.queues = queues
        self.rate = rate
        self.rng = rng
        self.makers = [maker for maker, _ in MIX]
        self.weights = [weight for _, weight in MIX]
        self.owed = 0.0
        self.total: Counter[str] = Counter()
        self.second: Counter[str] = Counter()

    async def tick(self, elapsed_s: float) -> None:
        """Enqueue what the rate owes for ``elapsed_s``: one round trip per queue."""
        self.owed += self.rate * elapsed_s
        count = int(self.owed)
        self.owed -= count
        batches: dict[str, list[dict[str, Any]]] = {}
        for maker in self.rng.choices(self.makers, weights=self.weights, k=count):
            queue, job = maker(self.rng)
            batches.setdefault(queue, []).append(job)
        await asyncio.gather(*(self.send(q, jobs) for q, jobs in batches.items()))

    async def send(self, queue: str, jobs: list[dict[str, Any]]) -> None:
        q = self.queues[queue]
        if len(jobs) == 1:
            await q.add(jobs[0]["name"], jobs[0]["payload"], **jobs[0]["opts"])
        else:
            await q.add_bulk(jobs)
        self.second[queue] += len(jobs)
        self.total[queue] += len(jobs)

    async def report(self, at_s: float) -> None:
        """One line: what went out in the last second, and each queue's backlog."""
        counts = await asyncio.gather(*(self.queues[q].get_job_counts() for q in QUEUES))
        sent = sum(self.second.values())
        parts = []
        for name, c in zip(QUEUES, counts, strict=True):
            backlog = c.get("waiting", 0) + c.get("delayed", 0) + c.get("paused", 0)
            parts.append(f"{name} +{self.second[name]} ({backlog} queued, {c.get('failed', 0)} failed)")
        print(f"[{at_s:6.1f}s] +{sent:<4d} " + " | ".join(parts), flush=True)
        self.second.clear()


async def run(args: argparse.Namespace) -> int:
    from lark_core import ConfigError, LarkError, default_project, queues  # loads $LARK_CONFIG lazily

    try:
        return await generate(args, queues)
    except LarkError as exc:  # bad config, Redis unreachable, ...: one clear line, no traceback
        print(f"load.py: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    finally:
        with contextlib.suppress(Exception):
            await default_project().close()


async def generate(args: argparse.Namespace, queues: Any) -> int:
    from lark_core.errors import RedisUnavailable

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)

    gen = LoadGenerator(queues, args.rate, random.Random(args.seed))
    started = last = time.monotonic()
    next_report = started + 1.0
    deadline = started + args.duration if args.duration else None
    down = False
    print(
        f"enqueuing ~{args.rate:g} jobs/s on {', '.join(QUEUES)}"
        f"{f' for {args.duration:g} s' if deadline else ' until Ctrl-C'}",
        flush=True,
    )
    while not stop.is_set():
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            break
        try:
            await gen.tick(now - last)
            if now >= next_report:
                await gen.report(now - started)
            down = False
        except RedisUnavailable as exc:
            if not gen.total:
                raise  # never reached Redis: say so and stop
            # an outage mid-run (a restart): this tick's jobs are dropped, the stream goes on
            if not down:
                print(f"load.py: {exc}; retrying", file=sys.stderr, flush=True)
            down = True
        last = now
        if now >= next_report:
            next_report = max(next_report + 1.0, now)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TICK_S)
    if gen.second:
        await gen.report(time.monotonic() - started)
    total = sum(gen.total.values())
    summary = ", ".join(f"{q} {gen.total[q]}" for q in QUEUES)
    print(
        f"stopped after {time.monotonic() - started:.1f} s: {total} jobs enqueued ({summary})",
        flush=True,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = choose_config(args.config)
    if not config.is_file():
        print(f"load.py: no config file at {config}", file=sys.stderr)
        return 2
    os.environ["LARK_CONFIG"] = str(config.resolve())
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:  # where signal handlers are unavailable
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

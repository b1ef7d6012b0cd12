"""``ChaosRun``: real ``lark-core worker`` processes on a real Redis, thousands of jobs,
and faults at seeded random moments; then the verdict of ``tests.chaos.check``.

    run = ChaosRun(seed=42, duration_s=60, n_jobs=5000, n_workers=3)
    report = run.run()          # prints progress and the report; report.ok is the verdict

Two redis-servers: the queue's (``appendfsync always``: what it acknowledged, it
keeps), which the run kills, restarts and cuts connections to; and a record store the
handlers write each execution to, which is never faulted. Faults (each kind spread
over the run, worker slots and durations from the seeded generator):

- ``kill``          SIGKILL a worker; a new one takes its slot a moment later
- ``freeze``        SIGSTOP a worker past its lock time and a sweep, then SIGCONT
- ``term``          SIGTERM a worker (half the time a second SIGTERM: in-flight jobs
                    go back to waiting); it must exit 0; a new one takes its slot
- ``conn``          ``CLIENT KILL`` the connections of one worker (or of every client)
- ``redis_restart`` graceful ``SHUTDOWN`` of Redis, down for a while, start again
- ``redis_crash``   SIGKILL Redis (appendfsync always), down for a while, start again
- ``pause``         pause a queue (or both) for a while, then resume
- ``retry``         ``retry_failed()`` on every queue while the workers run

Jobs (two queues, async and sync handlers): most just sleep a little; some fail their
first run and retry by backoff, some fail for good (attempts 1) and wait for a manual
retry, some outlive their timeout on the first run, some are delayed, priorities vary.
Job ids are chosen before the first send, so an add cut by a fault is sent again until
Redis acknowledges it. After the faults: resume, retry what failed, wait for every job
to complete, wait out one more lock time for stale workers, stop the workers with
SIGTERM (exit 0 expected), and check.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lark_core import Lark
from lark_core.ids import new_id
from tests.chaos.check import Checker, Fault, Report
from tests.conftest import write_project
from tests.redis_proc import RedisProc

QUEUES = ("alpha", "beta")
FAULT_KINDS = ("kill", "freeze", "term", "conn", "redis_restart", "redis_crash", "pause", "retry")
REPO = Path(__file__).resolve().parents[2]
JOBS_SOURCE = Path(__file__).with_name("chaos_jobs.py")
#: worker log lines that mean the engine itself went wrong (not a fault it survived)
BAD_LOG_LINES = ("internal worker error", "acknowledging jobs failed", "claim failed", "Traceback")


def now_ms() -> int:
    return int(time.time() * 1000)


def worker_command(config: Path) -> tuple[list[str], str]:
    """``lark-core worker --config P`` when the CLI exists, else the equivalent ``init_queues``."""
    mode = os.environ.get("LARK_CHAOS_WORKER", "auto")
    exe = Path(sys.executable).with_name("lark-core")
    if mode != "init_queues" and exe.exists() and importlib.util.find_spec("lark_core.cli"):
        return [str(exe), "worker", "--config", str(config)], "lark-core worker"
    code = f"from lark_core import init_queues; init_queues({str(config)!r})"
    return [sys.executable, "-c", code], "init_queues()"


@dataclass
class Slot:
    """One of the N worker places; its process is replaced after a kill or stop."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    busy: bool = False  # a fault is working on it (frozen, being killed or stopped)
    generation: int = 0

    log: Path | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def ready(self) -> bool:
        """Serving (signal handlers installed): a SIGTERM before that just kills it."""
        try:
            return self.alive and self.log is not None and b" serving " in self.log.read_bytes()[:4096]
        except OSError:
            return False


@dataclass
class JobSpec:
    id: str
    queue: str
    name: str
    payload: dict[str, Any]
    opts: dict[str, Any] = field(default_factory=dict)


class ChaosRun:
    def __init__(self, seed: int, duration_s: float, n_jobs: int, n_workers: int, *,
                 concurrency: int = 8, lock_ms: int = 2000, stalled_interval_ms: int = 500,
                 max_stalls: int = 2, faults_per_kind: int | None = None,
                 kinds: tuple[str, ...] = FAULT_KINDS, settle_s: float | None = None,
                 workdir: Path | None = None, keep: bool = False, verbose: bool = True,
                 progress_s: float = 10.0, out: Callable[[str], None] = print) -> None:
        unknown = set(kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        self.seed, self.duration_s, self.n_jobs, self.n_workers = seed, duration_s, n_jobs, n_workers
        self.concurrency, self.lock_ms = concurrency, lock_ms
        self.stalled_interval_ms, self.max_stalls = stalled_interval_ms, max_stalls
        default_faults = max(8, int(duration_s // 30))
        self.faults_per_kind = default_faults if faults_per_kind is None else faults_per_kind
        self.kinds = kinds
        self.settle_s = settle_s if settle_s is not None else max(45.0, n_jobs / 200)
        self.grace_s = 3.0
        self.keep, self.verbose, self.out, self.progress_s = keep, verbose, out, progress_s
        self.rng = random.Random(seed)
        self.dir = workdir or Path(tempfile.mkdtemp(prefix=f"lark-chaos-{seed}-"))
        self.qredis = RedisProc(appendfsync="always")
        self.rredis = RedisProc(appendfsync="no")
        self.slots = [Slot(i) for i in range(n_workers)]
        self.faults: list[Fault] = []
        self.skipped: Counter[str] = Counter()
        self.fault_errors: list[str] = []
        self.expected: dict[str, str] = {}
        self.add_retries = 0
        self.add_unacked = 0
        self.exits: Counter[str] = Counter()
        self.worker_problems: list[str] = []
        self.redis_lock = asyncio.Lock()
        self.redis_down = False
        self.config = Path()
        self.cmd: list[str] = []
        self.cmd_name = ""
        self.lark: Lark | None = None
        self.t_start = 0.0
        self.logs: list[Path] = []

    # -- set-up ----------------------------------------------------------------

    def _setup(self) -> None:
        self.qredis.start()
        self.rredis.start()
        extra = (f"worker:\n  concurrency: {self.concurrency}\n  lock_ms: {self.lock_ms}\n"
                 f"  stalled_interval_ms: {self.stalled_interval_ms}\n  max_stalls: {self.max_stalls}\n"
                 f"  shutdown_grace_s: {self.grace_s}\n")
        self.config = write_project(self.dir / "project", self.qredis.url,
                                    {"chaos_jobs.py": JOBS_SOURCE.read_text()}, list(QUEUES), extra)
        self.cmd, self.cmd_name = worker_command(self.config)
        (self.dir / "workers").mkdir(exist_ok=True)

    def _env(self) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        return dict(os.environ, LARK_CHAOS_RECORD_URL=self.rredis.url, PYTHONPATH=path,
                    PYTHONUNBUFFERED="1")

    def _spawn(self, slot: Slot) -> None:
        slot.generation += 1
        log = self.dir / "workers" / f"w{slot.index}-{slot.generation}.log"
        self.logs.append(log)
        slot.log = log
        with open(log, "wb") as fh:
            slot.proc = subprocess.Popen(self.cmd, env=self._env(), stdout=fh, stderr=subprocess.STDOUT,
                                         cwd=self.config.parent, start_new_session=True)

    def _pick(self, index: int, ready: bool = False) -> Slot | None:
        for i in range(self.n_workers):
            slot = self.slots[(index + i) % self.n_workers]
            if not slot.busy and slot.alive and (slot.ready or not ready):
                return slot
        return None

    # -- the jobs ----------------------------------------------------------------

    def _job(self, rng: random.Random) -> JobSpec:
        queue = rng.choice(QUEUES)
        x = rng.random()
        payload: dict[str, Any] = {"ms": rng.randint(0, 40)}
        opts: dict[str, Any] = {}
        sync = False
        if x < 0.15:
            sync = True
        elif x < 0.25:  # fails its first run, retried by backoff
            payload["first"] = "fail"
            opts.update(attempts=3, backoff={"type": "fixed", "delay": rng.randint(50, 400)})
            sync = rng.random() < 0.3
        elif x < 0.31:  # fails for good on its first run; completes after a manual retry
            payload["first"] = "fail"
            opts["attempts"] = 1
            sync = rng.random() < 0.3
        elif x < 0.35:  # outlives its timeout on the first run
            payload.update(first="slow", slow_s=1.0)
            opts.update(timeout=0.25, attempts=2, backoff={"type": "fixed", "delay": 100})
        if rng.random() < 0.1:
            opts["delay"] = rng.randint(1, 3000)
        if rng.random() < 0.3:
            opts["priority"] = rng.choice((1, 2, 5, 100))
        name = f"{queue.capitalize()}{'Sync' if sync else 'Async'}"
        job_id = new_id()
        return JobSpec(job_id, queue, name, payload, {**opts, "job_id": job_id})

    async def _add(self, specs: list[JobSpec]) -> None:
        """Send until Redis acknowledges (the ids make a second send a no-op)."""
        assert self.lark is not None
        by_queue: dict[str, list[JobSpec]] = {}
        for s in specs:
            by_queue.setdefault(s.queue, []).append(s)
        for queue, group in by_queue.items():
            q = self.lark.queue(queue)
            give_up = time.monotonic() + 120
            while True:
                try:
                    if len(group) == 1:
                        await q.add(group[0].name, group[0].payload, **group[0].opts)
                    else:
                        await q.add_bulk([{"name": s.name, "payload": s.payload, "opts": s.opts}
                                          for s in group])
                    break
                except Exception as exc:
                    self.add_retries += 1
                    if time.monotonic() > give_up:
                        self.add_unacked += len(group)
                        self.fault_errors.append(f"add never acknowledged: {exc!r}")
                        return
                    await asyncio.sleep(0.1)
            for s in group:
                self.expected[s.id] = s.queue

    async def _produce(self) -> None:
        rng = random.Random(self.seed * 7919 + 1)
        window = self.duration_s * 0.8
        batches = max(1, int(window * 10))
        per = max(1, self.n_jobs // batches)
        made = 0
        while made < self.n_jobs:
            await self._until(self.t_start + window * made / self.n_jobs)
            size = min(self.n_jobs - made, per if rng.random() < 0.8 else 1)
            await self._add([self._job(rng) for _ in range(size)])
            made += size

    # -- faults -------------------------------------------------------------------

    async def _until(self, t: float) -> None:
        delay = t - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _plan(self) -> list[Awaitable[None]]:
        rng = self.rng
        tasks: list[Awaitable[None]] = []
        hold_past_lock = (self.lock_ms + 2 * self.stalled_interval_ms) / 1000
        for kind in self.kinds:
            for _ in range(self.faults_per_kind):
                # a fault's own hold (a freeze, an outage, a pause) ends within the duration
                at = self.t_start + rng.uniform(1.0, max(self.duration_s - 5.0, 2.0))
                slot = rng.randrange(self.n_workers)
                if kind == "kill":
                    tasks.append(self._kill(at, slot, rng.uniform(0.0, 1.0)))
                elif kind == "freeze":
                    tasks.append(self._freeze(at, slot, hold_past_lock + rng.uniform(0.1, 1.5)))
                elif kind == "term":
                    tasks.append(self._term(at, slot, rng.random() < 0.5, rng.uniform(0.0, 0.05)))
                elif kind == "conn":
                    tasks.append(self._conn(at, None if rng.random() < 0.3 else slot))
                elif kind in ("redis_restart", "redis_crash"):
                    # mostly short outages; one in five outlasts the lock time
                    down = rng.uniform(0.05, 1.0) if rng.random() < 0.8 else rng.uniform(2.0, 3.5)
                    tasks.append(self._redis(at, kind, down * self.lock_ms / 2000))
                elif kind == "pause":
                    tasks.append(self._pause(at, rng.choice((*QUEUES, None)), rng.uniform(0.3, 3.0)))
                elif kind == "retry":
                    tasks.append(self._retry(at))
        return tasks

    def _log_fault(self, kind: str, t0: int, pid: int | None = None, note: str = "") -> None:
        self.faults.append(Fault(kind, t0, now_ms(), pid, note))

    async def _guard(self, kind: str, coro: Awaitable[None]) -> None:
        try:
            await coro
        except Exception as exc:
            self.fault_errors.append(f"{kind}: {exc!r}")

    async def _kill(self, at: float, index: int, respawn_after: float) -> None:
        await self._until(at)
        slot = self._pick(index)
        if slot is None or slot.proc is None:
            self.skipped["kill"] += 1
            return
        slot.busy = True
        proc = slot.proc
        t0 = now_ms()
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait)
        self._log_fault("kill", t0, proc.pid)
        await asyncio.sleep(respawn_after)
        self._spawn(slot)
        slot.busy = False

    async def _freeze(self, at: float, index: int, hold: float) -> None:
        await self._until(at)
        slot = self._pick(index)
        if slot is None or slot.proc is None:
            self.skipped["freeze"] += 1
            return
        slot.busy = True
        proc = slot.proc
        t0 = now_ms()
        proc.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(hold)
        finally:
            proc.send_signal(signal.SIGCONT)
            self._log_fault("freeze", t0, proc.pid, f"{hold:.1f}s")
            slot.busy = False

    async def _term(self, at: float, index: int, force: bool, gap: float) -> None:
        await self._until(at)
        slot = self._pick(index, ready=True)
        if slot is None or slot.proc is None:
            self.skipped["term"] += 1
            return
        slot.busy = True
        proc = slot.proc
        t0 = now_ms()
        proc.send_signal(signal.SIGTERM)
        if force:
            await asyncio.sleep(gap)
            proc.send_signal(signal.SIGTERM)
        try:
            rc = await asyncio.to_thread(proc.wait, self.grace_s + 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = await asyncio.to_thread(proc.wait)
            self.worker_problems.append(f"pid {proc.pid} did not stop within the grace after SIGTERM")
        self._count_exit(proc.pid, rc, "term")
        self._log_fault("term", t0, proc.pid, "forced" if force else "graceful")
        self._spawn(slot)
        slot.busy = False

    def _count_exit(self, pid: int, rc: int, why: str) -> None:
        self.exits[f"{why}: exit {rc}"] += 1
        if rc != 0:
            self.worker_problems.append(f"pid {pid} exited {rc} after SIGTERM")

    async def _conn(self, at: float, index: int | None) -> None:
        await self._until(at)
        if self.redis_down:
            self.skipped["conn"] += 1
            return
        admin = self.qredis.client()
        try:
            t0 = now_ms()
            if index is None:
                admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
                self._log_fault("conn", t0, None, "all clients")
                return
            slot = self._pick(index)
            if slot is None or slot.proc is None:
                self.skipped["conn"] += 1
                return
            pid = slot.proc.pid
            addrs = [f"{c.laddr.ip}:{c.laddr.port}" for c in psutil.Process(pid).net_connections("tcp")
                     if c.raddr and c.raddr.port == self.qredis.port]
            for addr in addrs:
                with contextlib.suppress(redis.ResponseError):
                    admin.execute_command("CLIENT", "KILL", "ADDR", addr)
            self._log_fault("conn", t0, pid, f"{len(addrs)} connections")
        except (redis.ConnectionError, psutil.Error) as exc:
            self.skipped["conn"] += 1
            self.fault_errors.append(f"conn: {exc!r}")
        finally:
            admin.close()

    def _stop_redis(self, graceful: bool) -> None:
        """``SHUTDOWN`` (AOF flushed, then exit) or SIGKILL; returns once the process is gone."""
        proc = self.qredis.proc
        if proc is None:
            return
        if graceful:
            client = redis.Redis(port=self.qredis.port, socket_connect_timeout=1, socket_timeout=10,
                                 retry=Retry(NoBackoff(), 0))
            with contextlib.suppress(redis.ConnectionError):
                client.shutdown()
            client.close()
        else:
            proc.kill()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.fault_errors.append("redis: SHUTDOWN did not end the server; killed it")
            proc.kill()
            proc.wait()
        self.qredis.proc = None

    async def _redis(self, at: float, kind: str, down: float) -> None:
        await self._until(at)
        if self.redis_lock.locked():
            self.skipped[kind] += 1
            return
        async with self.redis_lock:
            self.redis_down = True
            t0 = now_ms()
            try:
                await asyncio.to_thread(self._stop_redis, kind == "redis_restart")
                await asyncio.sleep(down)
            finally:
                await asyncio.to_thread(self.qredis.start, 60.0)
                self.redis_down = False
                self._log_fault(kind, t0, None, f"down {down:.1f}s")

    async def _retrying(self, fn: Callable[[], Awaitable[Any]], patience: float = 30.0) -> Any:
        deadline = time.monotonic() + patience
        while True:
            try:
                return await fn()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def _pause(self, at: float, queue: str | None, hold: float) -> None:
        await self._until(at)
        assert self.lark is not None
        qs = [self.lark.queue(q) for q in ((queue,) if queue else QUEUES)]
        t0 = now_ms()
        for q in qs:
            await self._retrying(q.pause)
        await asyncio.sleep(hold)
        for q in qs:
            await self._retrying(q.resume)
        self._log_fault("pause", t0, None, queue or "all")

    async def _retry(self, at: float) -> None:
        await self._until(at)
        assert self.lark is not None
        t0 = now_ms()
        n = 0
        for name in QUEUES:
            n += await self._retrying(self.lark.queue(name).retry_failed)
        self._log_fault("retry", t0, None, f"{n} retried")

    # -- the end -------------------------------------------------------------------

    async def _counts(self) -> dict[str, dict[str, int]]:
        assert self.lark is not None
        return {q: await self.lark.queue(q).get_job_counts() for q in QUEUES}

    async def _settle(self) -> float | None:
        """Resume, retry the failed, until every acknowledged job is completed."""
        assert self.lark is not None
        t0 = time.monotonic()
        want = Counter(self.expected.values())
        deadline = t0 + self.settle_s
        while time.monotonic() < deadline:
            try:
                for q in QUEUES:
                    if await self.lark.queue(q).is_paused():
                        await self.lark.queue(q).resume()
                    await self.lark.queue(q).retry_failed()
                counts = await self._counts()
                if all(counts[q]["completed"] == want[q] and sum(counts[q].values()) == want[q]
                       for q in QUEUES):
                    return time.monotonic() - t0
            except Exception as exc:
                self.fault_errors.append(f"settle: {exc!r}")
            await asyncio.sleep(0.5)
        return None

    async def _stop_workers(self) -> None:
        for slot in self.slots:
            if slot.proc is None:
                continue
            if slot.alive:
                slot.proc.send_signal(signal.SIGTERM)
            else:
                self.worker_problems.append(f"pid {slot.proc.pid} died on its own "
                                            f"(exit {slot.proc.returncode})")
                slot.proc = None
        for slot in self.slots:
            if slot.proc is None:
                continue
            try:
                rc = await asyncio.to_thread(slot.proc.wait, self.grace_s + 20)
            except subprocess.TimeoutExpired:
                slot.proc.kill()
                rc = await asyncio.to_thread(slot.proc.wait)
                self.worker_problems.append(f"pid {slot.proc.pid} ignored SIGTERM")
            self._count_exit(slot.proc.pid, rc, "final stop")

    def _progress(self, what: str) -> None:
        if self.verbose:
            self.out(f"[chaos {time.monotonic() - self.t_start:6.1f}s] {what}")

    async def _monitor(self) -> None:
        while True:
            await asyncio.sleep(self.progress_s)
            try:
                counts = await self._counts()
                total = {s: sum(c[s] for c in counts.values()) for s in next(iter(counts.values()))}
                self._progress(f"added {len(self.expected)}, faults {len(self.faults)}, {total}")
            except Exception as exc:
                self._progress(f"added {len(self.expected)}, faults {len(self.faults)}, "
                               f"Redis: {type(exc).__name__}")

    async def _main(self) -> Report:
        await asyncio.to_thread(self._setup)
        self.lark = Lark(config_path=self.config)
        for slot in self.slots:
            self._spawn(slot)
        self.t_start = time.monotonic()
        wall0 = time.time()
        self._progress(f"{self.n_workers} workers ({self.cmd_name}), {self.n_jobs} jobs, "
                       f"{self.faults_per_kind} faults of each kind {', '.join(self.kinds)}; dir {self.dir}")
        monitor = asyncio.create_task(self._monitor())
        faults = [self._guard("fault", f) for f in self._plan()]
        await asyncio.gather(self._produce(), *faults)
        self._progress(f"faults over; settling ({len(self.expected)} jobs added)")
        settled = await self._settle()
        # one more lock time + sweeps: a stale worker's late acknowledgement would land now
        await asyncio.sleep((self.lock_ms + 2 * self.stalled_interval_ms) / 1000)
        monitor.cancel()
        await self._stop_workers()
        counts = await self._retrying(self._counts)
        await self.lark.close()
        report = Report(self.seed, self.duration_s, self._settings())
        report.settled_s = settled
        self._fill(report)
        checker = Checker(self.qredis.client(), self.rredis.client(), QUEUES, self.expected,
                          self.faults, self.lock_ms, report)
        await asyncio.to_thread(checker.run, counts)
        report.elapsed_s = time.time() - wall0
        (self.dir / "faults.jsonl").write_text(
            "".join(json.dumps({**asdict(f), "at_s": round(f.t0 / 1000 - wall0, 2)}) + "\n"
                    for f in sorted(self.faults, key=lambda f: f.t0)))
        return report

    def _settings(self) -> dict[str, Any]:
        return {"workers": self.n_workers, "concurrency": self.concurrency, "lock_ms": self.lock_ms,
                "stalled_interval_ms": self.stalled_interval_ms, "max_stalls": self.max_stalls,
                "jobs": self.n_jobs, "worker_cmd": self.cmd_name, "dir": str(self.dir)}

    def _fill(self, report: Report) -> None:
        report.jobs = len(self.expected)
        report.jobs_by_queue = dict(Counter(self.expected.values()))
        report.add_retries, report.add_unacknowledged = self.add_retries, self.add_unacked
        report.faults = dict(Counter(f.kind for f in self.faults))
        forced = sum(1 for f in self.faults if f.kind == "term" and f.note == "forced")
        if forced:
            report.faults["term (forced)"] = forced
        all_conn = sum(1 for f in self.faults if f.kind == "conn" and f.pid is None)
        if all_conn:
            report.faults["conn (all clients)"] = all_conn
        report.faults_skipped = dict(self.skipped)
        report.kinds_not_injected = [k for k in self.kinds if k not in report.faults]
        report.fault_errors = list(self.fault_errors)
        report.worker_exits = dict(self.exits)
        report.worker_problems = list(self.worker_problems)
        stale = 0
        for log in self.logs:
            with contextlib.suppress(OSError):
                text = log.read_text(errors="replace")
                stale += text.count("lock lost before it finished")
                for bad in BAD_LOG_LINES:
                    if bad in text:
                        report.worker_problems.append(f"{log.name}: {text.count(bad)} x {bad!r}")
        report.stale_acks_rejected = stale

    def run(self) -> Report:
        """Run the whole thing; prints the report; cleans up unless ``keep`` or it failed."""
        report: Report | None = None
        try:
            report = asyncio.run(self._main())
            self.out(report.text())
            return report
        finally:
            for slot in self.slots:
                if slot.alive and slot.proc is not None:
                    slot.proc.send_signal(signal.SIGCONT)
                    slot.proc.kill()
                    slot.proc.wait()
            self.qredis.cleanup()
            self.rredis.cleanup()
            if report is not None and report.ok and not self.keep:
                shutil.rmtree(self.dir, ignore_errors=True)
            else:
                self.out(f"chaos run folder kept: {self.dir}")

"""``Worker``: serves one or more queues with N concurrent jobs until it is told to stop.

Shutdown: the first SIGTERM/SIGINT stops claiming and lets in-flight jobs finish
within the grace period; a second signal, or the end of the grace, puts the jobs
still running back to waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import redis

from lark_core import registry as reg
from lark_core import scripts
from lark_core.connection import REDIS_DOWN_ERRORS, is_acl_refusal, raise_if_cancelled
from lark_core.discovery import JobRegistry
from lark_core.errors import LarkError, RedisUnavailable
from lark_core.execution import Claim, Executor_, Outcome, RunContext
from lark_core.ids import new_id
from lark_core.project import Lark
from lark_core.queue import log_line
from lark_core.runner import QueueRunner
from lark_core.scripts import Call
from lark_core.serialization import dumps
from lark_core.settings import WorkerConfig
from lark_core.slots import SlotPool

log = logging.getLogger("lark.worker")

HEARTBEAT_S = 5.0
LOG_FLUSH_S = 0.25
HOUSEKEEPING_S = 60.0
#: at shutdown, how long putting unfinished jobs back and leaving the registry may wait for
#: Redis: a Redis that does not answer (frozen, a dead network path) must not hold the exit
#: for the clients' timeouts and retries (30 s each); what is left undone there is recovered
#: anyway (stalled jobs, a registry entry that stops being refreshed)
SHUTDOWN_REDIS_S = 3.0
#: how long the start-up access check may wait for Redis before leaving an outage to the loops
ACCESS_CHECK_S = 5.0
#: a periodic task meeting these waits for Redis; the Queue methods housekeeping uses raise
#: RedisUnavailable rather than the raw connection errors
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (*REDIS_DOWN_ERRORS, RedisUnavailable)


@dataclass
class Stats:
    done: int = 0
    failed: int = 0


class Worker:
    def __init__(self, project: Lark, jobs: JobRegistry, queues: list[str] | None = None,
                 settings: WorkerConfig | None = None) -> None:
        self.project = project
        self.jobs = jobs
        self.settings = settings or project.config.worker
        self.lock_ms = self.settings.lock_ms
        names = queues or list(project.config.jobs.queues)
        self.queues = [project.queue(n) for n in names]
        self.id = f"{socket.gethostname()}:{os.getpid()}:{new_id()[-6:]}"
        self.slots = SlotPool(self.settings.concurrency)
        self.stats = Stats()
        self.stopping = False
        self.closing = False
        self.started_ms = int(time.time() * 1000)
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._tasks: dict[asyncio.Task[None], tuple[QueueRunner, Claim]] = {}
        self._contexts: dict[str, RunContext] = {}  # by claim token
        self._threads = ThreadPoolExecutor(max_workers=self.settings.concurrency,
                                           thread_name_prefix="lark-job")
        self._executor = Executor_(jobs, project.config.jobs.options, self._threads,
                                   self._hold_slot)
        self.runners: list[QueueRunner] = []
        self._beats = 0
        self._signals = False

    # -- control ---------------------------------------------------------------

    def request_stop(self) -> None:
        """First signal: finish in-flight jobs (within the grace), claim nothing new."""
        if self._stop.is_set():
            self.request_force_stop()
            return
        log.info("stopping: no new jobs; waiting up to %ss for %d in-flight job(s) "
                 "(signal again to stop now)", self.settings.shutdown_grace_s, len(self._tasks))
        self._stop.set()

    def request_force_stop(self) -> None:
        log.warning("stopping now: in-flight jobs go back to waiting")
        self._stop.set()
        self._force.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        self._signals = True

    def _release_signals(self) -> None:
        """Once stopped, a late SIGTERM (the second one of a forced stop) is ignored.

        Left to the event loop, closing it restores the default action, and a SIGTERM
        arriving while the process exits kills it: exit -15 instead of 0.
        """
        if not self._signals:
            return
        self._signals = False
        asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    # -- running jobs ------------------------------------------------------------

    def start(self, runner: QueueRunner, claim: Claim) -> None:
        task = asyncio.get_running_loop().create_task(self._execute(runner, claim))
        self._tasks[task] = (runner, claim)
        task.add_done_callback(self._tasks.pop)

    def _hold_slot(self, fut: asyncio.Future[Any]) -> None:
        """A timed-out sync handler keeps its slot until its thread returns."""
        self.slots.free -= 1
        fut.add_done_callback(lambda _f: self.slots.give(1))

    async def _progress(self, claim: Claim, value: Any) -> None:
        k = self.project.queue(claim.queue).keys
        await scripts.run(self.project.connection.client(), Call(
            scripts.script("progress"), [k.job(claim.id), k.events],
            [claim.token, dumps(value, "progress"), claim.id]))

    async def _execute(self, runner: QueueRunner, claim: Claim) -> None:
        context = RunContext(claim, asyncio.get_running_loop(), self._progress, log_line)
        self._contexts[claim.token] = context
        try:
            outcome = await self._executor.run(claim, context)
        except asyncio.CancelledError:
            runner.add_logs(claim.id, context.take_logs())
            raise
        except Exception as exc:
            log.exception("[%s] job %s: internal error", claim.queue, claim.id)
            outcome = Outcome("f", f"internal worker error: {type(exc).__name__}: {exc}")
        finally:
            self._contexts.pop(claim.token, None)
        if outcome.code == "f":
            self.stats.failed += 1
        elif outcome.code == "c":
            self.stats.done += 1
        runner.finished(claim, outcome.args(claim), context.take_logs())
        self.slots.give(1)

    # -- periodic tasks ----------------------------------------------------------

    async def _every(self, seconds: float, fn: Any, what: str) -> None:
        while True:
            try:
                await fn()
            except OUTAGE_ERRORS as exc:
                log.debug("%s: Redis unavailable (%s)", what, exc)
            except Exception as exc:
                if is_acl_refusal(exc):
                    log.error("%s", self.project.connection.permission_denied(f"run the {what}", exc))
                else:
                    log.exception("%s failed", what)
            raise_if_cancelled()
            await asyncio.sleep(seconds)

    async def _renew_locks(self) -> None:
        for runner in self.runners:
            await runner.extend_locks()

    async def _sweep(self) -> None:
        for runner in self.runners:
            recovered, failed = await runner.sweep_stalled(
                self.settings.max_stalls, max(self.settings.stalled_interval_ms - 50, 1))
            for job_id in recovered:
                log.warning("[%s] job %s stalled (its worker died or froze); back to waiting",
                            runner.queue.name, job_id)
            for job_id in failed:
                log.error("[%s] job %s stalled more than %d time(s); failed",
                          runner.queue.name, job_id, self.settings.max_stalls)

    async def _housekeeping(self) -> None:
        """Age-based removal (``jobs.options``) and old metrics, for jobs nobody finishes now."""
        defaults = self.project.config.jobs.options
        for q in self.queues:
            for state, policy in (("completed", defaults.remove_on_complete),
                                  ("failed", defaults.remove_on_fail)):
                if policy is not None and policy.age_s:
                    await q.clean(state, int(policy.age_s * 1000))
            await q.prune_metrics()

    async def _flush_logs(self) -> None:
        for runner in self.runners:
            for claim in list(runner.active.values()):
                ctx = self._contexts.get(claim.token)
                if ctx is not None:
                    runner.add_logs(claim.id, ctx.take_logs())

    def info(self) -> reg.WorkerInfo:
        return reg.WorkerInfo(
            id=self.id, host=socket.gethostname(), pid=os.getpid(),
            queues=[q.name for q in self.queues], concurrency=self.settings.concurrency,
            started=self.started_ms, jobs_done=self.stats.done, jobs_failed=self.stats.failed,
            current=[c.id for r in self.runners for c in r.active.values()],
            last_seen=int(time.time() * 1000), state="stopping" if self.stopping else "running")

    async def _heartbeat(self) -> None:
        self._beats += 1
        await reg.heartbeat(self.project.connection.client(), self.info(), prune=self._beats % 12 == 1)

    # -- the whole life ---------------------------------------------------------------

    async def _check_access(self) -> None:
        """Refuse to start when the Redis ACL user may not run the engine's scripts.

        Loading them (the worker needs them anyway) is the probe: a read-only user is
        told so once, instead of every loop failing forever. An outage is left to the
        loops, which retry.
        """
        client = self.project.connection.client()

        async def load() -> None:
            for script in scripts.load_scripts().values():
                await client.script_load(script.text)

        try:
            # bounded: a Redis that does not answer would hold the start for the client's
            # timeout and retries (30 s), silent; the loops log the outage and retry
            await asyncio.wait_for(load(), ACCESS_CHECK_S)
        except REDIS_DOWN_ERRORS:  # wait_for's TimeoutError is an OSError
            return
        except redis.ResponseError as exc:
            if not is_acl_refusal(exc):
                raise
            raise self.project.connection.permission_denied("run a worker", exc) from None

    async def run(self) -> int:
        """Serve until stopped; returns the process exit code (0)."""
        await self._check_access()
        self.runners = [QueueRunner(self, q) for q in self.queues]
        log.info("worker %s serving %s, concurrency %d, Redis %s", self.id,
                 ", ".join(q.name for q in self.queues), self.settings.concurrency,
                 self.project.redis_display_url)
        loops = [asyncio.create_task(r.run(), name=f"runner-{r.queue.name}") for r in self.runners]
        lock_every = max(self.lock_ms / 2000, 0.05)
        periodic = [
            asyncio.create_task(self._every(lock_every, self._renew_locks, "lock renewal")),
            asyncio.create_task(self._every(self.settings.stalled_interval_ms / 1000, self._sweep,
                                            "stalled-job sweep")),
            asyncio.create_task(self._every(HEARTBEAT_S, self._heartbeat, "heartbeat")),
            asyncio.create_task(self._every(HOUSEKEEPING_S, self._housekeeping, "housekeeping")),
            asyncio.create_task(self._every(LOG_FLUSH_S, self._flush_logs, "log flush")),
        ]
        try:
            await self._stop.wait()
            await self._drain()
        finally:
            self.closing = True
            for r in self.runners:
                r.stop_watching()
                r.wake()
            await self._finish_loops(loops)
            for t in periodic:
                t.cancel()
            await asyncio.gather(*periodic, return_exceptions=True)
            await self._unregister()
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._release_signals()
        log.info("worker %s stopped: %d done, %d failed", self.id, self.stats.done, self.stats.failed)
        return 0

    async def _drain(self) -> None:
        self.stopping = True
        for r in self.runners:
            r.stop_watching()
            r.wake()
        running = set(self._tasks)
        if running:
            force: asyncio.Future[Any] = asyncio.create_task(self._force.wait())
            all_done: asyncio.Future[Any] = asyncio.ensure_future(
                asyncio.gather(*running, return_exceptions=True))
            await asyncio.wait([all_done, force], timeout=self.settings.shutdown_grace_s,
                               return_when=asyncio.FIRST_COMPLETED)
            force.cancel()
        await self._requeue_unfinished()

    async def _requeue_unfinished(self) -> None:
        left = [(t, rc) for t, rc in self._tasks.items() if not t.done()]
        if not left:
            return
        for task, _ in left:
            task.cancel()
        await asyncio.gather(*(t for t, _ in left), return_exceptions=True)
        by_runner: dict[QueueRunner, list[Claim]] = {}
        for _, (runner, claim) in left:
            by_runner.setdefault(runner, []).append(claim)
            runner.forget(claim)
        for runner, claims in by_runner.items():
            try:
                n = await asyncio.wait_for(runner.requeue(claims), SHUTDOWN_REDIS_S)
                log.warning("[%s] %d unfinished job(s) put back to waiting", runner.queue.name, n)
            except REDIS_DOWN_ERRORS as exc:  # wait_for's TimeoutError is an OSError
                log.error("[%s] could not put %d job(s) back (%s); they will be recovered as "
                          "stalled when their locks expire", runner.queue.name, len(claims),
                          str(exc) or f"Redis did not answer within {SHUTDOWN_REDIS_S:g}s")

    async def _finish_loops(self, loops: list[asyncio.Task[None]]) -> None:
        """Let the runners flush their last acks (bounded), then stop them."""
        _, pending = await asyncio.wait(loops, timeout=10)
        for t in pending:
            t.cancel()
        await asyncio.gather(*loops, return_exceptions=True)

    async def _unregister(self) -> None:
        with contextlib.suppress(*REDIS_DOWN_ERRORS):  # TimeoutError included
            await asyncio.wait_for(reg.unregister(self.project.connection.client(), self.id),
                                   SHUTDOWN_REDIS_S)


def worker_settings(base: WorkerConfig, **overrides: Any) -> WorkerConfig:
    """The config's worker settings with CLI/keyword overrides applied (None = keep)."""
    values = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(values) - set(WorkerConfig.__dataclass_fields__)
    if unknown:
        raise LarkError(f"unknown worker option(s): {', '.join(sorted(unknown))}")
    return replace(base, **values)

"""``QueueRunner``: one worker's loop over one queue — acknowledge, claim, wait for work.

Acknowledgements of finished jobs, their log lines and the next claim go to Redis in
one pipeline, so a busy worker spends one round trip on many jobs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lark_core import scripts
from lark_core.connection import REDIS_DOWN_ERRORS, is_acl_refusal, raise_if_cancelled
from lark_core.execution import Claim
from lark_core.queue import Queue
from lark_core.scripts import Call

if TYPE_CHECKING:
    from lark_core.worker import Worker

log = logging.getLogger("lark.worker")

IDLE_WAIT_S = 5.0
#: how long past its block time a blocking wait may go unanswered before the connection is dropped
BLOCK_MARGIN_S = 5.0
LOG_LINES_KEPT = 1000


class QueueRunner:
    def __init__(self, worker: Worker, queue: Queue) -> None:
        self.worker = worker
        self.queue = queue
        self.keys = queue.keys
        self.pending: list[list[Any]] = []
        self.logs: dict[str, list[str]] = {}
        self.active: dict[str, Claim] = {}
        self.wakeup = asyncio.Event()
        self.want_claim = True
        self.next_due = -1
        #: the last round trip failed for an outage; the next one that succeeds says so
        self._outage = False
        self._marker_task: asyncio.Task[None] | None = None
        self._due_timer: asyncio.TimerHandle | None = None
        self._due_at: float | None = None  # loop time when the next delayed job is due
        self._signals = 0  # work signals seen (marker popped, due timer fired)
        self._calls = 0

    # -- what other parts call ----------------------------------------------

    def wake(self) -> None:
        self.wakeup.set()

    def finished(self, claim: Claim, ack: list[Any], lines: list[str]) -> None:
        """Queue an acknowledgement; it goes out with the next pipeline."""
        if lines:
            self.logs.setdefault(claim.id, []).extend(lines)
        self.pending.append(ack)
        self.forget(claim)
        self.wakeup.set()

    def forget(self, claim: Claim) -> None:
        """Stop renewing ``claim``'s lock, unless a newer claim of the same job replaced it
        (a stale run that lost its lock can end while the job runs again here)."""
        if self.active.get(claim.id) is claim:
            del self.active[claim.id]

    def add_logs(self, job_id: str, lines: list[str]) -> None:
        if lines:
            self.logs.setdefault(job_id, []).extend(lines)
            self.wakeup.set()

    # -- the loop -------------------------------------------------------------

    async def run(self) -> None:
        delay = 0.1
        while True:
            try:
                progressed = await self.step()
                delay = 0.1
            except REDIS_DOWN_ERRORS as exc:
                self._outage = True
                log.warning("[%s] Redis unavailable: %s; retrying in %.1fs", self.queue.name,
                            self.queue.connection.unavailable(exc), delay)
                raise_if_cancelled()
                _, note = await self.queue.connection.revive_embedded()
                if note:
                    log.warning("[%s] %s", self.queue.name, note)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            except Exception as exc:
                # anything else (a bug, an unexpected reply) must not stop serving this queue
                # unseen while the worker looks alive: say so, back off, go on; jobs a failed
                # round trip claimed come back as stalled when their locks expire
                self._log_loop_error(exc, delay)
                raise_if_cancelled()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self.worker.closing and not self.pending and not self.logs:
                return
            if not progressed:
                await self.wait()

    def _log_loop_error(self, exc: Exception, delay: float) -> None:
        """An ACL refusal in one line (the user lacks a permission); anything else in full."""
        if is_acl_refusal(exc):
            denied = self.queue.connection.permission_denied(f"serve queue {self.queue.name!r}", exc)
            log.error("[%s] %s; retrying in %.1fs", self.queue.name, denied, delay)
        else:
            log.exception("[%s] worker loop error; retrying in %.1fs", self.queue.name, delay)

    def _claim_call(self, n: int) -> Call:
        k = self.keys
        self._calls += 1
        return Call(scripts.script("claim"),
                    [k.wait, k.active, k.delayed, k.paused, k.meta, k.marker, k.events],
                    [self.queue._job_prefix, n, f"{self.worker.id}:{self._calls}",
                     self.worker.lock_ms])

    def _finish_call(self, acks: list[list[Any]]) -> Call:
        k = self.keys
        args: list[Any] = [self.queue._job_prefix, self.queue._logs_prefix, len(acks)]
        for a in acks:
            args.extend(a)
        return Call(scripts.script("finish"),
                    [k.active, k.wait, k.delayed, k.completed, k.failed, k.paused, k.meta,
                     k.events, k.metrics, k.marker], args)

    def _log_commands(self, logs: dict[str, list[str]]) -> list[tuple[Any, ...]]:
        cmds: list[tuple[Any, ...]] = []
        for job_id, lines in logs.items():
            key = self.keys.logs(job_id)
            cmds.append(("RPUSH", key, *lines))
            cmds.append(("LTRIM", key, -LOG_LINES_KEPT, -1))
        return cmds

    async def step(self) -> bool:
        """One round trip: flush logs and acks, claim what fits. True if anything happened."""
        acks, self.pending = self.pending, []
        logs, self.logs = self.logs, {}
        n = 0
        if self.want_claim and not self.worker.stopping:
            n = self.worker.slots.take(self, self.wake)
        if not acks and not logs and n == 0:
            return False
        calls: list[Call | tuple[Any, ...]] = list(self._log_commands(logs))
        if acks:
            calls.append(self._finish_call(acks))
        calls.append(self._claim_call(n))
        signals = self._signals
        try:
            results = await scripts.run_many(self.queue.connection.worker_client(), calls)
        except BaseException:
            self.pending = acks + self.pending
            for job_id, lines in logs.items():
                self.logs.setdefault(job_id, [])[:0] = lines
            self.worker.slots.give(n)
            raise
        if self._outage:
            self._outage = False
            log.info("[%s] Redis reachable again at %s; serving", self.queue.name,
                     self.queue.connection.display_url)
        if acks:
            self._report_lost(results[-2])
        # a signal that came while the claim was under way may be for work it did not see
        return self._claimed(results[-1], n, signalled=self._signals != signals) or bool(acks)

    def _report_lost(self, lost: Any) -> None:
        if isinstance(lost, BaseException):
            log.error("[%s] acknowledging jobs failed: %s", self.queue.name, lost)
            return
        for job_id in lost or []:
            log.warning("[%s] job %s: lock lost before it finished (recovered as stalled or "
                        "removed); this worker's result was discarded", self.queue.name, job_id)

    def _claimed(self, reply: Any, n: int, signalled: bool = False) -> bool:
        if isinstance(reply, BaseException):
            self.worker.slots.give(n)
            if isinstance(reply, REDIS_DOWN_ERRORS):
                raise reply
            log.error("[%s] claim failed: %s", self.queue.name, reply)
            self.want_claim = False
            return False
        try:
            self.next_due = int(reply[0])
            server_now = int(reply[1])
            claims = Claim.parse(self.queue.name, reply)
        except Exception:
            self.worker.slots.give(n)  # or the slots taken for this claim are gone for good
            raise
        self.worker.slots.give(n - len(claims))
        again = signalled and len(claims) < n  # claim once more rather than wait
        if len(claims) < n and not signalled:
            self.want_claim = False
        if self.next_due >= 0 and self.next_due <= server_now:
            self.want_claim = True
        self._due_at = None
        if self.next_due >= 0:
            self._due_at = asyncio.get_running_loop().time() + (self.next_due - server_now) / 1000
        for claim in claims:
            self.active[claim.id] = claim
            self.worker.start(self, claim)
        return bool(claims) or again

    async def wait(self) -> None:
        """Sleep until an ack is queued, a slot frees up, or a producer signals work."""
        self.wakeup.clear()
        if self.pending or self.logs:
            return
        if not self.want_claim and not self.worker.stopping:
            if self._marker_task is None:
                self._marker_task = asyncio.create_task(self._watch_marker(IDLE_WAIT_S))
            if self._due_at is not None:
                # a local timer, not the blocking wait's timeout: Redis ends blocking waits
                # on its own clock tick (hz 10: up to ~100 ms late), too coarse for due jobs
                self._arm_due_timer(self._due_at)
        await self.wakeup.wait()

    def _arm_due_timer(self, due_at: float) -> None:
        if self._due_timer is not None:
            self._due_timer.cancel()
        self._due_timer = asyncio.get_running_loop().call_at(due_at, self._due)

    def _due(self) -> None:
        self._due_timer = None
        self._signals += 1
        self.want_claim = True
        self.wakeup.set()

    async def _watch_marker(self, timeout: float) -> None:
        try:
            # bounded here too: the blocking client has no socket timeout, and a connection
            # whose network path died silently (no FIN/RST) would otherwise never answer
            async with asyncio.timeout(timeout + BLOCK_MARGIN_S):  # inline: no extra task
                await self.queue.connection.blocking_client().bzpopmin(self.keys.marker, timeout)
        except REDIS_DOWN_ERRORS:
            await asyncio.sleep(0.5)
        finally:
            self._marker_task = None
            self._signals += 1
            self.want_claim = True
            self.wakeup.set()

    def stop_watching(self) -> None:
        if self._due_timer is not None:
            self._due_timer.cancel()
            self._due_timer = None
        if self._marker_task is not None:
            self._marker_task.cancel()
            self._marker_task = None

    # -- periodic work from the worker ----------------------------------------

    async def extend_locks(self) -> None:
        held = [c for c in self.active.values() if not c.lost]
        if not held:
            return
        args: list[Any] = [self.queue._job_prefix, self.worker.lock_ms]
        for c in held:
            args += [c.id, c.token]
        lost = await scripts.run(self.queue.redis, Call(scripts.script("extend_locks"),
                                                        [self.keys.active], args))
        for job_id in lost:
            claim = self.active.get(job_id)
            if claim is not None and not claim.lost:
                claim.lost = True
                log.warning("[%s] job %s: lock lost while running (stalled recovery or removal); "
                            "its result will be discarded", self.queue.name, job_id)

    async def requeue(self, claims: list[Claim]) -> int:
        if not claims:
            return 0
        k = self.keys
        args: list[Any] = [self.queue._job_prefix]
        for c in claims:
            args += [c.id, c.token]
        return int(await scripts.run(self.queue.redis, Call(
            scripts.script("requeue"), [k.active, k.wait, k.paused, k.meta, k.events, k.marker],
            args)))

    async def sweep_stalled(self, max_stalls: int, guard_ms: int) -> tuple[list[str], list[str]]:
        k = self.keys
        reply = await scripts.run(self.queue.redis, Call(
            scripts.script("stalled"),
            [k.active, k.wait, k.paused, k.failed, k.meta, k.events, k.marker, k.sweep, k.metrics],
            [self.queue._job_prefix, max_stalls, guard_ms, 1000]))
        if not reply:
            return [], []
        cut = reply.index("|")
        return list(reply[:cut]), list(reply[cut + 1:])


OnClaim = Callable[[QueueRunner, Claim], None]

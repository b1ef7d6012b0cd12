"""Shared helpers for the engine tests: polling, projects, an in-process worker, a
script driver that calls the worker-side Lua scripts the way the runner does, and a
consistency check of a queue's states and counts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from lark_core import scripts
from lark_core.discovery import JobRegistry, discover
from lark_core.execution import Claim, Outcome
from lark_core.project import Lark
from lark_core.queue import Queue
from lark_core.record import STATES
from lark_core.runner import QueueRunner
from lark_core.worker import Worker, worker_settings
from tests.conftest import write_project

Predicate = Callable[[], Any | Awaitable[Any]]


async def wait_until(pred: Predicate, timeout: float = 10.0, interval: float = 0.02,
                     what: str | None = None) -> Any:
    """Poll ``pred`` (sync or async) until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or pred}")
        await asyncio.sleep(interval)


def make_project(root: Path, url: str, jobs: dict[str, str] | None = None,
                 queues: list[str] | None = None, extra: str = "") -> Lark:
    """A project loaded from a throwaway config (see ``conftest.write_project``)."""
    cfg = write_project(root, url, jobs or {}, queues, extra)
    return Lark(config_path=cfg)


async def job_state(queue: Queue, job_id: str) -> str | None:
    rec = await queue.get_job(job_id)
    return rec.state if rec else None


async def wait_state(queue: Queue, job_id: str, state: str, timeout: float = 10.0) -> None:
    async def reached() -> bool:
        return await job_state(queue, job_id) == state

    await wait_until(reached, timeout, what=f"job {job_id} to be {state}")


@asynccontextmanager
async def running_worker(project: Lark, queues: list[str] | None = None,
                         **overrides: Any) -> AsyncIterator[Worker]:
    """An in-process ``Worker`` on the test's loop; stopped (gracefully) on exit."""
    jobs = discover(project.config)
    worker = Worker(project, jobs, queues, worker_settings(project.config.worker, **overrides))
    task = asyncio.create_task(worker.run(), name="test-worker")
    worker.test_task = task  # type: ignore[attr-defined]
    await wait_until(lambda: worker.runners or task.done(), what="the worker to start")
    try:
        yield worker
    except BaseException:
        # the test failed: stop now (handlers may be blocked forever), keep its error
        if not task.done():
            worker.request_force_stop()
            with suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(task), 30)
        raise
    if not task.done() and not worker._stop.is_set():
        worker.request_stop()
    await asyncio.wait_for(asyncio.shield(task), 30)


async def stop_worker(worker: Worker, force: bool = False, timeout: float = 30.0) -> int:
    """Ask a ``running_worker`` to stop and wait for ``run()`` to return its exit code."""
    if force:
        worker.request_force_stop()
    else:
        worker.request_stop()
    task: asyncio.Task[int] = worker.test_task  # type: ignore[attr-defined]
    return await asyncio.wait_for(asyncio.shield(task), timeout)


class ScriptDriver:
    """Calls the worker-side scripts (claim, finish, extend_locks, requeue, stalled)
    through a real ``QueueRunner``, without running handlers."""

    def __init__(self, project: Lark, queue: str = "default", lock_ms: int = 60_000) -> None:
        self.queue = project.queue(queue)
        settings = worker_settings(project.config.worker, lock_ms=lock_ms)
        self.worker = Worker(project, JobRegistry(), [queue], settings)
        self.runner = QueueRunner(self.worker, self.queue)

    def close(self) -> None:
        self.worker._threads.shutdown(wait=False)

    async def claim(self, n: int = 1, lock_ms: int | None = None) -> list[Claim]:
        if lock_ms is not None:
            self.worker.lock_ms = lock_ms
        reply = await scripts.run(self.queue.redis, self.runner._claim_call(n))
        claims = Claim.parse(self.queue.name, reply)
        for c in claims:
            self.runner.active[c.id] = c
        return claims

    async def promote_due(self) -> None:
        """Run the claim script wanting no job: it only promotes due delayed jobs."""
        await scripts.run(self.queue.redis, self.runner._claim_call(0))

    async def finish(self, acks: list[list[Any]]) -> list[str]:
        """Acknowledge tries; each ack is ``Outcome.args`` order. Returns ids with lost locks."""
        for a in acks:
            self.runner.active.pop(a[0], None)
        return list(await scripts.run(self.queue.redis, self.runner._finish_call(acks)))

    @staticmethod
    def ack(claim: Claim, code: str, value: str = "null", stack: str = "", delay_ms: int = 0,
            keep: tuple[int, int] = (-1, -1), token: str | None = None) -> list[Any]:
        if token is not None:
            claim = dataclasses.replace(claim, token=token)
        return Outcome(code, value, stack, delay_ms, keep).args(claim)

    async def complete(self, claim: Claim, value: str = "null",
                       keep: tuple[int, int] = (-1, -1)) -> list[str]:
        return await self.finish([self.ack(claim, "c", value, keep=keep)])

    async def fail(self, claim: Claim, reason: str = "boom", stack: str = "trace",
                   keep: tuple[int, int] = (-1, -1)) -> list[str]:
        return await self.finish([self.ack(claim, "f", reason, stack, keep=keep)])

    async def retry_later(self, claim: Claim, delay_ms: int = 0, reason: str = "again") -> list[str]:
        return await self.finish([self.ack(claim, "r", reason, "trace", delay_ms)])

    async def extend_locks(self) -> list[str]:
        """Renew every claim this driver holds; returns the ids now marked lost."""
        await self.runner.extend_locks()
        return [c.id for c in self.runner.active.values() if c.lost]

    async def requeue(self, claims: list[Claim]) -> int:
        for c in claims:
            self.runner.active.pop(c.id, None)
        return await self.runner.requeue(claims)

    async def sweep(self, max_stalls: int = 1) -> tuple[list[str], list[str]]:
        return await self.runner.sweep_stalled(max_stalls, 0)

    async def expire_locks(self, *job_ids: str) -> None:
        """Make locks look expired (deadline in the past), as if their worker froze."""
        client = self.queue.redis
        for job_id in job_ids:
            await client.zadd(self.queue.keys.active, {job_id: 1}, xx=True)


async def check_consistency(queue: Queue) -> dict[str, int]:
    """Every job is in exactly one state set, its record says that state, and
    ``get_job_counts()`` equals the set sizes. Returns the counts."""
    client = queue.redis
    counts = await queue.get_job_counts()
    seen: dict[str, str] = {}
    for state in STATES:
        ids = await client.zrange(queue.keys.state_key(state), 0, -1)
        assert counts[state] == len(ids), (state, counts, len(ids))
        records = await queue.get_jobs(state)
        assert len(records) == len(ids), f"{state}: a listed job has no record"
        for rec in records:
            assert rec.state == state, f"job {rec.id} listed in {state} but its record says {rec.state}"
            assert rec.id not in seen, f"job {rec.id} is in both {seen[rec.id]} and {state}"
            seen[rec.id] = state
    # no orphan job records (a record with no state set)
    cursor = 0
    orphans = []
    pattern = queue.keys.job("*")
    while True:
        cursor, keys = await client.scan(cursor, match=pattern, count=1000)
        for key in keys:
            job_id = key[len(queue.keys.job("")):]
            if job_id not in seen:
                orphans.append(job_id)
        if cursor == 0:
            break
    assert not orphans, f"job records in no state: {orphans[:5]}"
    return counts


class SilentProxy:
    """A TCP proxy to Redis whose open connections can go silent: bytes are swallowed and
    no FIN or RST is sent, as when a network path dies. New connections work normally."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._conns: list[dict[str, Any]] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def go_silent(self) -> None:
        """Every connection open now stops carrying data (in both directions)."""
        for conn in self._conns:
            conn["dead"] = True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        conn: dict[str, Any] = {"dead": False, "writers": (writer, up_writer)}
        self._conns.append(conn)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if not conn["dead"]:
                        dst.write(data)
                        await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                if not conn["dead"]:
                    dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in self._conns:
            for w in conn["writers"]:
                w.close()
        if self._server is not None:
            await self._server.wait_closed()


"""Regression tests for engine bugs found by the chaos runs (``tests/chaos``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

import pytest

from lark_core.errors import RedisUnavailable
from lark_core.worker import Worker
from tests.conftest import write_project
from tests.redis_proc import RedisProc

JOB = '''from lark_core import Job


class Noop(Job):
    async def handle(self, payload):
        return None
'''


def _start_worker(cfg: Path) -> subprocess.Popen[str]:
    code = f"from lark_core import init_queues; init_queues({str(cfg)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    for line in proc.stderr:
        if " serving " in line:
            return proc
        assert time.monotonic() < deadline, "worker did not start"
    raise AssertionError(f"worker exited early: {proc.wait()}")


def test_late_second_sigterm_still_exits_0(tmp_path: Path, redis_url: str) -> None:
    """A forced stop's second SIGTERM arriving while the stopped worker exits killed it
    by signal (exit -15): closing the event loop restored the default action."""
    cfg = write_project(tmp_path, redis_url, {"noop.py": JOB})
    for _ in range(3):
        proc = _start_worker(cfg)
        proc.send_signal(signal.SIGTERM)
        while proc.poll() is None:
            time.sleep(0.002)
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                break
        assert proc.wait(timeout=20) == 0
        assert proc.stderr is not None
        proc.stderr.close()


async def test_periodic_task_treats_redis_unavailable_as_an_outage(caplog: pytest.LogCaptureFixture) -> None:
    """Housekeeping goes through Queue methods, which raise RedisUnavailable: a worker
    started while Redis was down logged it as a crash, with a traceback."""
    calls = 0

    async def housekeeping() -> None:
        nonlocal calls
        calls += 1
        raise RedisUnavailable("cannot reach Redis at redis://127.0.0.1:1/0")

    task = asyncio.create_task(Worker._every(cast(Worker, None), 0.01, housekeeping, "housekeeping"))
    while calls < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_periodic_task_stops_when_its_cancellation_becomes_a_connection_error() -> None:
    """redis-py can turn a cancellation that lands mid-connect (TLS handshake, AUTH reply)
    into a ConnectionError; the periodic loop caught it as an outage and slept on, so a
    worker told to stop while its login was being refused never exited."""
    entered = asyncio.Event()

    async def login() -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise ConnectionError("connection closed during AUTH") from None

    task = asyncio.create_task(Worker._every(cast(Worker, None), 3600, login, "heartbeat"))
    await entered.wait()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert done, "the periodic task swallowed its cancellation"
    assert task.cancelled()


BLOCKS = '''import asyncio

from lark_core import Job


class Blocks(Job):
    async def handle(self, payload):
        await asyncio.Event().wait()
'''


async def test_stop_is_not_held_by_a_redis_that_does_not_answer(tmp_path: Path,
                                                                fresh_redis: RedisProc) -> None:
    """A frozen Redis (SIGSTOP, a dead network path) at shutdown: putting the running job
    back and leaving the registry each waited out the client's timeout and retries (30 s),
    so a worker told to stop now took a minute to exit."""
    from lark_core.discovery import discover
    from lark_core.worker import worker_settings
    from tests.helpers import make_project, wait_state, wait_until

    project = make_project(tmp_path, fresh_redis.url, {"blocks.py": BLOCKS})
    queue = project.queue("default")
    worker = Worker(project, discover(project.config), None,
                    worker_settings(project.config.worker, lock_ms=1000))
    task = asyncio.create_task(worker.run())
    assert fresh_redis.proc is not None
    pid = fresh_redis.proc.pid
    try:
        rec = await queue.add("Blocks", None)
        await wait_state(queue, rec.id, "active")
        await wait_until(project.list_workers, what="the worker to register")
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        worker.request_force_stop()
        done, _ = await asyncio.wait([task], timeout=20)
        elapsed = time.monotonic() - started
        assert done and task.result() == 0, "the worker did not stop"
        assert elapsed < 12, f"stopping took {elapsed:.1f}s"
    finally:
        os.kill(pid, signal.SIGCONT)
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    # nothing lost: the job is back to waiting, or active until its lock expires and a sweep
    recovered = await queue.get_job(rec.id)
    assert recovered is not None and recovered.state in ("waiting", "active")
    await project.close()


async def test_a_worker_started_on_a_redis_that_does_not_answer_starts_its_loops_soon(
        tmp_path: Path, fresh_redis: RedisProc) -> None:
    """The start-up access check loaded the scripts through the default client (10 s
    timeout, two retries): on a frozen Redis the worker sat silent for 30 s before its
    loops started logging the outage, and a stop in that time waited it out."""
    from lark_core.discovery import discover
    from tests.helpers import make_project, wait_until

    project = make_project(tmp_path, fresh_redis.url, {"noop.py": JOB})
    assert fresh_redis.proc is not None
    pid = fresh_redis.proc.pid
    worker = Worker(project, discover(project.config))
    os.kill(pid, signal.SIGSTOP)
    task = asyncio.create_task(worker.run())
    try:
        started = time.monotonic()
        await wait_until(lambda: worker.runners or task.done(), timeout=15,
                         what="the worker's loops to start")
        assert not task.done() and time.monotonic() - started < 12
    finally:
        os.kill(pid, signal.SIGCONT)
    worker.request_stop()
    assert await asyncio.wait_for(task, 30) == 0
    await project.close()

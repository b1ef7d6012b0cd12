"""Delayed jobs start when due (DESIGN: within ~100 ms at idle): the worker's own timer, not
the timeout of its blocking wait (which Redis ends on its clock tick, up to ~100 ms late),
and no signal of new work is lost while a claim is under way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from lark_core.project import Lark
from lark_core.queue import Queue
from tests.helpers import ScriptDriver, make_project, wait_until


@pytest.fixture
async def project(tmp_path: Path, redis_url: str) -> AsyncIterator[Lark]:
    p = make_project(tmp_path, redis_url, queues=["default"])
    yield p
    await p.close()


@pytest.fixture
def queue(project: Lark) -> Queue:
    return project.queue("default")


@pytest.fixture
def driver(project: Lark) -> Iterator[ScriptDriver]:
    d = ScriptDriver(project)
    yield d
    d.runner.stop_watching()
    d.close()


async def test_a_promotion_by_a_call_that_claims_nothing_wakes_a_worker(
    queue: Queue, driver: ScriptDriver,
) -> None:
    """An acknowledgement's claim call (n = 0) that makes a job ready leaves a wake-up mark."""
    rec = await queue.add("T", {}, delay=20)
    t0 = time.monotonic()
    await wait_until(lambda: time.monotonic() - t0 > 0.05, what="the job to be due")
    await queue.redis.delete(queue.keys.marker)
    await driver.promote_due()
    assert [r.id for r in await queue.get_waiting()] == [rec.id]
    assert await queue.redis.zcard(queue.keys.marker) == 1


async def test_a_signal_during_a_claim_is_not_lost(queue: Queue, driver: ScriptDriver) -> None:
    runner = driver.runner
    assert runner.want_claim
    asyncio.get_running_loop().call_soon(runner._due)  # runs while the claim is under way
    assert await runner.step() is True  # nothing claimed, but the signal asks for another look
    assert runner.want_claim
    assert await runner.step() is False  # another look, nothing new: now it may wait
    assert not runner.want_claim


async def test_the_next_due_job_has_a_timer_of_its_own(queue: Queue, driver: ScriptDriver) -> None:
    await queue.add("T", {}, delay=60_000)
    runner = driver.runner
    assert await runner.step() is False  # it sees the delayed job and claims nothing
    await queue.redis.delete(queue.keys.marker)  # the add's wake-up, seen already
    waiting = asyncio.create_task(runner.wait())
    await wait_until(lambda: runner._due_timer is not None, what="the due timer")
    assert runner._marker_task is not None  # producers still wake it at once
    timer = runner._due_timer
    assert timer is not None and 59 < timer.when() - asyncio.get_running_loop().time() <= 60
    runner.stop_watching()
    runner.wake()
    await waiting

"""The worker, in process, against a real redis-server: handlers, retries, removal
policies, bad input, pause, delay, priority, shutdown, lock loss and Redis restarts."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from lark_core import scripts
from lark_core.project import Lark
from lark_core.queue import Queue
from lark_core.scripts import Call
from lark_core.worker import Worker
from tests.helpers import (
    SilentProxy,
    check_consistency,
    job_state,
    make_project,
    running_worker,
    stop_worker,
    wait_state,
    wait_until,
)
from tests.redis_proc import RedisProc

JOBS = '''
import asyncio
import threading
import time
from collections import defaultdict

from lark_core import Job

#: side effects, kept outside the queue: job id -> [(event, monotonic time, detail)]
RUNS = defaultdict(list)
ORDER = []
GATE = asyncio.Event()
GATE2 = asyncio.Event()
THREAD_GATE = threading.Event()


def note(job, event, detail=None):
    RUNS[job.job_id].append((event, time.monotonic(), detail))


class Echo(Job):
    async def handle(self, payload):
        note(self, "start", self.attempt)
        self.info("hello", payload, 42)
        self.warn("careful")
        await self.update_progress({"pct": 50})
        ORDER.append(payload)
        return {"echo": payload, "attempt": self.attempt, "job_id": self.job_id}


class SyncEcho(Job):
    def handle(self, payload):
        note(self, "start")
        self.info("from a thread")
        self.set_progress(75)
        return {"thread": threading.current_thread().name, "payload": payload}


class Gate(Job):
    """Runs until the test opens GATE; counts how many run at once."""
    running = 0
    max_running = 0

    async def handle(self, payload):
        cls = type(self)
        cls.running += 1
        cls.max_running = max(cls.max_running, cls.running)
        note(self, "start", self.attempt)
        self.info("waiting at the gate")
        try:
            await GATE.wait()
        except asyncio.CancelledError:
            note(self, "cancelled")
            raise
        finally:
            cls.running -= 1
        note(self, "end")
        return payload


class Stuck(Job):
    """First run blocks on GATE and returns 'stale'; later runs block on GATE2, return 'fresh'."""

    async def handle(self, payload):
        note(self, "start", self.attempt)
        if len([r for r in RUNS[self.job_id] if r[0] == "start"]) == 1:
            await GATE.wait()
            note(self, "end", "stale")
            return "stale"
        await GATE2.wait()
        note(self, "end", "fresh")
        return "fresh"


class AlwaysFails(Job):
    async def handle(self, payload):
        note(self, "start", self.attempt)
        note(self, "fail", self.attempt)
        raise RuntimeError(f"try {self.attempt} failed")


class Exponential(AlwaysFails):
    attempts = 3
    backoff = {"type": "exponential", "delay": 200}


class Fixed(AlwaysFails):
    attempts = 3
    backoff = {"type": "fixed", "delay": 200}


class SucceedsThird(Job):
    attempts = 5

    async def handle(self, payload):
        note(self, "start", self.attempt)
        if self.attempt < 3:
            raise ValueError("not yet")
        return self.attempt


class Slow(Job):
    timeout = 0.2
    attempts = 1

    async def handle(self, payload):
        note(self, "start")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            note(self, "cancelled")
            raise


class SyncSlow(Job):
    timeout = 0.2
    attempts = 1

    def handle(self, payload):
        note(self, "start")
        THREAD_GATE.wait(60)
        note(self, "end")
        return "late"


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no str for you")

    def __repr__(self):
        raise RuntimeError("no repr either")


class Unpicklable(Exception):
    def __init__(self):
        super().__init__("holds a lock")
        self.lock = threading.Lock()


class RaisesUnprintable(Job):
    async def handle(self, payload):
        raise Unprintable()


class RaisesUnpicklable(Job):
    def handle(self, payload):
        raise Unpicklable()


class ReturnsObject(Job):
    async def handle(self, payload):
        return {"when": object()}


class ReturnsNaN(Job):
    async def handle(self, payload):
        return float("nan")


class KeepOne(Job):
    remove_on_complete = 1

    async def handle(self, payload):
        return payload


class Chatty(Job):
    attempts = 2

    async def handle(self, payload):
        for i in range(payload.get("lines", 0)):
            self.info("line", i)
        if payload.get("long"):
            self.info("x" * 20_000)
        self.info("try", self.attempt)
        if self.attempt == 1 and payload.get("fail_first"):
            raise RuntimeError("first try fails")
        return "ok"


class Nap(Job):
    async def handle(self, payload):
        ORDER.append(payload)
        await asyncio.sleep(0.01)


class Spawner(Job):
    """A sync handler dispatching another job with dispatch_sync (no loop in its thread)."""

    def handle(self, payload):
        return Echo.dispatch_sync({"child_of": self.job_id}).id


class Exits(Job):
    async def handle(self, payload):
        raise SystemExit(3)
'''


@pytest.fixture
async def project(tmp_path: Path, redis_url: str) -> AsyncIterator[Lark]:
    p = make_project(tmp_path, redis_url, {"work.py": JOBS}, queues=["default", "other"])
    yield p
    if "lark_jobs.work" in sys.modules:
        jobs_module().THREAD_GATE.set()  # never leave a handler thread blocked
    await p.close()


@pytest.fixture
def queue(project: Lark) -> Queue:
    return project.queue("default")


def jobs_module() -> ModuleType:
    return sys.modules["lark_jobs.work"]


def starts(job_id: str) -> list[float]:
    return [t for ev, t, _d in jobs_module().RUNS[job_id] if ev == "start"]


def events_of(job_id: str) -> list[str]:
    return [ev for ev, _t, _d in jobs_module().RUNS[job_id]]


async def release_all() -> None:
    m = jobs_module()
    m.GATE.set()
    m.GATE2.set()
    m.THREAD_GATE.set()


# -- handlers ---------------------------------------------------------------------------------------


async def test_async_handler_result_logs_and_progress(queue: Queue, project: Lark) -> None:
    async with running_worker(project):
        rec = await queue.add("Echo", {"n": 1})
        await wait_state(queue, rec.id, "completed")
    done = await queue.get_job(rec.id)
    assert done is not None
    assert done.return_value == {"echo": {"n": 1}, "attempt": 1, "job_id": rec.id}
    assert done.progress == {"pct": 50}
    assert done.attempts_made == 1 and done.failed_reason is None
    assert done.processed_on and done.finished_on and done.processed_on <= done.finished_on
    logs = await done.get_logs()
    assert len(logs) == 2
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO hello \{\"n\": 1\} 42",
                        logs[0]), logs[0]
    assert re.fullmatch(r"\S+Z WARN(ING)? careful", logs[1]), logs[1]
    kinds = [f["ev"] for _e, f in await queue.events("-", 1000)]
    assert kinds.index("added") < kinds.index("active") < kinds.index("progress")
    assert kinds.index("progress") < kinds.index("completed")
    assert (await queue.get_metrics(1))[-1]["completed"] == 1
    await check_consistency(queue)


async def test_sync_handler_runs_in_a_thread(queue: Queue, project: Lark) -> None:
    async with running_worker(project):
        rec = await queue.add("SyncEcho", [1, 2])
        await wait_state(queue, rec.id, "completed")
    done = await queue.get_job(rec.id)
    assert done is not None
    assert done.return_value["payload"] == [1, 2]
    assert done.return_value["thread"].startswith("lark-job")
    assert done.progress == 75
    assert (await done.get_logs())[0].endswith(" INFO from a thread")


async def test_worker_registers_itself(queue: Queue, project: Lark) -> None:
    async with running_worker(project, concurrency=3) as worker:
        workers = await wait_until(project.list_workers, what="the registry entry")
        (info,) = workers
        assert info.id == worker.id and info.concurrency == 3
        assert info.queues == ["default", "other"] and info.pid > 0
    assert await project.list_workers() == []


async def test_concurrency_limit_is_respected(queue: Queue, project: Lark) -> None:
    async with running_worker(project, concurrency=3) as worker:
        gate = worker.jobs.get("Gate")
        assert gate is not None
        await queue.add_bulk([{"name": "Gate", "payload": i} for i in range(10)])
        await wait_until(lambda: gate.running == 3, what="three jobs running")
        counts = await queue.get_job_counts()
        assert counts["active"] == 3 and counts["waiting"] == 7
        await release_all()

        async def all_done() -> bool:
            return (await queue.get_job_counts())["completed"] == 10

        await wait_until(all_done, what="all jobs")
    assert gate.max_running == 3


async def test_concurrency_is_shared_by_queues(project: Lark) -> None:
    default, other = project.queue("default"), project.queue("other")
    async with running_worker(project, concurrency=2) as worker:
        gate = worker.jobs.get("Gate")
        assert gate is not None
        await default.add_bulk([{"name": "Gate", "payload": i} for i in range(4)])
        await other.add_bulk([{"name": "Gate", "payload": i} for i in range(4)])
        await wait_until(lambda: gate.running == 2, what="two jobs running")
        await release_all()

        async def all_done() -> bool:
            return ((await default.get_job_counts())["completed"] == 4
                    and (await other.get_job_counts())["completed"] == 4)

        await wait_until(all_done, what="both queues")
    assert gate.max_running == 2


@pytest.mark.parametrize("concurrency", [1, 2, 3])
async def test_queues_are_served_round_robin(project: Lark, concurrency: int) -> None:
    default, other = project.queue("default"), project.queue("other")
    await default.add_bulk([{"name": "Nap", "payload": "d"} for _ in range(30)])
    await other.add_bulk([{"name": "Nap", "payload": "o"} for _ in range(30)])
    async with running_worker(project, concurrency=concurrency):

        async def all_done() -> bool:
            return ((await default.get_job_counts())["completed"]
                    + (await other.get_job_counts())["completed"]) == 60

        await wait_until(all_done, what="both queues")
    order = "".join(jobs_module().ORDER)
    # after the first claims, the two queues take turns: neither waits for the other to drain
    window = order[concurrency:concurrency + 20]
    assert window.count("d") >= 5 and window.count("o") >= 5, order


async def test_a_busy_queue_does_not_starve_another(project: Lark) -> None:
    default, other = project.queue("default"), project.queue("other")
    async with running_worker(project, concurrency=2):
        await default.add_bulk([{"name": "Echo", "payload": i} for i in range(300)])
        lone = await other.add("Echo", "lone")
        await wait_state(other, lone.id, "completed")
        assert (await default.get_job_counts())["completed"] < 300

        async def all_done() -> bool:
            return (await default.get_job_counts())["completed"] == 300

        await wait_until(all_done, what="the busy queue")


# -- retries ----------------------------------------------------------------------------------------


async def test_always_failing_job_uses_every_attempt(queue: Queue, project: Lark) -> None:
    async with running_worker(project):
        rec = await queue.add("AlwaysFails", {}, attempts=3)
        await wait_state(queue, rec.id, "failed")
    failed = await queue.get_job(rec.id)
    assert failed is not None
    assert failed.attempts_made == 3 and failed.max_attempts == 3
    assert failed.failed_reason == "RuntimeError: try 3 failed"
    assert failed.stacktrace and "Traceback" in failed.stacktrace
    assert "RuntimeError: try 3 failed" in failed.stacktrace
    assert [d for ev, _t, d in jobs_module().RUNS[rec.id] if ev == "start"] == [1, 2, 3]
    retried = [f for _e, f in await queue.events("-", 1000) if f["ev"] == "retried"]
    assert len(retried) == 2
    counts = await check_consistency(queue)
    assert counts["failed"] == 1 and sum(counts.values()) == 1


async def test_a_retry_can_succeed(queue: Queue, project: Lark) -> None:
    async with running_worker(project):
        rec = await queue.add("SucceedsThird")
        await wait_state(queue, rec.id, "completed")
    done = await queue.get_job(rec.id)
    assert done is not None and done.return_value == 3 and done.attempts_made == 3


def _gaps(job_id: str) -> list[float]:
    """Milliseconds from each failure to the next start."""
    runs = jobs_module().RUNS[job_id]
    fails = [t for ev, t, _d in runs if ev == "fail"]
    begins = [t for ev, t, _d in runs if ev == "start"]
    return [(begins[i + 1] - fails[i]) * 1000 for i in range(len(begins) - 1)]


async def test_exponential_backoff(queue: Queue, project: Lark) -> None:
    async with running_worker(project):
        rec = await queue.add("Exponential")
        await wait_state(queue, rec.id, "failed")
    gaps = _gaps(rec.id)
    assert len(gaps) == 2
    assert 180 <= gaps[0] <= 200 + 300, gaps
    assert 380 <= gaps[1] <= 400 + 300, gaps
    assert gaps[1] > gaps[0]


async def test_fixed_backoff_and_dispatch_overrides(queue: Queue, project: Lark) -> None:
    async with running_worker(project):
        fixed = await queue.add("Fixed")
        # a dispatch option beats the class attribute
        once = await queue.add("Fixed", {}, attempts=1)
        exp = await queue.add("Exponential", {}, backoff={"type": "fixed", "delay": 50})
        await wait_state(queue, fixed.id, "failed")
        await wait_state(queue, once.id, "failed")
        await wait_state(queue, exp.id, "failed")
    gaps = _gaps(fixed.id)
    assert len(gaps) == 2 and all(180 <= g <= 200 + 300 for g in gaps), gaps
    assert len(starts(once.id)) == 1
    assert all(40 <= g <= 50 + 300 for g in _gaps(exp.id)), _gaps(exp.id)


# -- removal policies ----------------------------------------------------------------------------------


async def _run_in_order(queue: Queue, name: str, n: int, **opts: Any) -> list[str]:
    ids = []
    for i in range(n):
        rec = await queue.add(name, i, **opts)
        ids.append(rec.id)

        async def finished(job_id: str = rec.id) -> bool:
            return await job_state(queue, job_id) in (None, "completed", "failed")

        await wait_until(finished, what=f"job {i}")
    return ids


async def test_remove_on_complete_true(queue: Queue, project: Lark) -> None:
    async with running_worker(project):
        ids = await _run_in_order(queue, "Echo", 2, remove_on_complete=True)
    for job_id in ids:
        assert await queue.get_job(job_id) is None
        assert await queue.redis.exists(queue.keys.logs(job_id)) == 0
    counts = await check_consistency(queue)
    assert sum(counts.values()) == 0
    assert (await queue.get_metrics(1))[-1]["completed"] == 2


@pytest.mark.parametrize("policy", [2, {"count": 2}])
async def test_remove_on_complete_keeps_the_newest_n(queue: Queue, project: Lark,
                                                     policy: Any) -> None:
    async with running_worker(project, concurrency=1):
        ids = await _run_in_order(queue, "Echo", 5, removeOnComplete=policy)
    assert [r.id for r in await queue.get_completed()] == [ids[4], ids[3]]
    for job_id in ids[:3]:
        assert await queue.get_job(job_id) is None
    await check_consistency(queue)


async def test_remove_on_complete_by_age(queue: Queue, project: Lark) -> None:
    async with running_worker(project):
        (old,) = await _run_in_order(queue, "Echo", 1, remove_on_complete={"age": 0.2})
        t = time.monotonic()
        await wait_until(lambda: time.monotonic() - t > 0.4, what="the first job to age")
        (new,) = await _run_in_order(queue, "Echo", 1, remove_on_complete={"age": 0.2})
    assert await queue.get_job(old) is None
    assert [r.id for r in await queue.get_completed()] == [new]


async def test_remove_on_complete_from_the_class(queue: Queue, project: Lark) -> None:
    async with running_worker(project, concurrency=1):
        ids = await _run_in_order(queue, "KeepOne", 3)
    assert [r.id for r in await queue.get_completed()] == [ids[2]]


async def test_remove_on_fail(queue: Queue, project: Lark) -> None:
    async with running_worker(project, concurrency=1):
        gone = await _run_in_order(queue, "AlwaysFails", 2, remove_on_fail=True)
        kept = await _run_in_order(queue, "AlwaysFails", 3, removeOnFail={"count": 1})
    for job_id in gone + kept[:2]:
        assert await queue.get_job(job_id) is None
    assert [r.id for r in await queue.get_failed()] == [kept[2]]
    counts = await check_consistency(queue)
    assert counts["failed"] == 1
    assert (await queue.get_metrics(1))[-1]["failed"] == 5


# -- bad input fails one job; the worker goes on -------------------------------------------------------


async def test_timeout_fails_an_async_attempt(queue: Queue, project: Lark) -> None:
    async with running_worker(project):
        rec = await queue.add("Slow")
        await wait_state(queue, rec.id, "failed")
        after = await queue.add("Echo", "after")
        await wait_state(queue, after.id, "completed")
    failed = await queue.get_job(rec.id)
    assert failed is not None and failed.failed_reason is not None
    assert "timeout" in failed.failed_reason.lower() and "0.2" in failed.failed_reason
    assert events_of(rec.id) == ["start", "cancelled"]


async def test_timeout_of_a_sync_handler_keeps_its_slot(queue: Queue, project: Lark,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="lark.worker")
    try:
        async with running_worker(project, concurrency=1):
            rec = await queue.add("SyncSlow")
            nxt = await queue.add("Echo", "next")
            await wait_state(queue, rec.id, "failed")
            failed = await queue.get_job(rec.id)
            assert failed is not None and "timeout" in (failed.failed_reason or "").lower()
            # the thread still runs: its slot is still taken
            assert await queue.get_job(nxt.id) is not None
            assert (await queue.get_job(nxt.id)).state == "waiting"  # type: ignore[union-attr]
            assert any("slot" in r.getMessage() for r in caplog.records)
            jobs_module().THREAD_GATE.set()
            await wait_state(queue, nxt.id, "completed")
    finally:
        jobs_module().THREAD_GATE.set()
    assert events_of(rec.id) == ["start", "end"]
    assert (await queue.get_job(rec.id)).state == "failed"  # type: ignore[union-attr]


async def test_unknown_job_name_fails_that_job(queue: Queue, project: Lark) -> None:
    async with running_worker(project):
        bad = await queue.add("NoSuchJob", {}, attempts=5)
        good = await queue.add("Echo", "fine")
        await wait_state(queue, bad.id, "failed")
        await wait_state(queue, good.id, "completed")
    failed = await queue.get_job(bad.id)
    assert failed is not None and failed.attempts_made == 1
    assert failed.failed_reason is not None
    assert "unknown job name" in failed.failed_reason and "NoSuchJob" in failed.failed_reason


async def test_corrupt_records_fail_with_a_clear_reason(queue: Queue, project: Lark) -> None:
    bad_data = await queue.add("Echo", {"ok": 1})
    bad_opts = await queue.add("Echo", {"ok": 2})
    vanished = await queue.add("Echo", {"ok": 3})
    await queue.redis.hset(queue.keys.job(bad_data.id), "data", "not json")
    await queue.redis.hset(queue.keys.job(bad_opts.id), "opts", "{broken")
    await queue.redis.delete(queue.keys.job(vanished.id))
    async with running_worker(project):
        await wait_state(queue, bad_data.id, "failed")
        await wait_state(queue, bad_opts.id, "failed")
        good = await queue.add("Echo", "after")
        await wait_state(queue, good.id, "completed")
    for job_id in (bad_data.id, bad_opts.id):
        rec = await queue.get_job(job_id)
        assert rec is not None and "corrupt job record" in (rec.failed_reason or "")
    assert starts(bad_data.id) == []
    counts = await check_consistency(queue)
    assert counts["failed"] == 2 and counts["completed"] == 1 and counts["waiting"] == 0


@pytest.mark.parametrize(("name", "expected"), [
    ("RaisesUnprintable", "Unprintable"),
    ("RaisesUnpicklable", "Unpicklable: holds a lock"),
    ("ReturnsObject", "JSON"),
    ("ReturnsNaN", "JSON"),
    ("Exits", "SystemExit"),
])
async def test_bad_handlers_fail_that_job(queue: Queue, project: Lark, name: str,
                                          expected: str) -> None:
    async with running_worker(project) as worker:
        rec = await queue.add(name)
        await wait_state(queue, rec.id, "failed")
        good = await queue.add("Echo", "after")
        await wait_state(queue, good.id, "completed")
        assert not worker.test_task.done()  # type: ignore[attr-defined]
    failed = await queue.get_job(rec.id)
    assert failed is not None and expected in (failed.failed_reason or ""), failed.failed_reason


# -- pause, delay, priority ---------------------------------------------------------------------------


async def test_pause_stops_claiming_and_resume_continues(queue: Queue, project: Lark) -> None:
    async with running_worker(project, concurrency=1) as worker:
        gate = worker.jobs.get("Gate")
        assert gate is not None
        running = await queue.add("Gate", "in flight")
        await wait_until(lambda: gate.running == 1, what="the first job to start")
        await queue.pause()
        later = await queue.add_bulk([{"name": "Echo", "payload": i} for i in range(3)])
        assert all(r.state == "paused" for r in later)
        await release_all()
        await wait_state(queue, running.id, "completed")  # active jobs finish while paused
        assert worker.jobs.get("Echo") is not None
        counts = await queue.get_job_counts()
        assert counts["paused"] == 3 and counts["waiting"] == 0 and counts["active"] == 0
        assert jobs_module().ORDER == []
        await queue.resume()
        for r in later:
            await wait_state(queue, r.id, "completed")
    assert jobs_module().ORDER == [0, 1, 2]


async def test_delayed_job_runs_after_its_delay(queue: Queue, project: Lark) -> None:
    async with running_worker(project):
        t0 = time.monotonic()
        rec = await queue.add("Echo", "later", delay=300)
        assert rec.state == "delayed"
        await wait_state(queue, rec.id, "completed")
    (start,) = starts(rec.id)
    assert 0.28 <= start - t0 <= 0.3 + 0.4, start - t0  # DESIGN: ~100 ms at idle; CI is busy


async def test_a_sooner_delayed_job_is_not_held_up_by_a_later_one(queue: Queue,
                                                                 project: Lark) -> None:
    async with running_worker(project, queues=["default"]) as worker:
        late = await queue.add("Echo", "late", delay=5_000)
        runner = worker.runners[0]
        # the worker has seen the late job and waits for it
        await wait_until(lambda: runner.next_due > 0, what="the runner to see the delayed job")
        t0 = time.monotonic()
        soon = await queue.add("Echo", "soon", delay=200)
        await wait_state(queue, soon.id, "completed")
        (start,) = starts(soon.id)
        assert 0.18 <= start - t0 <= 0.2 + 0.4, start - t0
        assert (await queue.get_job(late.id)).state == "delayed"  # type: ignore[union-attr]


async def test_priority_with_concurrency_one(queue: Queue, project: Lark) -> None:
    await queue.pause()
    prios = [5, 1, 3, 1, 0, 2_000_000, 3]
    for i, p in enumerate(prios):
        await queue.add("Echo", i, priority=p)
    async with running_worker(project, concurrency=1):
        await queue.resume()

        async def all_done() -> bool:
            return (await queue.get_job_counts())["completed"] == len(prios)

        await wait_until(all_done, what="all jobs")
    order = jobs_module().ORDER
    assert order == [i for i, _p in sorted(enumerate(prios), key=lambda x: (x[1], x[0]))]


# -- shutdown --------------------------------------------------------------------------------------


async def test_graceful_stop_finishes_the_in_flight_job(queue: Queue, project: Lark) -> None:
    async with running_worker(project) as worker:
        gate = worker.jobs.get("Gate")
        assert gate is not None
        rec = await queue.add("Gate", "x")
        await wait_until(lambda: gate.running == 1, what="the job to start")
        worker.request_stop()
        await wait_until(lambda: worker.stopping, what="the worker to stop claiming")
        untouched = await queue.add("Echo", "not now")
        assert not worker.test_task.done()  # type: ignore[attr-defined]
        assert (await queue.get_job(rec.id)).state == "active"  # type: ignore[union-attr]
        await release_all()
        assert await asyncio.wait_for(worker.test_task, 10) == 0  # type: ignore[attr-defined]
    done = await queue.get_job(rec.id)
    assert done is not None and done.state == "completed" and done.return_value == "x"
    assert (await done.get_logs())[0].endswith("INFO waiting at the gate")
    assert (await queue.get_job(untouched.id)).state == "waiting"  # type: ignore[union-attr]
    assert starts(untouched.id) == []
    await check_consistency(queue)


async def test_force_stop_puts_the_in_flight_job_back(queue: Queue, project: Lark) -> None:
    async with running_worker(project) as worker:
        gate = worker.jobs.get("Gate")
        assert gate is not None
        rec = await queue.add("Gate", "x", priority=1)
        other = await queue.add("Gate", "y", priority=1, delay=60_000)
        await wait_until(lambda: gate.running == 1, what="the job to start")
        assert (await queue.get_job(rec.id)).attempts_made == 1  # type: ignore[union-attr]
        worker.request_stop()
        worker.request_stop()  # a second signal: stop now
        assert await asyncio.wait_for(worker.test_task, 10) == 0  # type: ignore[attr-defined]
    back = await queue.get_job(rec.id)
    assert back is not None and back.state == "waiting"
    assert back.attempts_made == 0 and back.stalled_count == 0 and back.failed_reason is None
    assert events_of(rec.id) == ["start", "cancelled"]
    assert any(line.endswith("INFO waiting at the gate") for line in await back.get_logs())
    assert (await queue.get_job(other.id)).state == "delayed"  # type: ignore[union-attr]
    counts = await check_consistency(queue)
    assert counts["waiting"] == 1 and counts["active"] == 0
    # it runs again from the start with the next worker
    async with running_worker(project):
        await release_all()
        await wait_state(queue, rec.id, "completed")
    assert (await queue.get_job(rec.id)).attempts_made == 1  # type: ignore[union-attr]


async def test_grace_period_end_puts_jobs_back(queue: Queue, project: Lark) -> None:
    async with running_worker(project, shutdown_grace_s=0.3) as worker:
        gate = worker.jobs.get("Gate")
        assert gate is not None
        rec = await queue.add("Gate", "x")
        await wait_until(lambda: gate.running == 1, what="the job to start")
        t0 = time.monotonic()
        assert await stop_worker(worker) == 0
        assert 0.25 <= time.monotonic() - t0 < 5
    back = await queue.get_job(rec.id)
    assert back is not None and back.state == "waiting" and back.attempts_made == 0
    await check_consistency(queue)


async def test_request_force_stop(queue: Queue, project: Lark) -> None:
    async with running_worker(project) as worker:
        gate = worker.jobs.get("Gate")
        assert gate is not None
        recs = await queue.add_bulk([{"name": "Gate", "payload": i} for i in range(3)])
        await wait_until(lambda: gate.running == 3, what="the jobs to start")
        assert await stop_worker(worker, force=True) == 0
    for r in recs:
        back = await queue.get_job(r.id)
        assert back is not None and back.state == "waiting" and back.attempts_made == 0
    assert [r.id for r in await queue.get_waiting()] == [r.id for r in recs]


# -- lock loss ------------------------------------------------------------------------------------------


async def steal_lock(queue: Queue, job_id: str, max_stalls: int = 1) -> list[Any]:
    """Expire the job's lock and run the stalled sweep in one transaction, as if the
    worker had frozen past its lock and another worker had swept."""
    k = queue.keys
    call = Call(scripts.script("stalled"),
                [k.active, k.wait, k.paused, k.failed, k.meta, k.events, k.marker, k.sweep,
                 k.metrics], [queue._job_prefix, max_stalls, 0, 1000])
    for s in scripts.load_scripts().values():
        await queue.redis.script_load(s.text)
    pipe = queue.redis.pipeline(transaction=True)
    pipe.zadd(k.active, {job_id: 1}, xx=True)
    pipe.execute_command("EVALSHA", *call.argv())
    return list(await pipe.execute())


async def test_a_job_whose_lock_was_stolen_cannot_overwrite_the_new_state(
        queue: Queue, project: Lark, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="lark.worker")
    async with running_worker(project, concurrency=2, lock_ms=300,
                              stalled_interval_ms=100) as worker:
        rec = await queue.add("Stuck")
        await wait_until(lambda: len(starts(rec.id)) == 1, what="the first run")
        _, swept = await steal_lock(queue, rec.id)
        assert swept == [rec.id, "|"]
        # the job is recovered and claimed again (the first run still blocks)
        await wait_until(lambda: len(starts(rec.id)) == 2, what="the second run")
        # the first run ends: its result is refused
        jobs_module().GATE.set()
        await wait_until(lambda: "end" in events_of(rec.id), what="the stale run to end")
        await wait_until(lambda: any("lock lost" in r.getMessage() for r in caplog.records))
        # the second run keeps its lock (renewed) for several lock periods
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:
            current = await queue.get_job(rec.id)
            assert current is not None and current.state == "active", current
            assert current.return_value is None
            await asyncio.sleep(0.05)
        jobs_module().GATE2.set()
        await wait_state(queue, rec.id, "completed")
        assert isinstance(worker, Worker)
    done = await queue.get_job(rec.id)
    assert done is not None and done.return_value == "fresh" and done.stalled_count == 1
    completed = [f for _e, f in await queue.events("-", 1000) if f["ev"] == "completed"]
    assert len(completed) == 1
    counts = await check_consistency(queue)
    assert counts["completed"] == 1 and sum(counts.values()) == 1


async def test_stalled_job_is_recovered_by_the_worker(queue: Queue, project: Lark) -> None:
    """A job left active by a dead worker (lock expired) is swept and run."""
    job = await queue.add("Echo", "orphan")
    # claim it as a worker that then dies: lock of 100 ms, never renewed
    from tests.helpers import ScriptDriver

    dead = ScriptDriver(project, lock_ms=100)
    try:
        (claim,) = await dead.claim(1)
    finally:
        dead.close()
    assert claim.id == job.id
    async with running_worker(project, stalled_interval_ms=100):
        await wait_state(queue, job.id, "completed")
    done = await queue.get_job(job.id)
    assert done is not None and done.stalled_count == 1 and done.attempts_made == 1
    stalled = [f for _e, f in await queue.events("-", 1000) if f["ev"] == "stalled"]
    assert stalled and job.id in stalled[0]["ids"]


# -- logs, retries from the API, dispatch from a handler, queue subsets --------------------------------


async def test_logs_are_capped_truncated_and_survive_retries(queue: Queue, project: Lark) -> None:
    async with running_worker(project):
        many = await queue.add("Chatty", {"lines": 1_500})
        long = await queue.add("Chatty", {"long": True})
        twice = await queue.add("Chatty", {"fail_first": True})
        for r in (many, long, twice):
            await wait_state(queue, r.id, "completed")
    logs = await queue.get_job_logs(many.id)
    assert len(logs) == 1_000
    long_logs = await queue.get_job_logs(long.id)
    big = next(line for line in long_logs if "xxxx" in line)
    assert len(big.encode()) <= 8 * 1024 + 100 and "truncated" in big
    lines = [line.split(" ", 2)[2] for line in await queue.get_job_logs(twice.id)]
    assert lines == ["try 1", "try 2"]
    rec = await queue.get_job(twice.id)
    assert rec is not None and rec.attempts_made == 2 and rec.return_value == "ok"


async def test_a_retried_failed_job_runs_again(queue: Queue, project: Lark) -> None:
    async with running_worker(project):
        rec = await queue.add("AlwaysFails", {"v": 1}, attempts=1)
        await wait_state(queue, rec.id, "failed")
        failed = await queue.get_job(rec.id)
        assert failed is not None
        await failed.retry()
        await wait_until(lambda: len(starts(rec.id)) == 2, what="the second run")
        await wait_state(queue, rec.id, "failed")
    again = await queue.get_job(rec.id)
    assert again is not None and again.attempts_made == 1 and again.payload == {"v": 1}
    assert again.failed_reason == "RuntimeError: try 1 failed"
    assert any(line.endswith(" INFO retried") for line in await again.get_logs())


async def test_dispatch_sync_from_a_sync_handler(queue: Queue, project: Lark, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from lark_core.project import default_project, set_default_project

    monkeypatch.setenv("LARK_CONFIG", str(tmp_path / "lark.config.yaml"))
    set_default_project(None)
    try:
        async with running_worker(project):
            parent = await queue.add("Spawner")
            await wait_state(queue, parent.id, "completed")
            done = await queue.get_job(parent.id)
            assert done is not None and isinstance(done.return_value, str)
            await wait_state(queue, done.return_value, "completed")
        child = await queue.get_job(done.return_value)
        assert child is not None and child.return_value["echo"] == {"child_of": parent.id}
    finally:
        await default_project().close()
        set_default_project(None)


async def test_a_worker_serves_only_its_queues(project: Lark) -> None:
    default, other = project.queue("default"), project.queue("other")
    async with running_worker(project, queues=["other"]) as worker:
        assert [q.name for q in worker.queues] == ["other"]
        mine = await other.add("Echo", "mine")
        not_mine = await default.add("Echo", "not mine")
        await wait_state(other, mine.id, "completed")
        assert (await default.get_job(not_mine.id)).state == "waiting"  # type: ignore[union-attr]


# -- Redis faults ---------------------------------------------------------------------------------------


async def test_worker_survives_dropped_connections(queue: Queue, project: Lark,
                                                   redis_proc: RedisProc) -> None:
    admin = redis_proc.client()
    try:
        async with running_worker(project) as worker:
            gate = worker.jobs.get("Gate")
            assert gate is not None
            first = await queue.add("Gate", "in flight")
            await wait_until(lambda: gate.running == 1, what="the job to start")
            assert admin.client_kill_filter(_type="normal", skipme=True) >= 2
            await release_all()
            await wait_state(queue, first.id, "completed")
            admin.client_kill_filter(_type="normal", skipme=True)  # while idle, blocked on BZPOPMIN
            after = await wait_until(lambda: _try_add(queue, "after"), what="a new connection")
            await wait_state(queue, after.id, "completed")
    finally:
        admin.close()
    assert starts(first.id) != [] and len(starts(first.id)) == 1
    await check_consistency(queue)


async def test_worker_survives_connections_that_go_silent(
        tmp_path: Path, redis_url: str, redis_proc: RedisProc,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A network path that dies without a FIN or RST (host lost, partition): the worker's
    blocked wait for work must not hang forever on its dead connection."""
    from lark_core import connection, runner

    monkeypatch.setattr(runner, "IDLE_WAIT_S", 0.5)
    monkeypatch.setattr(runner, "BLOCK_MARGIN_S", 1.0)
    # the ordinary clients time out (as they do in production, after 10 s) sooner here
    monkeypatch.setitem(connection._KINDS, "default", (1.0, 2))
    monkeypatch.setitem(connection._KINDS, "worker", (1.0, 0))
    proxy = SilentProxy(redis_proc.port)
    await proxy.start()
    db = redis_url.rsplit("/", 1)[1]
    project = make_project(tmp_path, proxy.url(int(db)), {"work.py": JOBS})
    producer = make_project(tmp_path / "producer", redis_url, {"work.py": JOBS})
    queue = producer.queue("default")
    try:
        async with running_worker(project, stalled_interval_ms=60_000):
            first = await queue.add("Echo", "first")
            await wait_state(queue, first.id, "completed")
            # the idle worker waits for work on its blocking connection: cut every connection
            proxy.go_silent()
            after = await queue.add("Echo", "after")
            await wait_state(queue, after.id, "completed", timeout=20)
    finally:
        await project.close()
        await producer.close()
        await proxy.close()
    assert jobs_module().ORDER == ["first", "after"]


async def test_a_job_finishing_while_redis_is_down_is_acknowledged_after(
        tmp_path: Path, fresh_redis: RedisProc) -> None:
    project = make_project(tmp_path, fresh_redis.url, {"work.py": JOBS})
    queue = project.queue("default")
    try:
        async with running_worker(project) as worker:
            gate = worker.jobs.get("Gate")
            assert gate is not None
            rec = await queue.add("Gate", "through the outage")
            await wait_until(lambda: gate.running == 1, what="the job to start")
            fresh_redis.stop()
            await release_all()
            await wait_until(lambda: "end" in events_of(rec.id), what="the handler to return")
            fresh_redis.start()
            await wait_state(queue, rec.id, "completed", timeout=30)
        done = await queue.get_job(rec.id)
        assert done is not None and done.return_value == "through the outage"
        assert len(starts(rec.id)) == 1 and done.stalled_count == 0
        await check_consistency(queue)
    finally:
        await project.close()


async def test_worker_survives_a_redis_restart(tmp_path: Path, fresh_redis: RedisProc,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lark")
    project = make_project(tmp_path, fresh_redis.url, {"work.py": JOBS})
    queue = project.queue("default")
    try:
        async with running_worker(project, stalled_interval_ms=200) as worker:
            before = await queue.add("Echo", "before")
            await wait_state(queue, before.id, "completed")
            fresh_redis.stop()
            fresh_redis.start()
            after = await wait_until(lambda: _try_add(queue, "after"), timeout=20,
                                     what="Redis to accept writes")
            await wait_state(queue, after.id, "completed", timeout=30)
            # and again, with Redis killed hard while the worker waits for work
            fresh_redis.kill()
            fresh_redis.start()
            third = await wait_until(lambda: _try_add(queue, "third"), timeout=20,
                                     what="Redis to accept writes")
            await wait_state(queue, third.id, "completed", timeout=30)
            assert not worker.test_task.done()  # type: ignore[attr-defined]
        assert (await queue.get_job(before.id)).state == "completed"  # type: ignore[union-attr]
        assert jobs_module().ORDER == ["before", "after", "third"]
        await check_consistency(queue)
        # a queue loop that logged the outage says when Redis answers again
        said = caplog.messages
        down = [i for i, m in enumerate(said) if "] Redis unavailable:" in m]
        if down:
            assert any("Redis reachable again" in m for m in said[down[-1]:]), said
    finally:
        await project.close()


async def _try_add(queue: Queue, payload: Any) -> Any:
    from lark_core.errors import RedisUnavailable

    try:
        return await queue.add("Echo", payload, job_id=f"job-{payload}")
    except RedisUnavailable:
        return None

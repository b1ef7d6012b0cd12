"""Each Lua script, called the way the engine calls it (Queue methods and a QueueRunner),
against a real redis-server; after every operation the counts must equal the lists."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from lark_core.errors import JobNotFound, JobNotInState
from lark_core.project import Lark
from lark_core.queue import Queue
from tests.helpers import ScriptDriver, check_consistency, make_project, wait_until
from tests.redis_proc import RedisProc


@pytest.fixture
async def project(tmp_path: Path, redis_url: str) -> AsyncIterator[Lark]:
    p = make_project(tmp_path, redis_url, queues=["default", "other"])
    yield p
    await p.close()


@pytest.fixture
def queue(project: Lark) -> Queue:
    return project.queue("default")


@pytest.fixture
def driver(project: Lark) -> Iterator[ScriptDriver]:
    d = ScriptDriver(project)
    yield d
    d.close()


async def added_events(queue: Queue) -> list[str]:
    ids: list[str] = []
    for _eid, fields in await queue.events("-", count=10_000):
        if fields.get("ev") == "added":
            ids.extend(fields["ids"].split(","))
    return ids


async def promote_when_due(queue: Queue, driver: ScriptDriver) -> None:
    """Run the promotion until no delayed job is left (they must be due soon)."""

    async def promoted() -> bool:
        await driver.promote_due()
        return (await queue.get_job_counts())["delayed"] == 0

    await wait_until(promoted, what="the delayed jobs to be due")


# -- add ---------------------------------------------------------------------------------


async def test_add_dedupes_by_job_id(queue: Queue) -> None:
    first = await queue.add("Thing", {"v": 1}, job_id="order-1", priority=3)
    again = await queue.add("Other", {"v": 2}, job_id="order-1", priority=9, delay=5000)
    assert again.id == first.id == "order-1"
    assert again.payload == {"v": 1} and again.name == "Thing" and again.priority == 3
    assert again.state == "waiting"
    stored = await queue.get_job("order-1")
    assert stored is not None and stored.payload == {"v": 1}
    counts = await check_consistency(queue)
    assert counts["waiting"] == 1 and counts["delayed"] == 0

    bulk = await queue.add_bulk([
        {"name": "Thing", "payload": {"v": 3}, "opts": {"job_id": "order-1"}},
        {"name": "Thing", "payload": {"v": 4}, "opts": {"job_id": "order-2"}},
        {"name": "Thing", "payload": {"v": 5}, "opts": {"job_id": "order-2"}},
    ])
    assert [r.payload for r in bulk] == [{"v": 1}, {"v": 4}, {"v": 4}]
    assert await added_events(queue) == ["order-1", "order-2"]
    assert (await check_consistency(queue))["waiting"] == 2


async def test_generated_ids_are_unique_and_sortable(queue: Queue) -> None:
    recs = await queue.add_bulk([{"name": "T", "payload": i} for i in range(200)])
    ids = [r.id for r in recs]
    assert len(set(ids)) == 200
    assert all(len(i) == 26 for i in ids)
    assert (await check_consistency(queue))["waiting"] == 200


# -- priority and order ----------------------------------------------------------------------


async def test_claim_order_is_priority_then_fifo(queue: Queue, driver: ScriptDriver) -> None:
    prios = [3, 1, 2, 1, 0, 3, 0, 2_097_152, 2]
    recs = [await queue.add("T", {"i": i}, priority=p) for i, p in enumerate(prios)]
    expected = [r.id for r in sorted(recs, key=lambda r: (r.priority, r.payload["i"]))]
    assert [r.id for r in await queue.get_waiting()] == expected
    claimed = []
    for _ in prios:
        (c,) = await driver.claim(1)
        claimed.append(c.id)
        assert c.priority == prios[json.loads(c.data)["i"]]
        await check_consistency(queue)
    assert claimed == expected
    assert await driver.claim(1) == []
    assert (await check_consistency(queue))["active"] == len(prios)


async def test_fifo_holds_at_the_top_priority(queue: Queue, driver: ScriptDriver) -> None:
    top = 2_097_152
    recs = await queue.add_bulk([{"name": "T", "payload": i, "opts": {"priority": top}}
                                 for i in range(20)])
    recs += [await queue.add("T", 20 + i, priority=top) for i in range(20)]
    below = await queue.add("T", "below", priority=top - 1)
    claims = await driver.claim(41)
    assert [c.id for c in claims] == [below.id] + [r.id for r in recs]


async def test_claim_batch_takes_the_first_n(queue: Queue, driver: ScriptDriver) -> None:
    recs = await queue.add_bulk([{"name": "T", "payload": i, "opts": {"priority": i % 3}}
                                 for i in range(12)])
    order = [r.id for r in sorted(recs, key=lambda r: (r.priority, r.payload))]
    claims = await driver.claim(5)
    assert [c.id for c in claims] == order[:5]
    assert len({c.token for c in claims}) == 5
    counts = await check_consistency(queue)
    assert counts["active"] == 5 and counts["waiting"] == 7


async def test_priority_kept_through_delay_retry_and_stall(queue: Queue,
                                                          driver: ScriptDriver) -> None:
    low = await queue.add("T", "low", priority=5)
    # a delayed high-priority job overtakes the waiting low one once it is due
    high = await queue.add("T", "high", priority=1, delay=30)
    assert high.state == "delayed"

    await promote_when_due(queue, driver)
    (c,) = await driver.claim(1)
    assert c.id == high.id and c.priority == 1

    # retry without delay: back to waiting with its priority
    assert await driver.retry_later(c, 0) == []
    assert (await queue.get_job(high.id)).state == "waiting"  # type: ignore[union-attr]
    (c,) = await driver.claim(1)
    assert c.id == high.id

    # retry with a delay: delayed, then promoted with its priority
    assert await driver.retry_later(c, 20) == []
    rec = await queue.get_job(high.id)
    assert rec is not None and rec.state == "delayed" and rec.delay_until is not None
    await promote_when_due(queue, driver)
    (c,) = await driver.claim(1)
    assert c.id == high.id and c.attempt == 3

    # stall recovery keeps priority too
    await driver.expire_locks(c.id)
    assert await driver.sweep() == ([high.id], [])
    (c,) = await driver.claim(1)
    assert c.id == high.id

    # a manual retry from failed keeps priority
    await driver.fail(c)
    rec = await queue.get_job(high.id)
    assert rec is not None and rec.state == "failed"
    await rec.retry()
    (c,) = await driver.claim(1)
    assert c.id == high.id and c.priority == 1
    (c2,) = await driver.claim(1)
    assert c2.id == low.id
    await check_consistency(queue)


# -- delayed ------------------------------------------------------------------------------


async def test_delayed_jobs_listed_soonest_first_and_promoted_when_due(
        queue: Queue, driver: ScriptDriver) -> None:
    late = await queue.add("T", "late", delay=60_000)
    soon = await queue.add("T", "soon", delay=150)
    mid = await queue.add("T", "mid", delay=30_000)
    delayed = await queue.get_delayed()
    assert [r.id for r in delayed] == [soon.id, mid.id, late.id]
    assert all(r.delay_until and r.delay_until > (r.timestamp or 0) for r in delayed)
    counts = await check_consistency(queue)
    assert counts["delayed"] == 3 and counts["waiting"] == 0

    t0 = time.time()
    assert await driver.claim(1) == []  # not due yet

    async def due() -> bool:
        await driver.promote_due()
        return (await queue.get_job_counts())["waiting"] == 1

    await wait_until(due, what="promotion")
    assert time.time() - t0 >= 0.1
    rec = await queue.get_job(soon.id)
    assert rec is not None and rec.state == "waiting" and rec.delay_until is None
    counts = await check_consistency(queue)
    assert counts["delayed"] == 2 and counts["waiting"] == 1


# -- claim fencing --------------------------------------------------------------------------


async def test_finish_with_wrong_token_is_rejected_and_writes_nothing(
        queue: Queue, driver: ScriptDriver) -> None:
    job = await queue.add("T", {"x": 1})
    (c,) = await driver.claim(1)
    before = await queue.redis.hgetall(queue.keys.job(job.id))
    events_before = len(await queue.events("-", count=10_000))
    for code in ("c", "f", "r"):
        lost = await driver.finish([driver.ack(c, code, '"stolen"', token=c.token + "x")])
        assert lost == [job.id]
        assert await queue.redis.hgetall(queue.keys.job(job.id)) == before
        counts = await check_consistency(queue)
        assert counts["active"] == 1 and counts["completed"] == counts["failed"] == 0
    assert len(await queue.events("-", count=10_000)) == events_before

    assert await driver.complete(c, '{"ok":true}') == []
    rec = await queue.get_job(job.id)
    assert rec is not None and rec.state == "completed" and rec.return_value == {"ok": True}
    # replaying an applied acknowledgement is a no-op (a retried write after a reconnect)
    assert await driver.fail(c) == []
    rec = await queue.get_job(job.id)
    assert rec is not None and rec.state == "completed" and rec.failed_reason is None
    counts = await check_consistency(queue)
    assert counts["completed"] == 1 and counts["failed"] == 0
    metrics = await queue.get_metrics(1)
    assert metrics[-1]["completed"] == 1 and metrics[-1]["failed"] == 0


async def test_finish_batch_mixes_outcomes(queue: Queue, driver: ScriptDriver) -> None:
    await queue.add_bulk([{"name": "T", "payload": i} for i in range(4)])
    a, b, c, d = await driver.claim(4)
    lost = await driver.finish([
        driver.ack(a, "c", "1"),
        driver.ack(b, "f", "ValueError: bad", "Traceback..."),
        driver.ack(c, "r", "flaky", "tb", 0),
        driver.ack(d, "r", "flaky", "tb", 10_000),
    ])
    assert lost == []
    states = {x.id: (await queue.get_job(x.id)).state for x in (a, b, c, d)}  # type: ignore[union-attr]
    assert states == {a.id: "completed", b.id: "failed", c.id: "waiting", d.id: "delayed"}
    failed = await queue.get_job(b.id)
    assert failed is not None
    assert failed.failed_reason == "ValueError: bad" and failed.stacktrace == "Traceback..."
    assert failed.finished_on is not None and failed.attempts_made == 1
    retried = await queue.get_job(c.id)
    assert retried is not None and retried.failed_reason == "flaky" and retried.attempts_made == 1
    counts = await check_consistency(queue)
    assert counts == {"waiting": 1, "active": 0, "delayed": 1, "completed": 1, "failed": 1,
                      "paused": 0}


async def test_finish_applies_keep_policies(queue: Queue, driver: ScriptDriver) -> None:
    ids = []
    for i in range(5):
        job = await queue.add("T", i)
        ids.append(job.id)
        (c,) = await driver.claim(1)
        await queue.redis.rpush(queue.keys.logs(c.id), "a line")
        await driver.complete(c, str(i), keep=(2, -1))
        await check_consistency(queue)
    kept = [r.id for r in await queue.get_completed()]
    assert kept == [ids[4], ids[3]]  # the newest two, newest first
    for old in ids[:3]:
        assert await queue.get_job(old) is None
        assert await queue.redis.exists(queue.keys.logs(old)) == 0

    # keep count 0 (removeOnComplete: true) deletes the record and its logs at once
    job = await queue.add("T", "gone")
    (c,) = await driver.claim(1)
    await queue.redis.rpush(queue.keys.logs(c.id), "a line")
    await driver.complete(c, "1", keep=(0, -1))
    assert await queue.get_job(job.id) is None
    assert await queue.redis.exists(queue.keys.logs(job.id)) == 0
    # failed with keep count 1
    for _ in range(3):
        await queue.add("T", "f")
        (c,) = await driver.claim(1)
        await driver.fail(c, keep=(1, -1))
    counts = await check_consistency(queue)
    assert counts["failed"] == 1 and counts["completed"] == 2


async def test_finish_age_policy_removes_older_jobs(queue: Queue, driver: ScriptDriver) -> None:
    old = await queue.add("T", "old")
    (c,) = await driver.claim(1)
    await driver.complete(c, keep=(-1, 150))
    t_done = time.monotonic()
    await wait_until(lambda: time.monotonic() - t_done > 0.3, what="the first job to age")
    new = await queue.add("T", "new")
    (c,) = await driver.claim(1)
    await driver.complete(c, keep=(-1, 150))
    assert await queue.get_job(old.id) is None
    assert [r.id for r in await queue.get_completed()] == [new.id]
    await check_consistency(queue)


# -- locks, stalls, requeue --------------------------------------------------------------------


async def test_extend_locks_renews_and_reports_lost(queue: Queue, driver: ScriptDriver) -> None:
    await queue.add_bulk([{"name": "T", "payload": i} for i in range(2)])
    a, b = await driver.claim(2, lock_ms=5_000)
    score_before = await queue.redis.zscore(queue.keys.active, b.id)
    await driver.expire_locks(a.id)
    assert await driver.sweep() == ([a.id], [])
    driver.worker.lock_ms = 60_000
    assert await driver.extend_locks() == [a.id]
    assert a.lost and not b.lost
    assert await queue.redis.zscore(queue.keys.active, b.id) > score_before
    # a removed job is lost too (once it is no longer active)
    await driver.complete(b)
    await queue.remove_job(b.id)
    driver.runner.active[b.id] = b
    assert sorted(await driver.extend_locks()) == sorted([a.id, b.id])
    await check_consistency(queue)


async def test_stalled_sweep_recovers_then_fails(queue: Queue, driver: ScriptDriver) -> None:
    job = await queue.add("T", {"x": 1}, priority=2)
    (c1,) = await driver.claim(1, lock_ms=50)

    async def swept() -> tuple[list[str], list[str]]:
        recovered, failed = await driver.sweep(max_stalls=1)
        return (recovered, failed) if recovered or failed else ()  # type: ignore[return-value]

    # the lock expires by itself (nobody renews it)
    assert await wait_until(swept, what="the lock to expire") == ([job.id], [])
    rec = await queue.get_job(job.id)
    assert rec is not None and rec.state == "waiting" and rec.stalled_count == 1
    # a stall does not use up an attempt
    assert rec.attempts_made == 0
    counts = await check_consistency(queue)
    assert counts["waiting"] == 1 and counts["active"] == 0
    stalled_events = [f for _e, f in await queue.events("-", 1000) if f["ev"] == "stalled"]
    assert stalled_events and job.id in stalled_events[0]["ids"]

    (c2,) = await driver.claim(1, lock_ms=50)
    assert c2.stalled_count == 1 and c2.attempt == 1 and c2.token != c1.token
    # the first worker comes back: its result is refused
    assert await driver.complete(c1, '"stale"') == [c1.id]
    assert (await queue.get_job(job.id)).state == "active"  # type: ignore[union-attr]

    assert await wait_until(swept, what="the second stall") == ([], [job.id])
    rec = await queue.get_job(job.id)
    assert rec is not None and rec.state == "failed"
    assert rec.failed_reason is not None and "stalled" in rec.failed_reason
    assert rec.stalled_count == 2 and rec.finished_on is not None
    assert await driver.complete(c2, '"late"') == [c2.id]
    counts = await check_consistency(queue)
    assert counts["failed"] == 1 and counts["active"] == 0
    assert (await queue.get_metrics(1))[-1]["failed"] == 1
    # a retry starts the job afresh: no stalls, no attempts
    await rec.retry()
    assert rec.stalled_count == 0 and rec.attempts_made == 0 and rec.state == "waiting"
    fresh = await rec.refresh()
    assert fresh.stalled_count == 0 and fresh.attempts_made == 0 and fresh.failed_reason is None


async def test_stalled_with_max_stalls_zero_fails_at_once(queue: Queue,
                                                          driver: ScriptDriver) -> None:
    job = await queue.add("T")
    await driver.claim(1)
    await driver.expire_locks(job.id)
    assert await driver.sweep(max_stalls=0) == ([], [job.id])
    rec = await queue.get_job(job.id)
    assert rec is not None and "stalled" in (rec.failed_reason or "")
    await check_consistency(queue)


async def test_stalled_sweep_guard_lets_one_sweeper_run(queue: Queue,
                                                        driver: ScriptDriver) -> None:
    job = await queue.add("T")
    await driver.claim(1)
    assert await driver.runner.sweep_stalled(1, 60_000) == ([], [])  # nothing expired; guard set
    await driver.expire_locks(job.id)
    assert await driver.runner.sweep_stalled(1, 60_000) == ([], [])  # guard held
    assert await driver.sweep() == ([job.id], [])  # guard_ms 0 bypasses it


async def test_stalled_recovery_lands_in_paused_when_paused(queue: Queue,
                                                            driver: ScriptDriver) -> None:
    job = await queue.add("T")
    await driver.claim(1)
    await queue.pause()
    await driver.expire_locks(job.id)
    assert await driver.sweep() == ([job.id], [])
    assert (await queue.get_job(job.id)).state == "paused"  # type: ignore[union-attr]
    counts = await check_consistency(queue)
    assert counts["paused"] == 1


async def test_requeue_puts_jobs_back_at_the_front(queue: Queue, driver: ScriptDriver) -> None:
    recs = await queue.add_bulk([{"name": "T", "payload": i} for i in range(4)])
    a, b = await driver.claim(2)
    assert a.attempt == 1
    assert await driver.requeue([a, b]) == 2
    waiting = await queue.get_waiting()
    assert {r.id for r in waiting[:2]} == {a.id, b.id}
    assert [r.id for r in waiting[2:]] == [recs[2].id, recs[3].id]
    for r in waiting[:2]:
        assert r.attempts_made == 0 and r.state == "waiting"
    counts = await check_consistency(queue)
    assert counts["waiting"] == 4 and counts["active"] == 0
    # the old claim is fenced off; requeue again is a no-op
    assert await driver.complete(a) == [a.id]
    assert await driver.requeue([a]) == 0
    # while paused, requeued jobs go to paused
    (c,) = await driver.claim(1)
    await queue.pause()
    assert await driver.requeue([c]) == 1
    assert (await queue.get_job(c.id)).state == "paused"  # type: ignore[union-attr]
    counts = await check_consistency(queue)
    assert counts["paused"] == 4


# -- pause / resume ----------------------------------------------------------------------------


async def test_pause_and_resume_move_jobs_and_keep_order(queue: Queue,
                                                        driver: ScriptDriver) -> None:
    await queue.add_bulk([{"name": "T", "payload": i, "opts": {"priority": (i * 7) % 4}}
                          for i in range(10)])
    order = [r.id for r in await queue.get_waiting()]
    active = await queue.add("T", "active", priority=4)  # the ones below run after the 10
    await queue.redis.zadd(queue.keys.wait, {active.id: -1})  # make it first in line
    (running,) = await driver.claim(1)
    assert running.id == active.id

    await queue.pause()
    assert await queue.is_paused()
    assert [r.id for r in await queue.get_paused()] == order
    counts = await check_consistency(queue)
    assert counts["paused"] == 10 and counts["waiting"] == 0 and counts["active"] == 1
    assert await driver.claim(5) == []

    # what becomes ready while paused lands in paused, behind the others
    added = await queue.add("T", "while paused", priority=4)
    assert (await queue.get_job(added.id)).state == "paused"  # type: ignore[union-attr]
    await driver.complete(running)  # active jobs finish while paused
    assert (await queue.get_job(running.id)).state == "completed"  # type: ignore[union-attr]
    rec = await queue.get_job(running.id)
    assert rec is not None
    await rec.retry()
    assert (await queue.get_job(running.id)).state == "paused"  # type: ignore[union-attr]
    due = await queue.add("T", "due", delay=20, priority=4)
    await promote_when_due(queue, driver)
    paused_order = [r.id for r in await queue.get_paused()]
    assert paused_order == [*order, added.id, running.id, due.id]
    await check_consistency(queue)

    await queue.resume()
    assert not await queue.is_paused()
    assert [r.id for r in await queue.get_waiting()] == paused_order
    counts = await check_consistency(queue)
    assert counts["waiting"] == 13 and counts["paused"] == 0
    claims = await driver.claim(13)
    assert [c.id for c in claims] == paused_order
    evs = [f["ev"] for _e, f in await queue.events("-", 1000)]
    assert "paused" in evs and "resumed" in evs


async def test_pause_is_per_queue(project: Lark) -> None:
    default, other = project.queue("default"), project.queue("other")
    await default.pause()
    await other.add("T")
    assert not await other.is_paused()
    assert (await other.get_job_counts())["waiting"] == 1


# -- remove / promote / clean / retry -----------------------------------------------------------


async def test_remove_in_each_state_but_active(queue: Queue, driver: ScriptDriver) -> None:
    waiting = await queue.add("T", "w")
    delayed = await queue.add("T", "d", delay=60_000)
    await queue.add("T", "c")
    await queue.add("T", "f")
    await queue.add("T", "a")
    await queue.redis.zadd(queue.keys.wait, {waiting.id: 1 << 40})  # keep it waiting
    c, f, a = await driver.claim(3)
    await driver.complete(c)
    await driver.fail(f)
    for job_id in (waiting.id, delayed.id, c.id, f.id, a.id):
        await queue.redis.rpush(queue.keys.logs(job_id), "line")
    with pytest.raises(JobNotInState, match="active"):
        await queue.remove_job(a.id)
    for job_id in (waiting.id, delayed.id, c.id, f.id):
        rec = await queue.get_job(job_id)
        assert rec is not None
        await rec.remove()
        assert await queue.get_job(job_id) is None
        assert await queue.redis.exists(queue.keys.logs(job_id)) == 0
        await check_consistency(queue)
    with pytest.raises(JobNotFound):
        await queue.remove_job(waiting.id)
    counts = await check_consistency(queue)
    assert counts["active"] == 1 and sum(counts.values()) == 1
    assert await queue.redis.exists(queue.keys.logs(a.id)) == 1


async def test_promote(queue: Queue, driver: ScriptDriver) -> None:
    first = await queue.add("T", "first", priority=1)
    delayed = await queue.add("T", "delayed", delay=60_000, priority=1)
    rec = await queue.get_job(delayed.id)
    assert rec is not None and rec.state == "delayed"
    await rec.promote()
    assert rec.delay_until is None
    fresh = await queue.get_job(delayed.id)
    assert fresh is not None and fresh.state == "waiting" and fresh.delay_until is None
    assert [r.id for r in await queue.get_waiting()] == [first.id, delayed.id]
    counts = await check_consistency(queue)
    assert counts["waiting"] == 2 and counts["delayed"] == 0
    with pytest.raises(JobNotInState):
        await queue.promote_job(first.id)
    with pytest.raises(JobNotFound):
        await queue.promote_job("nope")
    await queue.pause()
    later = await queue.add("T", "later", delay=60_000)
    await queue.promote_job(later.id)
    assert (await queue.get_job(later.id)).state == "paused"  # type: ignore[union-attr]
    await check_consistency(queue)


async def test_clean_with_grace(queue: Queue, driver: ScriptDriver) -> None:
    old = [await queue.add("T", i) for i in range(3)]
    for _ in old:
        (c,) = await driver.claim(1)
        await queue.redis.rpush(queue.keys.logs(c.id), "line")
        await driver.complete(c)
    t_done = time.monotonic()
    await wait_until(lambda: time.monotonic() - t_done > 0.25, what="the jobs to age")
    new = await queue.add("T", "new")
    (c,) = await driver.claim(1)
    await driver.complete(c)
    failed = await queue.add("T", "failed")
    (c,) = await driver.claim(1)
    await driver.fail(c)

    assert await queue.clean("completed", grace_ms=60_000) == 0
    assert await queue.clean("completed", grace_ms=150) == 3
    assert [r.id for r in await queue.get_completed()] == [new.id]
    for r in old:
        assert await queue.get_job(r.id) is None
        assert await queue.redis.exists(queue.keys.logs(r.id)) == 0
    await check_consistency(queue)
    assert await queue.clean("failed") == 1
    assert await queue.get_job(failed.id) is None
    assert await queue.clean("completed", grace_ms=0) == 1
    counts = await check_consistency(queue)
    assert sum(counts.values()) == 0
    with pytest.raises(ValueError):
        await queue.clean("waiting")
    with pytest.raises(ValueError):
        await queue.clean("failed", grace_ms=-1)


async def test_clean_in_batches(queue: Queue, driver: ScriptDriver) -> None:
    await queue.add_bulk([{"name": "T", "payload": i} for i in range(25)])
    claims = await driver.claim(25)
    await driver.finish([driver.ack(c, "c") for c in claims])
    assert await queue.clean("completed", batch=10) == 25
    assert sum((await check_consistency(queue)).values()) == 0


async def test_retry_failed_in_batches(queue: Queue, driver: ScriptDriver) -> None:
    recs = await queue.add_bulk([{"name": "T", "payload": i, "opts": {"priority": i % 2}}
                                 for i in range(25)])
    claims = await driver.claim(25)
    await driver.finish([driver.ack(c, "f", "bad", "tb") for c in claims])
    await queue.redis.rpush(queue.keys.logs(recs[0].id), "an old line")
    counts = await check_consistency(queue)
    assert counts["failed"] == 25
    # one completed job is not touched by retry_failed
    done = await queue.add("T", "done")
    (c,) = await driver.claim(1)
    await driver.complete(c)

    assert await queue.retry_failed(batch=10) == 25
    counts = await check_consistency(queue)
    assert counts["waiting"] == 25 and counts["failed"] == 0 and counts["completed"] == 1
    for r in await queue.get_waiting():
        assert r.attempts_made == 0 and r.failed_reason is None and r.stacktrace is None
        assert r.finished_on is None and r.processed_on is None
    logs = await queue.get_job_logs(recs[0].id)
    assert logs[0] == "an old line" and logs[-1].endswith(" INFO retried")
    assert await queue.retry_failed() == 0
    # retried jobs run again in priority order, FIFO by when they were retried
    waiting = await queue.get_waiting()
    assert [r.priority for r in waiting] == sorted(r.priority for r in waiting)
    retried = [e for _e, e in await queue.events("-", 1000) if e["ev"] == "retried"]
    assert sum(len(e["ids"].split(",")) for e in retried) == 25
    assert (await queue.get_job(done.id)).state == "completed"  # type: ignore[union-attr]


async def test_retry_one_from_completed_and_wrong_states(queue: Queue,
                                                         driver: ScriptDriver) -> None:
    job = await queue.add("T", {"keep": "me"}, priority=4)
    (c,) = await driver.claim(1)
    await driver.complete(c, '"result"')
    rec = await queue.get_job(job.id)
    assert rec is not None and rec.return_value == "result"
    await queue.retry_job(job.id)
    rec = await queue.get_job(job.id)
    assert rec is not None and rec.state == "waiting" and rec.return_value is None
    assert rec.payload == {"keep": "me"} and rec.priority == 4
    with pytest.raises(JobNotInState):
        await queue.retry_job(job.id)
    with pytest.raises(JobNotFound):
        await queue.retry_job("missing")
    (c,) = await driver.claim(1)
    with pytest.raises(JobNotInState):
        await queue.retry_job(job.id)
    await check_consistency(queue)


# -- progress -----------------------------------------------------------------------------------


async def test_progress_is_fenced_by_token(queue: Queue, driver: ScriptDriver) -> None:
    from lark_core import scripts
    from lark_core.scripts import Call

    job = await queue.add("T")
    (c,) = await driver.claim(1)

    async def progress(token: str, value: str) -> int:
        k = queue.keys
        return int(await scripts.run(queue.redis, Call(
            scripts.script("progress"), [k.job(job.id), k.events], [token, value, job.id])))

    assert await progress(c.token, "50") == 1
    assert (await queue.get_job(job.id)).progress == 50  # type: ignore[union-attr]
    assert await progress("other", "99") == 0
    assert (await queue.get_job(job.id)).progress == 50  # type: ignore[union-attr]


# -- counts under a mixed workload ----------------------------------------------------------------


async def test_counts_stay_exact_under_a_mixed_workload(queue: Queue,
                                                       driver: ScriptDriver) -> None:
    await queue.add_bulk([{"name": "T", "payload": i, "opts": {"priority": i % 5,
                                                               "delay": 0 if i % 4 else 50}}
                          for i in range(60)])
    await check_consistency(queue)
    for round_ in range(8):
        claims = await driver.claim(6, lock_ms=60_000)
        acks = []
        for i, c in enumerate(claims):
            kind = (i + round_) % 5
            if kind == 0:
                acks.append(driver.ack(c, "c", keep=(3, -1)))
            elif kind == 1:
                acks.append(driver.ack(c, "f"))
            elif kind == 2:
                acks.append(driver.ack(c, "r", delay_ms=20))
            elif kind == 3:
                await driver.expire_locks(c.id)
            else:
                acks.append(driver.ack(c, "r"))
        if acks:
            await driver.finish(acks)
        await driver.sweep(max_stalls=1)
        await check_consistency(queue)
        if round_ == 3:
            await queue.pause()
        if round_ == 5:
            await queue.resume()
        if round_ == 6:
            await queue.retry_failed()
        failed = await queue.get_failed(0, 0)
        if failed and round_ % 2:
            await failed[0].remove()
        await check_consistency(queue)
    await driver.promote_due()
    await check_consistency(queue)


# -- every key a script touches shares the queue's hash slot -------------------------------------


_MONITOR_LINE = re.compile(r"^\d+\.\d+ \[(\d+) ([^\]]+)\] (.*)$")
_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", '"': '"', "\\": "\\"}


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "x":
                out.append(chr(int(text[i + 2:i + 4], 16)))
                i += 4
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _parse_monitor(text: str) -> list[tuple[str, list[str]]]:
    """(source, args) per MONITOR line; source is 'lua' for commands run by a script."""
    out = []
    for line in text.splitlines():
        m = _MONITOR_LINE.match(line)
        if m:
            out.append((m.group(2), [_unescape(a) for a in _ARG.findall(m.group(3))]))
    return out


def _keys_of(client: redis.Redis, args: list[str]) -> list[str]:
    try:
        return list(client.command_getkeys(*args))
    except redis.ResponseError:
        return []  # a command without keys (TIME, ...)


def _tag(key: str) -> str | None:
    m = re.match(r"^lark:\{([^}]+)\}:", key)
    return m.group(1) if m else None


async def _workload(project: Lark) -> None:
    """Touch every script of two queues."""
    for name in ("default", "other"):
        queue = project.queue(name)
        driver = ScriptDriver(project, name)
        try:
            await queue.add_bulk([{"name": "T", "payload": i} for i in range(6)])
            delayed = await queue.add("T", "d", delay=60_000)
            await queue.add("T", "soon", delay=1)
            await queue.promote_job(delayed.id)
            await promote_when_due(queue, driver)
            claims = await driver.claim(6)
            await driver.finish([driver.ack(claims[0], "c", keep=(1, -1)),
                                 driver.ack(claims[1], "c", keep=(0, -1)),
                                 driver.ack(claims[2], "f", keep=(5, 1000)),
                                 driver.ack(claims[3], "r", delay_ms=10),
                                 driver.ack(claims[4], "r")])
            await driver.extend_locks()
            await driver.expire_locks(claims[5].id)
            await driver.sweep()
            more = await driver.claim(2)
            await driver.requeue(more)
            more = await driver.claim(1)
            await driver.expire_locks(more[0].id)
            await driver.sweep(max_stalls=0)
            await queue.pause()
            await queue.resume()
            await queue.retry_failed()
            waiting = await queue.get_waiting()
            await waiting[0].remove()
            claims = await driver.claim(2)
            await driver.finish([driver.ack(claims[0], "c"), driver.ack(claims[1], "f")])
            failed = await queue.get_failed()
            await failed[0].retry()
            await queue.clean("completed")
            await queue.clean("failed")
            await queue.get_job_counts()
        finally:
            driver.close()


_TICK = """
from lark_core import Job


class Tick(Job):
    queue = "other"

    async def handle(self, payload):
        self.info("tick", payload)
        await self.update_progress(payload)
        return payload
"""


async def _worker_workload(project: Lark) -> None:
    """A real worker's pipelines: claim, finish, extend_locks, stalled, progress, logs."""
    from tests.helpers import running_worker

    other = project.queue("other")
    async with running_worker(project, lock_ms=200, stalled_interval_ms=100):
        await project.queue("default").add("Unknown", {})
        recs = await other.add_bulk([{"name": "Tick", "payload": i} for i in range(5)])

        async def all_done() -> bool:
            counts = await other.get_job_counts()
            return counts["completed"] == len(recs) and counts["active"] == 0

        await wait_until(all_done, what="the worker to finish the jobs")


async def test_every_key_a_script_touches_shares_the_queue_slot(
        tmp_path: Path, fresh_redis: RedisProc) -> None:
    project = make_project(tmp_path, fresh_redis.url, {"tick.py": _TICK},
                           queues=["default", "other"])
    out = tmp_path / "monitor.txt"
    with out.open("w") as fh:
        mon = subprocess.Popen(["redis-cli", "-p", str(fresh_redis.port), "monitor"], stdout=fh,
                               stderr=subprocess.DEVNULL)
    sync = fresh_redis.client()
    try:
        await wait_until(lambda: out.read_text().startswith("OK"), what="MONITOR to start")
        await _workload(project)
        await _worker_workload(project)
        sync.echo("lark-monitor-end")
        await wait_until(lambda: "lark-monitor-end" in out.read_text(), what="MONITOR output")
    finally:
        mon.terminate()
        mon.wait(10)
        await project.close()

    try:
        _check_monitored_keys(sync, out.read_text())
        _check_keyspace(sync)
    finally:
        sync.close()


def _check_monitored_keys(sync: redis.Redis, text: str) -> None:
    commands = _parse_monitor(text)
    script_calls = 0
    current: tuple[str, int] | None = None  # (queue tag, slot) of the script running
    for source, args in commands:
        if not args:
            continue
        name = args[0].upper()
        if source != "lua":
            current = None
            if name in ("EVALSHA", "EVAL"):
                script_calls += 1
                declared = _keys_of(sync, args)
                tags = {_tag(k) for k in declared}
                assert len(tags) == 1 and None not in tags, f"script keys span tags: {declared}"
                slots = {key_slot(k.encode()) for k in declared}
                assert len(slots) == 1, declared
                current = (tags.pop(), slots.pop())  # type: ignore[arg-type]
            continue
        assert current is not None, f"a script command with no script call before it: {args}"
        for key in _keys_of(sync, args):
            assert _tag(key) == current[0], f"{name} touched {key} from a {current[0]} script"
            assert key_slot(key.encode()) == current[1], key
    assert script_calls > 40


def _check_keyspace(sync: redis.Redis) -> None:
    """Every key in the database is a queue key with its tag, or the worker registry."""
    slots: dict[str, set[int]] = {}
    for key in sync.scan_iter(count=1000):
        if key == "lark:workers" or key.startswith("lark:worker:"):
            continue
        tag = _tag(key)
        assert tag in ("default", "other"), key
        slots.setdefault(tag, set()).add(key_slot(key.encode()))
    assert set(slots) == {"default", "other"}
    assert all(len(s) == 1 for s in slots.values()), slots

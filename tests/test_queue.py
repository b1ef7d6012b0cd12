"""The Queue API (producer and inspection side) against a real redis-server."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from lark_core import Job, configure_queue, queues
from lark_core.config import parse_config
from lark_core.errors import (
    AmbiguousJobId,
    JobNotFound,
    JobNotInState,
    LarkError,
    PayloadTooLarge,
    SerializationError,
    UnknownQueue,
)
from lark_core.project import Lark, default_project, set_default_project
from lark_core.queue import Queue
from lark_core.record import STATES, JobRecord
from tests.conftest import write_project
from tests.helpers import ScriptDriver, check_consistency, make_project, wait_until

QUEUES = ["default", "high-priority", "emails", "reports"]
ISO_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [A-Z]+ .*$")


@pytest.fixture
async def project(tmp_path: Path, redis_url: str) -> AsyncIterator[Lark]:
    p = make_project(tmp_path, redis_url, queues=QUEUES)
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


async def nothing_stored(queue: Queue) -> bool:
    counts = await queue.get_job_counts()
    keys = [k async for k in queue.redis.scan_iter(match=queue.keys.job("*"))]
    return sum(counts.values()) == 0 and not keys


# -- add / get_job / JobRecord ------------------------------------------------------------------


async def test_add_and_get_job_record_fields(queue: Queue) -> None:
    before = int(time.time() * 1000)
    rec = await queue.add("SendWelcomeEmail", {"to": "a@example.com"}, priority=7, attempts=3,
                          backoff={"type": "fixed", "delay": 500}, remove_on_complete=10,
                          removeOnFail={"age": 60, "count": 5}, timeout=30)
    assert rec.state == "waiting" and rec.queue == "default" and rec.priority == 7
    got = await queue.get_job(rec.id)
    assert got is not None
    assert got.id == rec.id and got.name == "SendWelcomeEmail" and got.queue == "default"
    assert got.payload == {"to": "a@example.com"}
    assert got.state == "waiting" and got.priority == 7
    assert got.attempts_made == 0 and got.max_attempts == 3 and got.stalled_count == 0
    assert got.failed_reason is None and got.stacktrace is None
    assert got.return_value is None and got.progress is None
    assert got.timestamp is not None and before - 1000 <= got.timestamp <= time.time() * 1000 + 1000
    assert got.processed_on is None and got.finished_on is None and got.delay_until is None
    assert got.options == {"attempts": 3, "backoff": {"type": "fixed", "delay": 500},
                           "remove_on_complete": 10, "remove_on_fail": {"age": 60, "count": 5},
                           "timeout": 30}
    assert await queue.get_job("no-such-id") is None


async def test_payload_defaults_and_any_json_value(queue: Queue) -> None:
    assert (await queue.add("T")).payload == {}
    for value in ([1, "two", None], "text", 3.5, 0, True, {"nested": {"deep": [1, {"x": None}]}},
                  "ünïcødé ✓"):
        rec = await queue.add("T", value)
        got = await queue.get_job(rec.id)
        assert got is not None and got.payload == value


async def test_to_dict_json_shape(queue: Queue, driver: ScriptDriver) -> None:
    rec = await queue.add("T", {"a": [1, 2]}, priority=2)
    (c,) = await driver.claim(1)
    await driver.complete(c, '{"sent": true}')
    got = await queue.get_job(rec.id)
    assert got is not None
    data = got.to_dict()
    assert set(data) >= {"id", "name", "queue", "payload", "state", "priority", "attempts_made",
                         "max_attempts", "stalled_count", "failed_reason", "stacktrace",
                         "return_value", "progress", "timestamp", "processed_on", "finished_on"}
    assert all(k == k.lower() and not k.startswith("_") for k in data)
    assert json.loads(json.dumps(data)) == data  # plain JSON values throughout
    assert data["payload"] == {"a": [1, 2]} and data["return_value"] == {"sent": True}
    assert data["state"] == "completed" and data["attempts_made"] == 1
    for key in ("timestamp", "processed_on", "finished_on"):
        assert isinstance(data[key], int) and data[key] > 1_600_000_000_000  # epoch ms
    assert data["timestamp"] <= data["processed_on"] <= data["finished_on"]


async def test_add_bulk_is_one_script_call(queue: Queue) -> None:
    recs = await queue.add_bulk([
        {"name": "A", "payload": {"i": 1}},
        {"name": "B", "payload": {"i": 2}, "opts": {"priority": 1}},
        {"name": "C", "opts": {"delay": 60_000}},
    ])
    assert [r.name for r in recs] == ["A", "B", "C"]
    assert [r.state for r in recs] == ["waiting", "waiting", "delayed"]
    added = [f for _e, f in await queue.events("-") if f["ev"] == "added"]
    assert len(added) == 1 and added[0]["ids"].split(",") == [r.id for r in recs]
    counts = await check_consistency(queue)
    assert counts["waiting"] == 2 and counts["delayed"] == 1
    assert await queue.add_bulk([]) == []
    with pytest.raises(ValueError):
        await queue.add_bulk([{"payload": 1}])


# -- lists ---------------------------------------------------------------------------------------


async def test_get_jobs_order_per_state(queue: Queue, driver: ScriptDriver) -> None:
    w = [await queue.add("T", i, priority=p) for i, p in enumerate([2, 0, 1, 0])]
    assert [r.payload for r in await queue.get_waiting()] == [1, 3, 2, 0]
    assert [r.payload for r in await queue.get_jobs("waiting", 1, 2)] == [3, 2]
    assert [r.payload for r in await queue.get_waiting(0, 0)] == [1]

    d = [await queue.add("T", f"d{ms}", delay=ms) for ms in (50_000, 10_000, 30_000)]
    assert [r.id for r in await queue.get_delayed()] == [d[1].id, d[2].id, d[0].id]

    finished = []
    for i in range(4):
        (c,) = await driver.claim(1)
        finished.append(c.id)
        if i % 2:
            await driver.fail(c, f"reason {i}")
        else:
            await driver.complete(c, str(i))
        t = time.monotonic()
        await wait_until(lambda t=t: time.monotonic() - t > 0.003)  # distinct finish times
    assert [r.id for r in await queue.get_completed()] == [finished[2], finished[0]]
    assert [r.id for r in await queue.get_failed()] == [finished[3], finished[1]]
    assert [r.failed_reason for r in await queue.get_failed(0, 0)] == ["reason 3"]
    assert {r.id for r in w} == set(finished)
    for state in STATES:
        assert isinstance(await queue.get_jobs(state), list)
    with pytest.raises(ValueError, match="state"):
        await queue.get_jobs("done")


async def test_active_and_paused_lists(queue: Queue, driver: ScriptDriver) -> None:
    a = await queue.add("T", "a")
    b = await queue.add("T", "b")
    (c,) = await driver.claim(1)
    active = await queue.get_active()
    assert [r.id for r in active] == [a.id] and active[0].processed_on is not None
    assert c.id == a.id
    await queue.pause()
    assert await queue.is_paused()
    assert [r.id for r in await queue.get_paused()] == [b.id]
    later = await queue.add("T", "later")
    assert later.state == "paused"
    assert (await queue.get_job(later.id)).state == "paused"  # type: ignore[union-attr]
    bulk = await queue.add_bulk([{"name": "T"}, {"name": "T", "opts": {"delay": 60_000}}])
    assert [r.state for r in bulk] == ["paused", "delayed"]
    await bulk[0].remove()
    await queue.resume()
    assert not await queue.is_paused()
    assert [r.id for r in await queue.get_waiting()] == [b.id, later.id]


async def test_get_job_counts_keys(project: Lark, queue: Queue) -> None:
    counts = await queue.get_job_counts()
    assert counts == {"waiting": 0, "active": 0, "delayed": 0, "completed": 0, "failed": 0,
                      "paused": 0}
    await project.queue("emails").add("T")
    everything = await project.get_all_counts()
    assert set(everything) == set(QUEUES)
    assert everything["emails"]["waiting"] == 1 and everything["emails"]["is_paused"] is False


# -- bad input at the producer ---------------------------------------------------------------------


async def test_non_json_payload_is_a_type_error_and_nothing_is_enqueued(queue: Queue) -> None:
    for bad in ({"when": object()}, {1, 2}, {"b": b"bytes"}, {"f": math.nan}, [math.inf],
                {"x": -math.inf}):
        with pytest.raises(TypeError) as info:
            await queue.add("T", bad)
        assert isinstance(info.value, SerializationError) and isinstance(info.value, LarkError)
    with pytest.raises(SerializationError, match="payload"):
        await queue.add("T", {"nan": float("nan")})
    with pytest.raises(TypeError):
        await queue.add_bulk([{"name": "T", "payload": 1}, {"name": "T", "payload": object()}])
    assert await nothing_stored(queue)


async def test_payload_over_the_limit(queue: Queue, redis_url: str) -> None:
    big = "x" * (1024 * 1024)
    with pytest.raises(PayloadTooLarge) as info:
        await queue.add("T", big)
    assert isinstance(info.value, ValueError) and "max_payload_bytes" in str(info.value)
    assert await nothing_stored(queue)
    config = parse_config({"jobs": {"queues": ["small"], "max_payload_bytes": 100},
                           "redis": {"url": redis_url}}, None)
    small = Lark(config).queue("small")
    try:
        assert (await small.add("T", "x" * 98)).payload == "x" * 98  # 100 bytes encoded
        with pytest.raises(PayloadTooLarge, match="101 bytes"):
            await small.add("T", "x" * 99)
        with pytest.raises(PayloadTooLarge):
            await small.add_bulk([{"name": "T", "payload": "x" * 200}])
        assert (await small.get_job_counts())["waiting"] == 1
    finally:
        await small.close()


@pytest.mark.parametrize("opts", [
    {"priority": -1}, {"priority": 2_097_153}, {"priority": 1.5}, {"priority": "high"},
    {"delay": -5}, {"delay": "soon"}, {"attempts": 0}, {"attempts": "five"}, {"attempts": -2},
    {"backoff": {"type": "linear", "delay": 10}}, {"backoff": {"type": "fixed"}},
    {"backoff": -1}, {"remove_on_complete": -1}, {"removeOnFail": {"age": -3}},
    {"remove_on_fail": "sometimes"}, {"job_id": ""}, {"job_id": "has space"}, {"job_id": 5},
    {"timeout": 0}, {"timeout": -1}, {"timeout": "1s"},
])
async def test_bad_option_values_are_value_errors(queue: Queue, opts: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        await queue.add("T", {}, **opts)
    assert await nothing_stored(queue)


async def test_unknown_option_and_bad_name(queue: Queue) -> None:
    with pytest.raises(TypeError, match="colour"):
        await queue.add("T", {}, colour="red")
    with pytest.raises(ValueError):
        await queue.add("", {})
    assert await nothing_stored(queue)


async def test_option_edges_accepted(queue: Queue) -> None:
    rec = await queue.add("T", {}, priority=2_097_152, delay=0, attempts=1,
                          backoff={"type": "exponential", "delay": 0}, remove_on_complete=True,
                          remove_on_fail=0, jobId="camel-id")
    assert rec.id == "camel-id" and rec.priority == 2_097_152 and rec.state == "waiting"


async def test_job_id_is_free_again_once_the_record_is_gone(queue: Queue,
                                                            driver: ScriptDriver) -> None:
    first = await queue.add("T", {"v": 1}, job_id="reuse")
    await first.remove()
    second = await queue.add("T", {"v": 2}, job_id="reuse")
    assert second.payload == {"v": 2}
    (c,) = await driver.claim(1)
    await driver.complete(c, keep=(0, -1))  # removeOnComplete: true
    third = await queue.add("T", {"v": 3}, job_id="reuse")
    assert third.payload == {"v": 3} and third.state == "waiting"
    assert (await check_consistency(queue))["waiting"] == 1


async def test_unknown_queue(project: Lark) -> None:
    with pytest.raises(UnknownQueue) as info:
        project.queue("nope")
    assert isinstance(info.value, KeyError) and "nope" in str(info.value)
    assert "default" in str(info.value)


# -- the queues proxy, configure_queue, dispatch ---------------------------------------------------


@pytest.fixture
def env_project(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    cfg = write_project(tmp_path, redis_url, {}, QUEUES)
    monkeypatch.setenv("LARK_CONFIG", str(cfg))
    set_default_project(None)
    yield cfg
    set_default_project(None)


async def test_queues_proxy_uses_lark_config(env_project: Path) -> None:
    try:
        q = queues.default
        assert isinstance(q, Queue) and q.name == "default"
        assert queues["high-priority"].name == "high-priority"
        assert queues.emails is queues["emails"]
        assert "reports" in queues and "nope" not in queues
        assert list(queues) == QUEUES
        with pytest.raises(AttributeError, match="nope"):
            _ = queues.nope
        with pytest.raises(UnknownQueue):
            queues["nope"]
        rec = await queues.reports.add("Report", {"month": 5})
        assert (await queues["reports"].get_job(rec.id)).payload == {"month": 5}  # type: ignore[union-attr]
        assert default_project().config.source is not None
    finally:
        await default_project().close()


async def test_configure_queue(redis_url: str) -> None:
    emails = configure_queue("emails", redis={"url": redis_url},
                             default_job_options={"removeOnComplete": True, "attempts": 3,
                                                  "backoff": {"type": "exponential",
                                                              "delay": 1000}})
    try:
        assert emails.name == "emails"
        opts = emails.config.jobs.options
        assert opts.attempts == 3 and opts.backoff is not None
        assert opts.backoff.type == "exponential" and opts.backoff.delay_ms == 1000
        rec = await emails.add("SendWelcomeEmail", {"to": "x"})
        got = await emails.get_job(rec.id)
        assert got is not None and got.max_attempts == 3 and got.queue == "emails"
    finally:
        await emails.close()
    with pytest.raises(LarkError):
        configure_queue("bad:name", redis={"url": redis_url})


class SendWelcomeEmail(Job):
    queue = "emails"
    attempts = 3

    async def handle(self, payload: Any) -> Any:
        return {"sent": True}


class Unconfigured(Job):
    queue = "nowhere"

    async def handle(self, payload: Any) -> Any:
        return None


async def test_dispatch_from_a_job_class(env_project: Path) -> None:
    try:
        rec = await SendWelcomeEmail.dispatch({"to": "a@b.c"}, priority=3, job_id="welcome-1")
        assert isinstance(rec, JobRecord) and rec.queue == "emails" and rec.priority == 3
        assert rec.name == "SendWelcomeEmail"
        again = await SendWelcomeEmail.dispatch({"to": "other"}, job_id="welcome-1")
        assert again.payload == {"to": "a@b.c"}
        delayed = await SendWelcomeEmail.dispatch(delay=60_000)
        assert delayed.state == "delayed" and delayed.payload == {}
        emails = queues.emails
        assert (await emails.get_job_counts())["waiting"] == 1

        with pytest.raises(LarkError, match="running event loop") as info:
            SendWelcomeEmail.dispatch_sync({"to": "x"})
        assert "await" in str(info.value)

        synced = await asyncio.to_thread(SendWelcomeEmail.dispatch_sync, {"to": "thread"},
                                         job_id="welcome-2")
        assert synced.id == "welcome-2" and synced.queue == "emails"
        got = await emails.get_job("welcome-2")
        assert got is not None and got.payload == {"to": "thread"}
        dup = await asyncio.to_thread(SendWelcomeEmail.dispatch_sync, {"to": "again"},
                                      job_id="welcome-2")
        assert dup.payload == {"to": "thread"}

        with pytest.raises(TypeError):
            await SendWelcomeEmail.dispatch({"bad": object()})
        with pytest.raises(TypeError):
            await asyncio.to_thread(SendWelcomeEmail.dispatch_sync, {"bad": object()})
        with pytest.raises(UnknownQueue):
            await Unconfigured.dispatch({})
        counts = await check_consistency(emails)
        assert counts["waiting"] == 2 and counts["delayed"] == 1
    finally:
        await default_project().close()


# -- retry / remove / promote / logs ------------------------------------------------------------------


async def test_retry_a_failed_job(queue: Queue, driver: ScriptDriver) -> None:
    rec = await queue.add("T", {"keep": [1, 2]}, priority=3, attempts=2)
    (c,) = await driver.claim(1)
    await queue.redis.rpush(queue.keys.logs(rec.id), "2024-01-01T00:00:00.000Z INFO first try")
    await driver.finish([driver.ack(c, "f", "RuntimeError: nope", "Traceback (most recent...)")])
    failed = await queue.get_job(rec.id)
    assert failed is not None and failed.state == "failed"
    assert failed.failed_reason == "RuntimeError: nope" and failed.attempts_made == 1
    assert failed.stacktrace and failed.finished_on

    await failed.retry()
    assert failed.state == "waiting" and failed.attempts_made == 0 and failed.failed_reason is None
    fresh = await failed.refresh()
    assert fresh.state == "waiting" and fresh.attempts_made == 0
    assert fresh.failed_reason is None and fresh.stacktrace is None
    assert fresh.finished_on is None and fresh.processed_on is None
    assert fresh.payload == {"keep": [1, 2]} and fresh.priority == 3
    assert fresh.options == {"attempts": 2}
    logs = await fresh.get_logs()
    assert logs[0].endswith("INFO first try")
    assert ISO_LINE.match(logs[-1]) and logs[-1].endswith(" INFO retried")
    assert (await check_consistency(queue))["waiting"] == 1

    # a job retried while the queue is paused is paused, and says so
    (c,) = await driver.claim(1)
    await driver.fail(c)
    await queue.pause()
    again = await queue.get_job(rec.id)
    assert again is not None
    await again.retry()
    assert again.state == "paused" and (await again.refresh()).state == "paused"
    await queue.resume()

    with pytest.raises(JobNotInState):
        await fresh.retry()  # waiting
    (c,) = await driver.claim(1)
    with pytest.raises(JobNotInState):
        await fresh.retry()  # active
    evs = [f for _e, f in await queue.events("-", 1000) if f["ev"] == "retried"]
    assert evs and evs[-1].get("manual") == "1"


async def test_record_actions(queue: Queue, driver: ScriptDriver) -> None:
    rec = await queue.add("T", "d", delay=60_000)
    assert rec.delay_until is None or rec.state == "delayed"
    got = await queue.get_job(rec.id)
    assert got is not None and got.delay_until is not None
    await got.promote()
    assert (await got.refresh()).state == "waiting"
    await queue.redis.rpush(queue.keys.logs(rec.id), "a", "b", "c")
    assert await got.get_logs(1, 2) == ["b", "c"]
    await got.remove()
    with pytest.raises(JobNotFound):
        await got.refresh()
    with pytest.raises(JobNotFound):
        await got.remove()
    assert await nothing_stored(queue)


async def test_find_job_across_queues(project: Lark) -> None:
    await project.queue("emails").add("T", {}, job_id="shared")
    await project.queue("reports").add("T", {}, job_id="shared")
    only = await project.queue("default").add("T", {})
    assert (await project.find_job(only.id)).queue == "default"
    with pytest.raises(AmbiguousJobId, match="emails"):
        await project.find_job("shared")
    assert (await project.find_job("shared", queue="reports")).queue == "reports"
    with pytest.raises(JobNotFound):
        await project.find_job("missing")


# -- metrics and events ------------------------------------------------------------------------------


async def test_metrics_and_events(queue: Queue, driver: ScriptDriver) -> None:
    await queue.add_bulk([{"name": "T", "payload": i} for i in range(3)])
    a, b, c = await driver.claim(3)
    await driver.finish([driver.ack(a, "c"), driver.ack(b, "c"), driver.ack(c, "f", "bad")])
    metrics = await queue.get_metrics(5)
    assert len(metrics) == 5
    assert [m["minute"] for m in metrics] == sorted(m["minute"] for m in metrics)
    assert all(m["minute"] % 60_000 == 0 for m in metrics)
    assert metrics[-1]["completed"] == 2 and metrics[-1]["failed"] == 1
    assert sum(m["completed"] for m in metrics[:-1]) == 0

    events = await queue.events()
    kinds = [f["ev"] for _e, f in events]
    assert kinds[:2] == ["added", "active"] and "completed" in kinds and "failed" in kinds
    failed = next(f for _e, f in events if f["ev"] == "failed")
    assert failed["id"] == c.id and failed["reason"] == "bad"
    first_id = events[0][0]
    assert [e for e, _f in await queue.events(first_id)] == [e for e, _f in events[1:]]
    assert await queue.events(events[-1][0]) == []
    assert len(await queue.events("-", count=2)) == 2

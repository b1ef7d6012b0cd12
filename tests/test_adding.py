"""How jobs go in: ``add_bulk`` packs jobs into a few arguments per add-script call and
splits large bulks into calls of ``adding.CHUNK`` jobs; every guarantee of ``add`` holds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from lark_core import adding, scripts
from lark_core.errors import PayloadTooLarge, SerializationError
from lark_core.ids import new_id, new_ids
from lark_core.project import Lark
from lark_core.queue import Queue
from tests.helpers import ScriptDriver, check_consistency, make_project


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
    d.close()


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(adding, "CHUNK", 7)
    return 7


async def added_ids(queue: Queue) -> list[list[str]]:
    return [f["ids"].split(",") for _e, f in await queue.events("-", count=10_000) if f["ev"] == "added"]


async def nothing_stored(queue: Queue) -> bool:
    counts = await queue.get_job_counts()
    keys = [k async for k in queue.redis.scan_iter(match=queue.keys.job("*"))]
    return sum(counts.values()) == 0 and not keys


def test_generated_ids_are_ulids() -> None:
    ids = [*new_ids(500), new_id()]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 26 and set(i) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ") for i in ids)
    assert ids[0][:10] <= ids[-1][:10]  # the time part sorts
    assert ids[0][0] in "01234567"  # 48-bit time: the first of 26 digits carries 3 bits


async def test_a_bulk_of_many_chunks_keeps_order_and_counts(
    queue: Queue, driver: ScriptDriver, small_chunks: int,
) -> None:
    items: list[dict[str, Any]] = [{"name": "T", "payload": {"i": i}} for i in range(30)]
    items[5]["opts"] = {"priority": 1}
    items[6]["opts"] = {"priority": 1, "attempts": 2}
    items[20]["opts"] = {"delay": 60_000}
    recs = await queue.add_bulk(items)
    assert [r.payload for r in recs] == [{"i": i} for i in range(30)]
    assert [r.priority for r in recs][4:8] == [0, 1, 1, 0]
    assert recs[6].max_attempts == 2 and recs[6].options == {"attempts": 2}
    assert recs[20].state == "delayed" and recs[20].options == {}
    assert [len(ids) for ids in await added_ids(queue)] == [7, 7, 7, 7, 2]
    counts = await check_consistency(queue)
    assert counts["waiting"] == 29 and counts["delayed"] == 1
    order = [c.id for c in await driver.claim(30)]
    ready = [r for r in recs if r.state == "waiting"]
    assert order == [r.id for r in sorted(ready, key=lambda r: r.priority)]  # FIFO per priority
    stored = await queue.get_job(recs[6].id)
    assert stored is not None and stored.options == {"attempts": 2} and stored.max_attempts == 2


async def test_payloads_of_any_json_and_any_text(queue: Queue, small_chunks: int) -> None:
    payloads = ["h\u00e9llo \u2603", {"k": "\U0001f600 x"}, 1, 2.5, None, [1, "two"], "", " a b ",
                "\n", True, {"nested": {"a": [None]}}, "\u00e9" * 9]
    recs = await queue.add_bulk([{"name": "T", "payload": p} for p in payloads])
    expected = [{} if p is None else p for p in payloads]
    assert [r.payload for r in recs] == expected
    assert [r.payload for r in await queue.get_waiting()] == expected


async def test_existing_ids_across_chunks_return_the_stored_jobs(queue: Queue, small_chunks: int) -> None:
    first = await queue.add("T", {"v": "first"}, job_id="dup-1")
    items = [{"name": "T", "payload": {"v": i}, "opts": {"job_id": f"id-{i % 9}"}} for i in range(20)]
    items.append({"name": "T", "payload": {"v": "again"}, "opts": {"job_id": "dup-1"}})
    recs = await queue.add_bulk(items)
    assert [r.payload for r in recs][:9] == [{"v": i} for i in range(9)]
    assert [r.payload["v"] for r in recs][9:20] == [i % 9 for i in range(9, 20)]  # first one wins
    assert recs[-1].id == first.id and recs[-1].payload == {"v": "first"}
    assert (await check_consistency(queue))["waiting"] == 10


async def test_a_resent_call_changes_nothing(queue: Queue) -> None:
    """A write retried after a lost reply: the ids were chosen before the first send."""
    batch = queue._batch([("T", {"i": i}, {"priority": i % 2}) for i in range(5)])
    (call,) = queue._add_calls(batch)
    assert await scripts.run(queue.redis, call) == [1] * 5
    events = await queue.events("-")
    assert await scripts.run(queue.redis, call) == [0] * 5
    assert await queue.events("-") == events
    assert [r.id for r in await queue.get_waiting()] == [batch.ids[i] for i in (0, 2, 4, 1, 3)]
    assert (await check_consistency(queue))["waiting"] == 5


async def test_a_bad_item_anywhere_enqueues_nothing(queue: Queue, small_chunks: int) -> None:
    good = [{"name": "T", "payload": i, "opts": {"priority": 1}} for i in range(20)]
    bad_items: list[tuple[dict[str, Any], type[Exception]]] = [
        ({"name": "T", "payload": object()}, SerializationError),
        ({"name": "T", "payload": float("nan")}, SerializationError),
        ({"name": "T", "payload": "\ud800"}, SerializationError),
        ({"name": "T", "payload": "x" * (1024 * 1024)}, PayloadTooLarge),
        ({"name": "T", "opts": {"priority": True}}, ValueError),  # after priority 1: not shared
        ({"name": "T", "opts": {"priority": 1.5}}, ValueError),
        ({"name": "T", "opts": {"nope": 1}}, TypeError),
        ({"name": "T", "opts": [("priority", 1)]}, TypeError),
        ({"name": "", "payload": 1}, ValueError),
        ({"payload": 1}, ValueError),
    ]
    for bad, error in bad_items:
        with pytest.raises(error):
            await queue.add_bulk([*good, bad, *good])
        assert await nothing_stored(queue), bad


async def test_options_shared_by_reference_are_read_per_item(queue: Queue) -> None:
    """One options dict changed between items (a generator) gives each item its own values."""
    opts: dict[str, Any] = {}

    def items() -> Iterator[dict[str, Any]]:
        for p in (2, 0, 1):
            opts["priority"] = p
            yield {"name": "T", "payload": p, "opts": opts}

    recs = await queue.add_bulk(items())
    assert [r.priority for r in recs] == [2, 0, 1]
    assert [r.payload for r in await queue.get_waiting()] == [0, 1, 2]


def test_jobs_sharing_name_and_options_share_one_profile() -> None:
    batch = adding.AddBatch(1024)
    for i in range(4):
        batch.add("T", i, {"attempts": 3})
    batch.add("U", 4, None)
    batch.seal()
    (args,) = batch.calls_args("lark:{q}:job:")
    prefix, n, ids, sizes, data, which, *profiles = args
    assert (prefix, n, sizes, data, which) == ("lark:{q}:job:", 5, "1 1 1 1 1", "01234", "1 1 1 1 2")
    assert ids == " ".join(batch.ids)
    assert profiles == ["T", '{"attempts":3}', 0, 0, "U", "{}", 0, 0]


async def test_the_record_add_returns_for_a_delayed_job_says_when_it_is_due(queue: Queue) -> None:
    """add() returned a delayed job's record with delay_until None; read back, it had one."""
    rec = await queue.add("Echo", 1, delay=60_000)
    sync_rec = queue.add_sync("Echo", 2, delay=60_000)
    (bulk_rec,) = await queue.add_bulk([{"name": "Echo", "payload": 3, "opts": {"delay": 60_000}}])
    for added in (rec, sync_rec, bulk_rec):
        stored = await queue.get_job(added.id)
        assert added.state == "delayed" and stored is not None and stored.delay_until is not None
        assert added.delay_until is not None and abs(added.delay_until - stored.delay_until) < 2_000
    assert (await queue.add("Echo", 4)).delay_until is None

"""Pure pieces of the console: formatting, layout, validation, data-source mapping."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from lark_core.errors import RedisUnavailable
from lark_tui import format as fmt
from lark_tui.datasource import LarkDataSource, record_dict, throughput
from lark_tui.keys import described
from lark_tui.model import LocalWorker, WorkerEntry
from lark_tui.screens.dispatch import validate as validate_dispatch
from lark_tui.screens.jobs import applies
from lark_tui.screens.main import MainScreen
from lark_tui.screens.start_workers import validate as validate_workers
from lark_tui.widgets.jobs_table import short_id
from lark_tui.widgets.queues_table import layout
from lark_tui.widgets.workers_table import worker_rows
from tests.tui.fakes import NOW, NOW_MS


def test_counts_durations_sizes() -> None:
    assert [fmt.count(n) for n in (0, 999, 1000, 12_345, 1_000_000)] == [
        "0", "999", "1.0k", "12k", "1.0M"]
    assert [fmt.duration(s) for s in (5, 192, 14_700, 183_600)] == [
        "5s", "3m12s", "4h05m", "2d03h"]
    assert fmt.size(48 * 1024 * 1024) == "48M" and fmt.size(None) == "-"
    assert fmt.stamp(NOW_MS - 61_000, NOW) == "2025-12-31 23:58:59Z (1m01s ago)"
    assert fmt.stamp(NOW_MS + 60_000, NOW).endswith("(in 1m00s)")


def test_sparkline_scales_pads_and_cuts() -> None:
    assert fmt.sparkline([], 4) == "▁▁▁▁"
    assert fmt.sparkline([0, 7], 4) == "▁▁▁█"
    assert len(fmt.sparkline(range(100), 10)) == 10


def test_throughput_aligns_minutes_to_now() -> None:
    minute = NOW_MS // 60_000 * 60_000
    points = [{"minute": minute, "completed": 5}, {"minute": minute - 120_000, "completed": 2},
              {"minute": minute - 3_600_000, "completed": 99}]
    series = throughput(points, NOW_MS, minutes=5)
    assert series == (0, 0, 2, 0, 5)


def test_queue_layout_fits_80_columns() -> None:
    name_w, spark_w = layout(78, ("default", "high-priority", "emails"))
    assert name_w == 16 and spark_w >= 8
    assert sum(layout(200, ("default",))) > sum(layout(78, ("default",)))


def test_dispatch_validation_names_the_field() -> None:
    ok = validate_dispatch("emails", " Send ", '{"to": "a@b"}', "1500", "3")
    assert (ok.name, ok.payload, ok.delay_ms, ok.priority) == ("Send", {"to": "a@b"}, 1500, 3)
    assert validate_dispatch("emails", "Send", "", "", "").payload == {}
    for args, message in [
        (("emails", "", "{}", "0", "0"), "job name"),
        (("emails", "Send", "{nope", "0", "0"), "payload: not valid JSON"),
        (("emails", "Send", "{}", "-1", "0"), "delay ms"),
        (("emails", "Send", "{}", "0", "9999999"), "priority"),
        ((None, "Send", "{}", "0", "0"), "queue"),
    ]:
        with pytest.raises(ValueError, match=message):
            validate_dispatch(*args)


def test_start_workers_validation() -> None:
    assert validate_workers(["a"], "10", "2").count == 2
    with pytest.raises(ValueError, match="queues"):
        validate_workers([], "10", "1")
    with pytest.raises(ValueError, match="workers"):
        validate_workers(["a"], "10", "0")


def test_worker_rows_merge_local_registry_and_remote() -> None:
    local = (LocalWorker(1, 11, ("a",), 5, "running", NOW - 10, cpu=1.0, memory=1024),
             LocalWorker(2, 12, ("a",), 5, "running", NOW - 1),
             LocalWorker(3, 13, ("b",), 1, "crashed", NOW - 5, exit_code=2))
    registry = (WorkerEntry("h:11", "myhost.example", 11, ("a",), 5, NOW_MS - 10_000,
                            jobs_done=7, last_seen=NOW_MS),
                WorkerEntry("h:99", "myhost", 99, ("a",), 5, NOW_MS, last_seen=NOW_MS),
                WorkerEntry("o:5", "other", 5, (), 2, NOW_MS - 5000, last_seen=NOW_MS - 60_000))
    rows = worker_rows(local, registry, "myhost", NOW)
    assert [(r.where, r.pid, r.state, r.done) for r in rows] == [
        ("local", 11, "running", "7"), ("local", 12, "starting", "-"),
        ("local", 13, "crashed 2", "-"), ("myhost", 99, "remote", "0"),
        ("other", 5, "stale", "0")]
    assert rows[0].local_key == 1 and rows[3].local_key is None and "other" in rows[4].note


def test_short_ids_keep_the_distinguishing_tail() -> None:
    assert short_id("01JOBEMAIL0000000000000012", 12) == "…00000000012"
    assert short_id("abc", 12) == "abc"


def test_job_actions_apply_only_where_they_make_sense() -> None:
    assert applies("retry", "failed") and applies("retry", "completed")
    assert not applies("retry", "waiting") and not applies("promote", "waiting")
    assert applies("promote", "delayed") and not applies("remove", "active")
    assert not applies("retry_all", "failed", failed=0)


def test_every_dashboard_action_is_described_once() -> None:
    actions = [b.action for _, b in described([MainScreen()])]
    assert len(actions) == len(set(actions))
    for action in ("start_workers", "failed", "pause", "retry_all", "scale(1)", "scale(-1)",
                   "stop_worker", "restart_worker", "follow"):
        assert action in actions


# -- the real data source over a stand-in Lark (no Redis) --------------------------------


@dataclass
class StubQueue:
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    async def get_job_counts(self) -> dict[str, int]:
        self.calls.append(("counts",))
        return {"waiting": 0, "active": 0, "delayed": 0, "completed": 0, "failed": 120,
                "paused": 0}

    async def get_jobs(self, state: str, start: int, end: int) -> list[Any]:
        self.calls.append(("get_jobs", state, start, end))
        return []


@dataclass
class StubOverview:
    counts: dict[str, dict[str, Any]]
    metrics: dict[str, list[dict[str, int]]]
    workers: list[Any]
    at_ms: int


class StubLark:
    redis_display_url = "redis://:***@h:6379/0"

    def __init__(self, n: int) -> None:
        self.queues = {f"q{i:02d}": StubQueue() for i in range(n)}
        self.overviews = 0
        self.fail: Exception | None = None

    async def overview(self, minutes: int = 30) -> StubOverview:
        self.overviews += 1
        if self.fail:
            raise self.fail
        counts = {name: {"waiting": 1_000_000 if i == 0 else 0, "is_paused": i == 1}
                  for i, name in enumerate(self.queues)}
        return StubOverview(counts, {}, [{"id": "w", "host": "h", "pid": 3}], NOW_MS)


async def test_overview_is_one_engine_call_for_fifty_queues() -> None:
    lark = StubLark(50)
    data = LarkDataSource(lark)
    overview = await data.overview()
    assert lark.overviews == 1 and len(overview.queues) == 50
    assert overview.queues[0].waiting == 1_000_000 and overview.queues[1].is_paused
    assert all(not q.calls for q in lark.queues.values())  # no per-queue round trips
    assert overview.workers[0].pid == 3


async def test_jobs_page_reads_one_page_only_and_clamps() -> None:
    lark = StubLark(1)
    data = LarkDataSource(lark)
    page = await data.jobs_page("q00", "failed", 99, 50)
    assert (page.page, page.pages, page.total) == (2, 3, 120)
    assert lark.queues["q00"].calls[-1] == ("get_jobs", "failed", 100, 149)


async def test_raw_client_errors_become_redis_unavailable() -> None:
    class StandIn(Exception):  # what redis-py raises, by module
        __module__ = "redis.exceptions"

    lark = StubLark(1)
    lark.fail = StandIn("refused")
    with pytest.raises(RedisUnavailable, match=r"redis://:\*\*\*@h:6379/0"):
        await LarkDataSource(lark).overview()


def test_record_dict_skips_private_fields_without_deep_copying() -> None:
    from lark_core.record import JobRecord

    record = JobRecord(id="1", name="n", queue="q", payload={"a": 1})
    object.__setattr__(record, "_queue", threading.Lock())  # not copyable, not shown
    data = record_dict(record)
    assert data["payload"] == {"a": 1} and "_queue" not in data


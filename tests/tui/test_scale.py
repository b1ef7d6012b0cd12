"""Scale: 50 queues, a million waiting jobs in one and 100,000 failed in another.

The console reads counts in one round trip and never more than one page of jobs,
so refreshes and page flips stay fast. The jobs are written straight into the
engine's key schema (a server-side loop) because enqueuing a million through the
API would dominate the test; only the pages the test opens get job records.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lark_core.keys import QueueKeys
from lark_tui.screens.jobs import JobsScreen
from lark_tui.widgets.jobs_table import JobsTable
from lark_tui.widgets.queues_table import QueuesTable
from tests.conftest import write_project
from tests.redis_proc import RedisProc
from tests.tui.conftest import real_app, settle, until

QUEUES = [f"q{i:02d}" for i in range(50)]

FILL = """
local zkey, prefix, n, state, first, last = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3],
  tonumber(ARGV[4]), tonumber(ARGV[5])
local batch = {}
for i = 1, n do
  local id = string.format('%s%07d', state, i)
  batch[#batch + 1] = i
  batch[#batch + 1] = id
  if #batch >= 4000 then redis.call('ZADD', zkey, unpack(batch)); batch = {} end
  if i <= first or i > n - last then
    redis.call('HSET', prefix .. id, 'name', 'Bulk', 'data', '{}', 'ts', '1767225600000',
               'state', state, 'fr', 'RuntimeError: bulk ' .. i, 'atm', '1')
  end
end
if #batch > 0 then redis.call('ZADD', zkey, unpack(batch)) end
return n
"""


def fill(proc: RedisProc, queue: str, state: str, n: int, page: int) -> None:
    keys = QueueKeys(queue)
    zset = keys.wait if state == "waiting" else keys.failed
    client = proc.client()
    try:
        client.eval(FILL, 1, zset, keys.job(""), n, state, page, page)
    finally:
        client.close()


@pytest.mark.timeout(90)
async def test_fifty_queues_a_million_waiting_and_100k_failed(
        tmp_path: Path, fresh_redis: RedisProc) -> None:
    fill(fresh_redis, "q00", "waiting", 1_000_000, 50)
    fill(fresh_redis, "q01", "failed", 100_000, 50)
    config = write_project(tmp_path, fresh_redis.url, {}, queues=QUEUES)
    app = real_app(config)
    data = app.services.data

    started = time.perf_counter()
    overview = await data.overview()
    assert time.perf_counter() - started < 0.5
    assert (overview.queues[0].waiting, overview.queues[1].failed) == (1_000_000, 100_000)

    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        queues = app.screen.query_one(QueuesTable)
        assert queues.row_count == 50
        await pilot.press("down", "f")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen))
        await settle(pilot)
        table = app.screen.query_one(JobsTable)
        assert table.current is not None and table.current.pages == 2_000
        assert table.row_count == 50
        started = time.perf_counter()
        await pilot.press("right_curly_bracket")  # the last page: still one page read
        await until(pilot, lambda: table.current.page == 1_999, what="last page")
        assert time.perf_counter() - started < 2.0
        assert table.row_count == 50 and table.current.jobs[-1].id == "failed0000001"
        await pilot.press("escape", "up", "enter")  # q00: a million waiting, one page read
        await until(pilot, lambda: isinstance(app.screen, JobsScreen))
        await settle(pilot)
        table = app.screen.query_one(JobsTable)
        assert table.current is not None and table.current.state == "waiting"
        assert (table.current.total, table.row_count) == (1_000_000, 50)
    stats = fresh_redis.client()
    try:
        commands = stats.info("commandstats")
    finally:
        stats.close()
    # no command ever read a whole state: ranges only, never a scan of everything
    assert "cmdstat_keys" not in commands and "cmdstat_scan" not in commands

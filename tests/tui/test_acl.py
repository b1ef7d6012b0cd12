"""The console as a read-only Redis ACL user over TLS: it shows everything, and a
retry or a pause says plainly that the user may not, changing nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from lark_core.project import Lark
from lark_tui.screens.jobs import JobsScreen
from lark_tui.widgets.jobs_table import JobsTable
from lark_tui.widgets.queues_table import QueuesTable
from tests.helpers import running_worker, wait_until
from tests.redis_tls import TLSRedis, creds, tls_server, write_tls_project
from tests.tui.conftest import JOBS_SRC, real_app, settle, until


@pytest.fixture(scope="module")
def server() -> Iterator[TLSRedis]:
    with tls_server() as started:
        yield started


@pytest.fixture
def admin(server: TLSRedis) -> Iterator[redis.Redis]:
    client = server.admin()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def config(tmp_path: Path, server: TLSRedis, admin: redis.Redis) -> Path:
    return write_tls_project(tmp_path / "proj", server, JOBS_SRC,
                             queues="default, emails, reports")


async def fail_jobs_as_worker(config: Path, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """``n`` failed jobs in ``emails``, made by a worker logged in as ``worker``."""
    for name, value in creds("worker").items():
        monkeypatch.setenv(name, value)
    project = Lark(config_path=config)
    try:
        q = project.queue("emails")
        for i in range(n):
            await q.add("Boom", {"to": f"m{i}@example.com"}, job_id=f"mail-{i}")
        async with running_worker(project, ["emails"]):
            await wait_until(lambda: _failed(q, n), what=f"{n} failed jobs")
    finally:
        await project.close()


async def _failed(q: Any, n: int) -> bool:
    return (await q.get_job_counts())["failed"] == n


def notices(app: Any) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


def _denied(app: Any, what: str) -> bool:
    return any(f"user 'viewer' may not {what} (Redis ACL" in text for text in notices(app))


async def test_viewer_console_shows_counts_but_may_not_pause_or_retry(
        config: Path, admin: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    await fail_jobs_as_worker(config, monkeypatch, 2)
    for name, value in creds("viewer").items():
        monkeypatch.setenv(name, value)
    app = real_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.redis_error is None
        overview = app.screen.query_one(QueuesTable).overview
        assert overview is not None and overview.get("emails").failed == 2  # type: ignore[union-attr]

        await pilot.press("p")  # pause "default", the selected queue
        await until(pilot, lambda: _denied(app, "pause queues"), what="pause refused")
        assert any(text.startswith("Pause failed: ") for text in notices(app))

        await pilot.press("down", "f")  # the failed jobs of "emails"
        await until(pilot, lambda: isinstance(app.screen, JobsScreen), what="failed list")
        await settle(pilot)
        job = app.screen.query_one(JobsTable).selected
        assert job is not None and job.state == "failed"
        await pilot.press("r")
        await until(pilot, lambda: _denied(app, "retry jobs"), what="retry refused")
        assert app.redis_error is None  # a refusal is no outage: no red banner
    assert admin.hget("lark:{default}:meta", "paused") in (None, "0")
    assert admin.zcard("lark:{emails}:failed") == 2 and admin.zcard("lark:{emails}:wait") == 0

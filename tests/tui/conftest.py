"""Console test fixtures: apps on fixed or real data, snapshots stored in ``snapshots/``."""

from __future__ import annotations

import asyncio
import os
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy import SnapshotAssertion
from textual.pilot import Pilot

from lark_tui.app import LarkApp, build
from lark_tui.datasource import DataSource
from lark_tui.polling import Polling
from lark_tui.services import Services
from lark_tui.supervisor import Supervisor
from tests.conftest import write_project
from tests.tui.fakes import HOST, NOW, FakeData, FakeSupervisor

SNAPSHOTS = Path(__file__).resolve().parents[2] / "snapshots"
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((132, 40), id="132x40")]

JOBS_SRC = '''
import asyncio
from lark_core import Job


class Hello(Job):
    async def handle(self, payload):
        self.info("hello", payload)
        return {"ok": True}


class Slow(Job):
    async def handle(self, payload):
        self.info("working on", payload)
        await asyncio.sleep(payload.get("seconds", 0.5))
        return {"slept": payload.get("seconds", 0.5)}


class Boom(Job):
    queue = "emails"

    async def handle(self, payload):
        raise RuntimeError(f"smtp down for {payload['to']}")
'''


class LarkSVG(SVGImageExtension):
    """pytest-textual-snapshot's SVGs, kept flat in the top-level ``snapshots/``."""

    @classmethod
    def dirname(cls, *, test_location: Any) -> str:
        return str(SNAPSHOTS)

    @classmethod
    def write_snapshot(cls, *, snapshot_location: str, snapshots: Any) -> None:
        # a flat folder cannot be "related" to the test module by syrupy's naming rule
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r"\s*Can not relate snapshot location")
            super().write_snapshot(snapshot_location=snapshot_location, snapshots=snapshots)


@pytest.fixture(autouse=True)
def _stable_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """UTC clock text, no colour overrides, no ambient config."""
    for var in ("NO_COLOR", "TEXTUAL_THEME", "LARK_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def make_app(data: DataSource | None = None, supervisor: Supervisor | None = None,
             clock: Callable[[], float] = lambda: NOW, **options: Any) -> LarkApp:
    """An app on fixed data (by default), frozen clock, fixed host, no cursor blink."""
    services = Services(
        data=data or FakeData(), supervisor=supervisor or FakeSupervisor(), clock=clock,
        hostname=HOST, cursor_blink=False, poll_interval=0.2, **options,
    )
    return LarkApp(services)


def real_app(config: Path, clock: Callable[[], float] | None = None, **options: Any) -> LarkApp:
    """An app on a real project (Redis, real worker processes), as ``lark-tui`` builds it."""
    services, warnings = build(config)
    services.handle_signals = False
    services.cursor_blink = False
    services.poll_interval = 0.2
    services.supervisor.grace_s = 10
    if clock is not None:
        services.clock = clock
    for key, value in options.items():
        setattr(services, key, value)
    return LarkApp(services, warnings)


async def until(pilot: Pilot[Any], condition: Callable[[], Any], timeout: float = 10.0,
                what: str = "condition") -> None:
    """Let the app run until ``condition()`` is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def until_async(pilot: Pilot[Any], condition: Callable[[], Awaitable[Any]],
                      timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.1)


async def settle(pilot: Pilot[Any]) -> None:
    """Wait until every live view on screen has polled at least once, then for quiet."""
    app = pilot.app
    await pilot.pause()
    await until(pilot, lambda: all(w.polls > 0 for w in app.screen.query(Polling)
                                   if w.display), what="first polls")
    await pilot.pause(0.1)
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


Snap = Callable[..., Awaitable[None]]


@pytest.fixture
def snap(snapshot: SnapshotAssertion) -> Snap:
    """``await snap(app, size, before=async fn(pilot))`` compares with ``snapshots/<test>.svg``."""
    svg_snapshot = snapshot.use_extension(LarkSVG)

    async def check(app: LarkApp, size: tuple[int, int],
                    before: Callable[[Pilot[Any]], Awaitable[None]] | None = None) -> None:
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            if before is not None:
                await before(pilot)
                await settle(pilot)
            svg = app.export_screenshot()
        assert svg_snapshot == svg

    return check


@pytest.fixture
def project(tmp_path: Path, redis_url: str) -> Path:
    """A throwaway project on a flushed Redis database: queues default, emails, reports."""
    return write_project(tmp_path / "proj", redis_url, {"demo.py": JOBS_SRC},
                         queues=["default", "emails", "reports"],
                         extra="worker:\n  shutdown_grace_s: 10\n")


@pytest.fixture
async def lark(project: Path) -> Any:
    from lark_core import Lark
    from lark_core.config import load_config

    handle = Lark(load_config(project))
    yield handle
    await handle.close()


async def fail_jobs(project: Path, lark: Any, queue: str, n: int) -> None:
    """Run a real worker until ``n`` jobs of ``queue`` have failed, then stop it."""
    from lark_tui.supervisor import worker_command

    sup = Supervisor(worker_command(project), cwd=str(project.parent), grace_s=10)
    sup.start([queue], 5)
    try:
        deadline = time.monotonic() + 20
        while (await lark.queues[queue].get_job_counts())["failed"] < n:
            assert time.monotonic() < deadline, "worker did not fail the jobs"
            await asyncio.sleep(0.05)
    finally:
        await asyncio.to_thread(sup.shutdown)


def pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        alive.append(pid)
    return alive

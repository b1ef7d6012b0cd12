"""Snapshots of every screen and dialog at 80x24 and 132x40 (SVGs in ``snapshots/``).

Fixed-data snapshots use ``fakes.FakeData``; the others run on a real Redis
seeded with known jobs, with the clock frozen relative to the seeded jobs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from lark_tui.screens.job_detail import JobDetailScreen
from lark_tui.screens.jobs import JobsScreen
from tests.conftest import write_project
from tests.tui.conftest import SIZES, Snap, fail_jobs, make_app, real_app, settle, until
from tests.tui.fakes import FakeData, FakeSupervisor

pytestmark = pytest.mark.parametrize("size", SIZES)


async def seed(lark: Any) -> float:
    """Known jobs: 5 waiting + 1 prioritised, 2 delayed; returns the newest creation time (s)."""
    default, reports = lark.queues["default"], lark.queues["reports"]
    records = [await default.add("Hello", {"n": i}, job_id=f"hello-{i}") for i in range(1, 6)]
    records.append(await default.add("Slow", {"seconds": 2}, job_id="slow-1", priority=1))
    records += [await reports.add("Hello", {"report": m}, job_id=f"report-{m}", delay=delay)
                for m, delay in (("jan", 600_000), ("feb", 1_200_000))]
    return max(r.timestamp for r in records) / 1000


def frozen_after(t: float) -> Any:
    return lambda: t + 90.3


def stable(app: Any) -> Any:
    """The session Redis has a random port and database: show a fixed URL instead."""
    app.services.data.redis_url = "redis://127.0.0.1:6379/1"
    return app


class TestDashboard:
    async def test_dashboard_fixed(self, snap: Snap, size: tuple[int, int]) -> None:
        """Queues with sparklines and a paused queue; local (running, crashed) and remote
        workers; the selected worker's output in the log pane."""
        await snap(make_app(), size)

    async def test_dashboard_crashed_worker(self, snap: Snap, size: tuple[int, int]) -> None:
        """Selecting a crashed worker shows its exit code and last output."""

        async def select_crashed(pilot: Pilot[Any]) -> None:
            await pilot.press("tab", "down")

        await snap(make_app(), size, before=select_crashed)

    async def test_dashboard_redis(self, snap: Snap, size: tuple[int, int], project: Path,
                                   lark: Any) -> None:
        """Real Redis: counts of seeded jobs, 3 failed by a real worker, a paused queue."""
        for i in range(3):
            await lark.queues["emails"].add("Boom", {"to": f"u{i}@example.com"},
                                            job_id=f"mail-{i}")
        await fail_jobs(project, lark, "emails", 3)
        t = await seed(lark)
        await lark.queues["reports"].pause()
        await snap(stable(real_app(project, clock=frozen_after(t))), size)

    async def test_dashboard_redis_down(self, snap: Snap, size: tuple[int, int],
                                        tmp_path: Path) -> None:
        """Redis unreachable from the start: the banner names the masked URL and retries."""
        config = write_project(tmp_path, "redis://:hunter2@127.0.0.1:1/0", {})
        app = real_app(config, clock=lambda: 1_767_225_600.0)

        async def banner(pilot: Pilot[Any]) -> None:
            await until(pilot, lambda: app.redis_error is not None, what="banner")

        await snap(app, size, before=banner)


class TestJobs:
    async def test_jobs_failed_fixed(self, snap: Snap, size: tuple[int, int]) -> None:
        """The failed list of a queue with 100,000 failed jobs: one page, counts per state."""

        async def open_failed(pilot: Pilot[Any]) -> None:
            await pilot.press("down", "down", "f")
            await until(pilot, lambda: isinstance(pilot.app.screen, JobsScreen))

        await snap(make_app(), size, before=open_failed)

    async def test_jobs_waiting_redis(self, snap: Snap, size: tuple[int, int], project: Path,
                                      lark: Any) -> None:
        """Real Redis: waiting jobs in run order (priority first), ages from a frozen clock."""
        t = await seed(lark)

        async def open_waiting(pilot: Pilot[Any]) -> None:
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(pilot.app.screen, JobsScreen))

        await snap(stable(real_app(project, clock=frozen_after(t))), size, before=open_waiting)

    async def test_jobs_delayed_redis(self, snap: Snap, size: tuple[int, int], project: Path,
                                      lark: Any) -> None:
        """Real Redis: delayed jobs with when they are due."""
        t = await seed(lark)

        async def open_delayed(pilot: Pilot[Any]) -> None:
            await pilot.press("down", "down", "enter")
            await until(pilot, lambda: isinstance(pilot.app.screen, JobsScreen))
            await pilot.press("4")

        await snap(stable(real_app(project, clock=frozen_after(t))), size, before=open_delayed)


class TestJobDetail:
    @staticmethod
    def opener(queue: str, job_id: str) -> Any:
        async def open_job(pilot: Pilot[Any]) -> None:
            await pilot.app.push_screen(JobDetailScreen(queue, job_id))
            await settle(pilot)

        return open_job

    async def test_detail_failed(self, snap: Snap, size: tuple[int, int]) -> None:
        """Payload, failure and traceback, attempts, timestamps, and the job's log lines."""
        await snap(make_app(), size, before=self.opener("emails", "01JOBEMAIL0000000000000001"))

    async def test_detail_completed(self, snap: Snap, size: tuple[int, int]) -> None:
        """A completed job shows its return value and progress."""
        await snap(make_app(), size, before=self.opener("reports", "01JOBREPORT0000000000000001"))

    async def test_detail_gone(self, snap: Snap, size: tuple[int, int]) -> None:
        """A job removed meanwhile says so instead of showing stale data."""
        await snap(make_app(), size, before=self.opener("reports", "no-such-job"))


class TestDialogs:
    async def test_confirm_retry_all(self, snap: Snap, size: tuple[int, int]) -> None:
        """Retry all states how many jobs it will retry."""

        async def ask(pilot: Pilot[Any]) -> None:
            await pilot.press("down", "down", "R")

        await snap(make_app(), size, before=ask)

    async def test_confirm_delete(self, snap: Snap, size: tuple[int, int]) -> None:
        async def ask(pilot: Pilot[Any]) -> None:
            await pilot.press("down", "down", "f")
            await until(pilot, lambda: isinstance(pilot.app.screen, JobsScreen))
            await settle(pilot)
            await pilot.press("d")

        await snap(make_app(), size, before=ask)

    async def test_dispatch_invalid(self, snap: Snap, size: tuple[int, int]) -> None:
        """The dispatch form refuses a payload that is not JSON, naming the problem."""

        async def fill(pilot: Pilot[Any]) -> None:
            await pilot.press("down", "down", "n")
            await pilot.press(*"SendWelcomeEmail", "tab")
            await pilot.press("ctrl+a", "backspace", *'{"to": ', "ctrl+s")

        await snap(make_app(), size, before=fill)

    async def test_jump(self, snap: Snap, size: tuple[int, int]) -> None:
        async def ask(pilot: Pilot[Any]) -> None:
            await pilot.press("g", *"01JOBEMAIL")

        await snap(make_app(), size, before=ask)

    async def test_start_workers(self, snap: Snap, size: tuple[int, int]) -> None:
        async def ask(pilot: Pilot[Any]) -> None:
            await pilot.press("s")

        await snap(make_app(supervisor=FakeSupervisor()), size, before=ask)

    async def test_help(self, snap: Snap, size: tuple[int, int]) -> None:
        async def ask(pilot: Pilot[Any]) -> None:
            await pilot.press("question_mark")

        await snap(make_app(), size, before=ask)

    async def test_palette(self, snap: Snap, size: tuple[int, int]) -> None:
        async def ask(pilot: Pilot[Any]) -> None:
            await pilot.press("ctrl+p")
            for field in pilot.app.screen.query(Input):
                field.cursor_blink = False
            await pilot.press(*"retry")
            await pilot.pause(0.5)

        await snap(make_app(FakeData()), size, before=ask)

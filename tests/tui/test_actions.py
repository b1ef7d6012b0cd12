"""Pilot tests on a real Redis and real worker processes: each key press must change Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lark_tui.screens.confirm import ConfirmDialog
from lark_tui.screens.job_detail import JobDetailScreen
from lark_tui.screens.jobs import JobsScreen
from lark_tui.widgets.jobs_table import JobsTable
from lark_tui.widgets.queues_table import QueuesTable
from lark_tui.widgets.workers_table import WorkersTable
from tests.tui.conftest import fail_jobs, pids_alive, real_app, settle, until, until_async


async def counts(lark: Any, queue: str) -> dict[str, int]:
    return dict(await lark.queues[queue].get_job_counts())


async def seed_failed(project: Path, lark: Any, n: int) -> list[str]:
    ids = [f"mail-{i}" for i in range(n)]
    for job_id in ids:
        await lark.queues["emails"].add("Boom", {"to": f"{job_id}@example.com"}, job_id=job_id)
    await fail_jobs(project, lark, "emails", n)
    return ids


async def test_retry_from_failed_list_moves_job_to_waiting(project: Path, lark: Any) -> None:
    await seed_failed(project, lark, 2)
    app = real_app(project)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("down", "f")  # emails is the second queue
        await until(pilot, lambda: isinstance(app.screen, JobsScreen))
        await settle(pilot)
        job = app.screen.query_one(JobsTable).selected
        assert job is not None and job.state == "failed"
        await pilot.press("r")
        await until_async(pilot, lambda: _state(lark, job.id, "waiting"), what="job waiting")
    assert (await counts(lark, "emails"))["failed"] == 1


async def _state(lark: Any, job_id: str, state: str) -> bool:
    record = await lark.queues["emails"].get_job(job_id)
    return record is not None and record.state == state


async def test_retry_all_asks_with_the_count_then_retries(project: Path, lark: Any) -> None:
    await seed_failed(project, lark, 3)
    app = real_app(project)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("down", "R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert "Retry all 3 failed job(s) in queue 'emails'" in app.screen.message
        await pilot.press("y")
        await until_async(pilot, lambda: _counts_are(lark, failed=0, waiting=3),
                          what="all retried")


async def _counts_are(lark: Any, **expected: int) -> bool:
    got = await counts(lark, "emails")
    return all(got[k] == v for k, v in expected.items())


async def test_delete_asks_then_removes(project: Path, lark: Any) -> None:
    await lark.queues["default"].add("Hello", {}, job_id="doomed")
    app = real_app(project)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen))
        await settle(pilot)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")  # cancel first: nothing happens
        await pilot.pause(0.3)
        assert await lark.queues["default"].get_job("doomed") is not None
        await pilot.press("d", "y")
        await until_async(pilot, _gone(lark, "doomed"), what="job removed")


def _gone(lark: Any, job_id: str) -> Any:
    async def check() -> bool:
        return await lark.queues["default"].get_job(job_id) is None

    return check


async def test_promote_delayed_job_from_detail(project: Path, lark: Any) -> None:
    await lark.queues["reports"].add("Hello", {}, job_id="later", delay=3_600_000)
    app = real_app(project)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("g", *"later", "enter")  # jump to the job by id
        await until(pilot, lambda: isinstance(app.screen, JobDetailScreen))
        await settle(pilot)
        assert app.screen.job_id == "later"
        await pilot.press("P")
        await until_async(pilot, lambda: _in_state(lark, "reports", "later", "waiting"),
                          what="promoted")


async def _in_state(lark: Any, queue: str, job_id: str, state: str) -> bool:
    record = await lark.queues[queue].get_job(job_id)
    return record is not None and record.state == state


async def test_jump_to_unknown_id_says_so(project: Path, lark: Any) -> None:
    app = real_app(project)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("g", *"nope", "enter")
        await until(pilot, lambda: any("nope" in n.message for n in app._notifications),
                    what="not-found notice")
        assert not isinstance(app.screen, JobDetailScreen)


async def test_dispatch_validates_then_adds(project: Path, lark: Any) -> None:
    app = real_app(project)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("n", *"Hello", "tab", *'{"x": ', "ctrl+s")
        error = app.screen.query_one("#error")
        assert "not valid JSON" in str(error.render())
        await pilot.press(*"1}", "ctrl+s")
        await until_async(pilot, lambda: _counts_in(lark, "default", waiting=1), what="added")
    [job] = await lark.queues["default"].get_waiting()
    assert (job.name, job.payload) == ("Hello", {"x": 1})


async def _counts_in(lark: Any, queue: str, **expected: int) -> bool:
    got = await counts(lark, queue)
    return all(got[k] == v for k, v in expected.items())


async def test_scale_up_starts_a_worker_that_completes_jobs(project: Path, lark: Any) -> None:
    for i in range(20):
        await lark.queues["default"].add("Hello", {"i": i})
    app = real_app(project)
    supervisor = app.services.supervisor
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("plus")
        await until(pilot, lambda: supervisor.running == 1, what="worker started")
        pid = supervisor.alive()[0].pid
        await until_async(pilot, lambda: _counts_in(lark, "default", completed=20),
                          timeout=30, what="jobs completed by the spawned worker")
        table = app.screen.query_one(WorkersTable)
        await until(pilot, lambda: table.shown and table.shown[0].state == "running",
                    what="worker registered")
        assert table.shown[0].pid == pid
        await pilot.press("minus")  # scale down: SIGTERM, graceful
        await until(pilot, lambda: supervisor.running == 0, timeout=20, what="worker stopped")
    proc = supervisor.all()[0]
    assert (proc.exit_code, proc.state) == (0, "stopped")


async def test_pause_stops_processing_and_resume_restarts_it(project: Path, lark: Any) -> None:
    app = real_app(project)
    supervisor = app.services.supervisor
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("p")  # pause "default" (the selected queue)
        await until_async(pilot, lark.queues["default"].is_paused, what="paused")
        supervisor.start(["default"], 4)
        for i in range(5):
            await lark.queues["default"].add("Hello", {"i": i})
        table = app.screen.query_one(WorkersTable)
        await until(pilot, lambda: [r.state for r in table.shown] == ["running"], timeout=15,
                    what="worker up")
        await asyncio.sleep(1.0)
        assert await _counts_in(lark, "default", paused=5, completed=0)
        overview = app.screen.query_one(QueuesTable).overview
        assert overview is not None and overview.queues[0].is_paused
        await pilot.press("p")  # resume
        await until_async(pilot, lambda: _counts_in(lark, "default", completed=5),
                          timeout=20, what="processed after resume")


async def test_quit_stops_spawned_workers_gracefully(project: Path, lark: Any) -> None:
    """A job in flight when the console quits still completes: nothing lost, no orphan."""
    await lark.queues["default"].add("Slow", {"seconds": 1.5}, job_id="inflight")
    app = real_app(project)
    supervisor = app.services.supervisor
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        supervisor.start(["default"], 2)
        pid = supervisor.alive()[0].pid
        await until_async(pilot, lambda: _in_state(lark, "default", "inflight", "active"),
                          timeout=15, what="job active")
        await pilot.press("q")
        await until(pilot, lambda: supervisor.running == 0, timeout=20, what="workers stopped")
    assert pids_alive([pid]) == []
    assert supervisor.all()[0].exit_code == 0
    assert await _in_state(lark, "default", "inflight", "completed")


async def test_crashed_worker_shows_exit_code_and_output(project: Path, lark: Any) -> None:
    (project.parent / "jobs" / "broken.py").write_text("import no_such_module_xyz\n")
    app = real_app(project)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("s", "enter")
        table = app.screen.query_one(WorkersTable)
        await until(pilot, lambda: table.shown and table.shown[0].state.startswith("crashed"),
                    timeout=15, what="crash shown")
        code = app.services.supervisor.all()[0].exit_code
        assert code not in (None, 0) and table.shown[0].state == f"crashed {code}"
        log = app.screen.query_one("#log")
        await until(pilot, lambda: any("no_such_module_xyz" in line.text for line in log.lines),
                    what="last output in the log pane")

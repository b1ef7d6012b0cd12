"""Keyboard reach: the command palette runs every action, the footer follows focus."""

from __future__ import annotations

from typing import Any

from lark_tui.screens.help import HelpScreen
from lark_tui.screens.jobs import JobsScreen
from tests.tui.conftest import make_app, settle, until
from tests.tui.fakes import FakeData, FakeSupervisor


async def test_palette_runs_a_dashboard_action() -> None:
    data = FakeData()
    app = make_app(data)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for title in ("Start workers", "Failed jobs", "Pause/resume queue", "Retry all failed",
                      "Scale up", "Scale down", "Stop worker", "Restart worker", "Go to job",
                      "Dispatch job", "Follow log on/off", "Help", "Quit"):
            assert title in titles
        await pilot.press("ctrl+p", *"Pause/resume queue")
        await pilot.pause(0.4)
        await pilot.press("enter")
        await until(pilot, lambda: ("set_paused", ("default", True)) in data.calls,
                    what="pause through the palette")


async def test_footer_shows_the_keys_of_the_focused_panel() -> None:
    app = make_app(supervisor=FakeSupervisor())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        shown = {b.binding.description for b in app.screen.active_bindings.values()
                 if b.binding.show}
        assert {"Pause", "Retry all"} <= shown and "Stop" not in shown
        await pilot.press("tab")
        shown = {b.binding.description for b in app.screen.active_bindings.values()
                 if b.binding.show}
        assert {"Stop", "Restart", "More", "Fewer"} <= shown and "Pause" not in shown


async def open_failed_jobs(pilot: Any, app: Any) -> None:
    await settle(pilot)
    await pilot.press("down", "down", "f")
    await until(pilot, lambda: isinstance(app.screen, JobsScreen))
    await settle(pilot)


async def test_job_keys_hide_where_they_do_not_apply() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_failed_jobs(pilot, app)
        screen = app.screen
        assert screen.check_action("retry", ()) and not screen.check_action("promote", ())
        await pilot.press("4")  # delayed
        assert screen.check_action("promote", ()) and not screen.check_action("retry", ())


async def test_help_lists_every_screen_s_keys() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        sections = dict(app.screen.sections())
        assert ("s", "Start workers") in sections["Dashboard"]
        assert ("g", "Go to job") in sections["Everywhere"]
        jobs = sections["Jobs list (enter or f on a queue)"]
        for row in (("P", "Promote"), ("R", "Retry all"), ("[", "Prev page"), ("enter", "Open")):
            assert row in jobs
        assert ("c", "Copy id") in sections["Job detail (enter on a job, or g)"]
        assert "Dashboard" in sections  # the screen underneath, once
        assert len([t for t in sections if t.startswith("Dashboard")]) == 1
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_jobs_footer_shows_open_and_paging() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_failed_jobs(pilot, app)
        shown = {b.binding.description for b in app.screen.active_bindings.values()
                 if b.binding.show}
        assert {"Open", "Prev page", "Next page", "Retry", "Delete"} <= shown


async def test_zoom_gives_the_focused_panel_the_screen_and_keeps_the_status_line() -> None:
    app = make_app(supervisor=FakeSupervisor())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        workers = app.screen.query_one("#workers")
        normal = workers.region.height
        await pilot.press("tab", "z")
        await pilot.pause(0.2)
        assert app.screen.maximized is workers
        assert workers.region.height >= 24 - 3 > normal  # all but the status line and footer
        assert app.screen.query_one("#status").region.height >= 1
        await pilot.press("z")
        await pilot.pause(0.2)
        assert app.screen.maximized is None and workers.region.height == normal


async def test_log_lines_wrap_again_when_the_terminal_narrows() -> None:
    from lark_tui.widgets.log_pane import LogPane

    long = ["2026-01-01 00:00:00,000 INFO    [default] " + "x" * 90 + f" line {i}"
            for i in range(5)]
    app = make_app(supervisor=FakeSupervisor(lines={1: long, 2: []}))
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        log = app.screen.query_one(LogPane)
        await until(pilot, lambda: len(log.lines) >= 5, what="lines shown")
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.3)
        assert log.virtual_size.width <= log.scrollable_content_region.width
        assert len(log.lines) >= 10  # each long line takes two rows now

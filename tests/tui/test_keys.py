"""Keyboard reach: the command palette runs every action, the footer follows focus."""

from __future__ import annotations

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


async def test_job_keys_hide_where_they_do_not_apply() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("down", "down", "f")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen))
        await settle(pilot)
        screen = app.screen
        assert screen.check_action("retry", ()) and not screen.check_action("promote", ())
        await pilot.press("4")  # delayed
        assert screen.check_action("promote", ()) and not screen.check_action("retry", ())


async def test_help_lists_the_keys_of_the_screen_underneath() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        sections = dict(app.screen.sections())
        assert ("s", "Start workers") in sections["Dashboard"]
        assert ("g", "Go to job") in sections["Everywhere"]
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)

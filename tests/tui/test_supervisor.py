"""The supervisor on stand-in processes: output drained and bounded, stops escalate, crashes kept."""

from __future__ import annotations

import os
import sys
import time

from lark_tui.supervisor import Supervisor, WorkerSpec, worker_command
from tests.tui.conftest import pids_alive

CHATTY = "import sys\nfor i in range(5000): print('line', i)\nimport time; time.sleep(30)"
STUBBORN = ("import signal, time\nsignal.signal(signal.SIGTERM, lambda *a: print('ignoring'))\n"
            "print('ready', flush=True)\ntime.sleep(60)")
GRACEFUL = ("import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
            "print('ready', flush=True)\ntime.sleep(60)")
CRASH = "import sys\nprint('starting')\nprint('boom: bad config', file=sys.stderr)\nsys.exit(3)"


def script(code: str, **options: object) -> Supervisor:
    return Supervisor([sys.executable, "-c", code], grace_s=options.pop("grace_s", 5.0),
                      **options)  # type: ignore[arg-type]


def wait(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_output_is_drained_into_a_bounded_ring() -> None:
    sup = script(CHATTY, max_lines=100)
    [key] = sup.start(["q"], 1)
    try:
        wait(lambda: sup.get(key).seq == 5000)
        lines, seq = sup.lines_since(key, 0)
        assert seq == 5000 and len(lines) == 100 and lines[-1] == "line 4999"
        assert sup.lines_since(key, 4990)[0] == [f"line {i}" for i in range(4990, 5000)]
    finally:
        sup.shutdown(timeout=5)


def test_graceful_stop_and_own_session() -> None:
    sup = script(GRACEFUL)
    [key] = sup.start(["a", "b"], 3)
    proc = sup.get(key)
    wait(lambda: proc.seq >= 1)
    assert os.getsid(proc.pid) == proc.pid  # its own session: a terminal hang-up misses it
    assert proc.popen.args[-5:] == ["--concurrency", "3", "--queue", "a", "--queue", "b"][-5:]
    sup.stop(key)
    wait(lambda: proc.exited.is_set())
    assert (proc.exit_code, proc.state) == (0, "stopped")
    assert sup.snapshot()[0].state == "stopped"


def test_stop_escalates_to_sigkill_after_the_grace_period() -> None:
    sup = script(STUBBORN, grace_s=0.2, kill_margin_s=0.3)
    [key] = sup.start(["q"], 1)
    proc = sup.get(key)
    wait(lambda: proc.seq >= 1)
    sup.stop(key)
    wait(lambda: proc.exited.is_set(), timeout=15)
    assert proc.state == "killed"
    assert any("SIGKILL" in line for line in sup.lines_since(key, 0)[0])


def test_crash_keeps_exit_code_and_last_output() -> None:
    sup = script(CRASH)
    [key] = sup.start(["q"], 1)
    wait(lambda: sup.get(key).exited.is_set())
    [row] = sup.snapshot()
    assert (row.state, row.exit_code) == ("crashed", 3)
    # the output ends with how the process ended, so the log pane says it too
    assert row.last_output[-2:] == ("boom: bad config", "[lark-tui] worker exited with code 3")


def test_a_killed_worker_says_by_which_signal() -> None:
    sup = script(GRACEFUL)
    [key] = sup.start(["q"], 1)
    proc = sup.get(key)
    wait(lambda: proc.seq >= 1)
    os.kill(proc.pid, 9)
    wait(lambda: proc.exited.is_set())
    assert (proc.state, proc.exit_code) == ("crashed", -9)
    assert sup.lines_since(key, 0)[0][-1] == ("[lark-tui] worker exited: killed by SIGKILL "
                                              "(exit code -9)")


def test_scale_restart_forget_and_shutdown() -> None:
    sup = script(GRACEFUL)
    spec = WorkerSpec(("q",), 2)
    keys = sup.scale(spec, 3)
    assert sup.running == 3
    stopped = sup.scale(spec, -2)
    assert stopped == sorted(keys, reverse=True)[:2]
    wait(lambda: sup.running == 1)
    fresh = sup.restart(keys[0])
    assert fresh is not None and fresh not in keys
    wait(lambda: sup.get(keys[0]) is None or sup.get(keys[0]).exited.is_set())
    assert sup.forget(stopped[0]) and sup.get(stopped[0]) is None
    pids = [w.pid for w in sup.all()]
    sup.shutdown(timeout=5)
    assert sup.running == 0 and pids_alive(pids) == []
    assert [w.key for w in sup.all()] == [stopped[1], fresh]  # restarted row is gone


def test_worker_command_targets_the_config() -> None:
    argv = worker_command("/srv/app/lark.config.yaml")
    assert argv[-3:] == ["worker", "--config", "/srv/app/lark.config.yaml"]


async def test_scale_down_with_a_stopped_worker_selected_stops_a_live_one() -> None:
    """The selected row's kind has none left running: '-' stops the newest live worker
    rather than saying there is nothing to scale down."""
    from tests.tui.conftest import make_app, settle, until

    sup = script(GRACEFUL)
    [first] = sup.start(["default"], 5)
    others = sup.start(["default"], 4, count=2)
    app = make_app(supervisor=sup)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("tab", "minus")  # cursor on the first row: stops it
            await until(pilot, lambda: sup.get(first).exited.is_set(), what="first stopped")
            await pilot.press("minus")  # the cursor is still on its (stopped) row
            await until(pilot, lambda: sup.get(others[1]).stop_requested,
                        what="a live worker of the other kind stopping")
            assert not sup.get(others[0]).stop_requested
    finally:
        sup.shutdown(timeout=5)

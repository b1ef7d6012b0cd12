"""Regression tests for engine bugs found by the chaos runs (``tests/chaos``)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import write_project

JOB = '''from lark_core import Job


class Noop(Job):
    async def handle(self, payload):
        return None
'''


def _start_worker(cfg: Path) -> subprocess.Popen[str]:
    code = f"from lark_core import init_queues; init_queues({str(cfg)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    for line in proc.stderr:
        if " serving " in line:
            return proc
        assert time.monotonic() < deadline, "worker did not start"
    raise AssertionError(f"worker exited early: {proc.wait()}")


def test_late_second_sigterm_still_exits_0(tmp_path: Path, redis_url: str) -> None:
    """A forced stop's second SIGTERM arriving while the stopped worker exits killed it
    by signal (exit -15): closing the event loop restored the default action."""
    cfg = write_project(tmp_path, redis_url, {"noop.py": JOB})
    for _ in range(3):
        proc = _start_worker(cfg)
        proc.send_signal(signal.SIGTERM)
        while proc.poll() is None:
            time.sleep(0.002)
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                break
        assert proc.wait(timeout=20) == 0
        assert proc.stderr is not None
        proc.stderr.close()

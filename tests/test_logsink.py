"""The worker's batching log handler: nothing lost, nothing reordered, warnings at once."""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import sys
import time

from lark_core.logsink import FLUSH_S, BatchingStreamHandler, FastFormatter


def _logger(stream: io.StringIO) -> tuple[logging.Logger, BatchingStreamHandler]:
    handler = BatchingStreamHandler(stream)
    handler.setFormatter(FastFormatter("%(asctime)s %(levelname)s %(message)s"))
    log = logging.getLogger(f"lark.test.{id(stream)}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    return log, handler


async def test_info_lines_wait_for_the_timer_and_keep_their_order() -> None:
    stream = io.StringIO()
    log, _ = _logger(stream)
    for n in range(5):
        log.info("line %d", n)
    assert stream.getvalue() == ""  # batched, not written yet
    deadline = time.monotonic() + 5
    while stream.getvalue().count("\n") < 5:
        assert time.monotonic() < deadline, "batched lines never written"
        await asyncio.sleep(FLUSH_S / 5)
    lines = stream.getvalue().splitlines()
    assert [line.rsplit(" ", 1)[-1] for line in lines] == ["0", "1", "2", "3", "4"]


async def test_a_warning_writes_everything_pending_at_once() -> None:
    stream = io.StringIO()
    log, _ = _logger(stream)
    log.info("before")
    log.warning("now")
    text = stream.getvalue()
    assert text.index("before") < text.index("now")


def test_without_a_running_loop_each_line_is_written_at_once() -> None:
    stream = io.StringIO()
    log, _ = _logger(stream)
    log.info("from a thread or plain code")
    assert "from a thread or plain code" in stream.getvalue()


def test_the_time_reads_as_the_default_formatter_writes_it() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert FastFormatter("%(asctime)s").format(record) == logging.Formatter("%(asctime)s").format(record)


def test_lines_pending_at_exit_are_written() -> None:
    code = ("import asyncio, logging, sys\n"
            "from lark_core.serve import setup_logging\n"
            "setup_logging()\n"
            "async def main():\n"
            "    for n in range(3):\n"
            "        logging.getLogger('lark.worker').info('pending %d', n)\n"
            "asyncio.run(main())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [line.rsplit(" ", 1)[-1] for line in out.stderr.splitlines()] == ["0", "1", "2"]

"""The worker's log handler: per-job lines written in batches, warnings at once.

A busy worker logs two lines a job (started, done). Written one by one, each is a
write to stderr, and on a no-op job that was a quarter of the worker's CPU. Lines
below WARNING wait at most ``FLUSH_S`` on the event loop's timer; a WARNING or worse,
a line from a thread without a running loop, and the interpreter's exit
(``logging.shutdown``) write everything pending, in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TextIO

FLUSH_S = 0.05
MAX_PENDING = 256


class FastFormatter(logging.Formatter):
    """``%(asctime)s`` as the default formatter writes it, the date part made once a second."""

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self._second = -1
        self._prefix = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
        return f"{self._prefix},{int(record.msecs):03d}"


def lighten_records() -> None:
    """Skip what a LogRecord gathers that the worker's format never prints (the caller's
    frame, thread and process names): the logging HOWTO's "Optimization" settings."""
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._armed = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING or len(self._lines) >= MAX_PENDING or not self._defer():
            self.flush()

    def _defer(self) -> bool:
        """Arm the flush timer on this thread's running loop; False when there is none."""
        if self._armed:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        loop.call_later(FLUSH_S, self._timed_flush)
        self._armed = True
        return True

    def _timed_flush(self) -> None:
        # on the loop's thread, the only one that arms the timer
        self._armed = False
        self.flush()

    def flush(self) -> None:
        self.acquire()
        try:
            if self._lines:
                text, self._lines = "".join(self._lines), []
                self.stream.write(text)
            if self.stream and hasattr(self.stream, "flush"):
                self.stream.flush()
        except Exception:
            self._lines = []
        finally:
            self.release()

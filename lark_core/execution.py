"""Running one claimed job: resolve options, call the handler, build its acknowledgement."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from lark_core import options as opts_mod
from lark_core.backoff import retry_delay_ms
from lark_core.discovery import JobRegistry
from lark_core.errors import JobTimeout, UnrecoverableError
from lark_core.job import Job
from lark_core.serialization import dumps, utf8_safe
from lark_core.settings import JobOptions

log = logging.getLogger("lark.worker")

STACK_LIMIT = 16_000
REASON_LIMIT = 2_000
LOG_LINE_LIMIT = 8_192


@dataclass
class Claim:
    """One job as the claim script handed it to this worker."""

    id: str
    name: str
    data: str
    opts: str
    attempt: int
    stalled_count: int
    priority: int
    timestamp: int
    token: str
    queue: str
    lost: bool = False
    logs: list[str] = field(default_factory=list)
    #: what is wrong with the stored record (the job then fails with it as the reason)
    corrupt: str | None = None

    @classmethod
    def parse(cls, queue: str, reply: list[Any]) -> list[Claim]:
        """Never raises: a record altered by hand becomes a claim marked ``corrupt``."""
        out = []
        for i in range(2, len(reply), 9):
            r = reply[i:i + 9]
            bad: list[str] = []

            def num(value: Any, name: str, bad: list[str] = bad) -> int:
                try:
                    return int(float(value or 0))
                except (TypeError, ValueError, OverflowError):
                    bad.append(f"field {name!r} is not a number ({value!r})")
                    return 0

            claim = cls(id=r[0], name=r[1] or "", data=r[2], opts=r[3], attempt=num(r[4], "atm"),
                        stalled_count=num(r[5], "stc"), priority=num(r[6], "prio"),
                        timestamp=num(r[7], "ts"), token=r[8], queue=queue)
            if not claim.name:
                bad.insert(0, "no job name (field 'name' is missing)")
            claim.corrupt = "; ".join(bad) or None
            out.append(claim)
        return out


@dataclass(frozen=True)
class Outcome:
    """What the finish script is told about one try."""

    code: str  # 'c' completed | 'f' failed for good | 'r' retry
    value: str
    stack: str = ""
    delay_ms: int = 0
    keep: tuple[int, int] = (-1, -1)
    max_attempts: int = 1

    def args(self, claim: Claim) -> list[Any]:
        return [claim.id, claim.token, self.code, self.value, self.stack, self.delay_ms, *self.keep,
                self.max_attempts]


def describe(exc: BaseException) -> str:
    """``Type: message`` that never raises, even for an exception that cannot be printed."""
    name = type(exc).__name__
    try:
        text = str(exc)
    except Exception as inner:
        text = f"<unprintable {name}: str() raised {type(inner).__name__}>"
    reason = f"{name}: {text}" if text else name
    return utf8_safe(reason[:REASON_LIMIT])


def format_stack(exc: BaseException) -> str:
    try:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return utf8_safe(text[-STACK_LIMIT:])
    except Exception:
        return f"<traceback unavailable for {type(exc).__name__}>"


class _Escaped(Exception):
    """A BaseException other than cancellation (KeyboardInterrupt, SystemExit, a custom one)
    raised by a handler, carried as an Exception: it fails the job instead of stopping the
    event loop (asyncio re-raises those out of the loop) or leaving the job active."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(describe(exc))
        self.exc = exc


async def _contained(aw: Awaitable[Any]) -> Any:
    try:
        return await aw
    except (Exception, asyncio.CancelledError):
        raise
    except BaseException as exc:
        raise _Escaped(exc) from exc


class RunContext:
    """The ``JobContext`` a running job sees: log lines and progress, fenced by the token."""

    def __init__(self, claim: Claim, loop: asyncio.AbstractEventLoop,
                 progress: Callable[[Claim, Any], Any], line: Callable[[str, str], str]) -> None:
        self.claim = claim
        self.job_id = claim.id
        self.attempt = claim.attempt
        self._loop = loop
        self._progress = progress
        self._line = line
        self._lock = threading.Lock()

    def log(self, level: str, message: str) -> None:
        message = utf8_safe(message)
        if len(message) > LOG_LINE_LIMIT:
            message = message[:LOG_LINE_LIMIT] + f" ...[truncated {len(message) - LOG_LINE_LIMIT} chars]"
        with self._lock:
            if len(self.claim.logs) < 1000:
                self.claim.logs.append(self._line(level, message))
        log.log(logging.getLevelName(level.upper()), "[%s] %s %s: %s",
                self.claim.queue, self.claim.name, self.claim.id, message)

    def take_logs(self) -> list[str]:
        with self._lock:
            lines, self.claim.logs = self.claim.logs, []
        return lines

    async def update_progress(self, value: Any) -> None:
        await self._progress(self.claim, value)

    def update_progress_threadsafe(self, value: Any) -> None:
        asyncio.run_coroutine_threadsafe(self._progress(self.claim, value), self._loop).result(10)


class Executor_:
    """Calls handlers; async ones on the loop, plain ``def`` ones in a thread pool."""

    def __init__(self, registry: JobRegistry, defaults: JobOptions, threads: Executor,
                 on_thread_overrun: Callable[[asyncio.Future[Any]], None]) -> None:
        self.registry = registry
        self.defaults = defaults
        self.threads = threads
        self.on_thread_overrun = on_thread_overrun

    def _bad(self, claim: Claim, reason: str) -> Outcome:
        """A try that can never succeed: failed for good, kept for inspection."""
        return Outcome("f", reason, "", 0, (-1, -1), claim.attempt)

    async def run(self, claim: Claim, context: RunContext) -> Outcome:
        if claim.corrupt:
            return self._bad(claim, f"corrupt job record: {claim.corrupt}")
        cls = self.registry.get(claim.name)
        if cls is None:
            return self._bad(claim, f"unknown job name {claim.name!r}: no Job class of that name is "
                             "registered in this worker")
        try:
            claim.data.encode("utf-8")
            payload = json.loads(claim.data)
            stored = json.loads(claim.opts or "{}")
        except (ValueError, UnicodeEncodeError) as exc:
            return self._bad(claim, "corrupt job record: payload or options are not valid UTF-8 "
                                    f"JSON ({exc})")
        if not isinstance(stored, dict):
            stored = {}
        resolved = opts_mod.resolve(stored, cls, self.defaults)
        started = time.monotonic()
        log.info("[%s] %s %s started (attempt %d/%d)", claim.queue, claim.name, claim.id,
                 claim.attempt, resolved.attempts)
        try:
            result = await self._call(cls, claim, context, payload, resolved.timeout_s)
            value = dumps(result, "return value")
        except asyncio.CancelledError:
            raise
        except _Escaped as esc:
            return self._failure(claim, esc.exc, resolved, started)
        except (Exception, SystemExit) as exc:
            return self._failure(claim, exc, resolved, started)
        ms = (time.monotonic() - started) * 1000
        log.info("[%s] %s %s done in %.0f ms", claim.queue, claim.name, claim.id, ms)
        return Outcome("c", value, "", 0, opts_mod.keep_args(resolved.remove_on_complete),
                       resolved.attempts)

    async def _call(self, cls: type[Job], claim: Claim, context: RunContext, payload: Any,
                    timeout: float | None) -> Any:
        job = cls(context)
        if inspect.iscoroutinefunction(cls.handle):
            coro = _contained(job.handle(payload))
            return await (asyncio.wait_for(coro, timeout) if timeout else coro)
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self.threads, job.handle, payload)
        if not timeout:
            return await _contained(fut)
        try:
            return await asyncio.wait_for(_contained(asyncio.shield(fut)), timeout)
        except TimeoutError:
            log.warning("[%s] %s %s: timed out after %ss; its thread cannot be stopped and keeps "
                        "a concurrency slot until it returns", claim.queue, claim.name, claim.id, timeout)
            self.on_thread_overrun(fut)
            raise JobTimeout(f"job exceeded its timeout of {timeout}s") from None

    def _failure(self, claim: Claim, exc: BaseException, resolved: opts_mod.ResolvedOptions,
                 started: float) -> Outcome:
        if isinstance(exc, TimeoutError) and not isinstance(exc, JobTimeout):
            exc = JobTimeout(f"job exceeded its timeout of {resolved.timeout_s}s")
        reason, stack = describe(exc), format_stack(exc)
        ms = (time.monotonic() - started) * 1000
        if claim.attempt < resolved.attempts and not isinstance(exc, UnrecoverableError):
            delay = retry_delay_ms(resolved.backoff, claim.attempt)
            log.warning("[%s] %s %s failed after %.0f ms (attempt %d/%d): %s; retry in %d ms",
                        claim.queue, claim.name, claim.id, ms, claim.attempt, resolved.attempts,
                        reason, delay)
            return Outcome("r", reason, stack, delay, (-1, -1), resolved.attempts)
        log.error("[%s] %s %s failed (attempt %d/%d): %s", claim.queue, claim.name, claim.id,
                  claim.attempt, resolved.attempts, reason)
        return Outcome("f", reason, stack, 0, opts_mod.keep_args(resolved.remove_on_fail),
                       resolved.attempts)

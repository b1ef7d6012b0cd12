"""The chaos run's job handlers (copied into the run's ``jobs.dir`` by the harness).

Every execution is recorded *outside* the queue, in a second redis-server that the run
never faults (``$LARK_CHAOS_RECORD_URL``), so the records survive every restart of the
queue's Redis:

    HINCRBY starts <id> 1                 how many times a handler began this job
    RPUSH   x:<id> "s|pid|token|attempt|ms|plan"     begin
    RPUSH   x:<id> "e|pid|token|attempt|ms"          returned normally
                   "f|..."                           raised (a planned failure)
                   "c|..."                           cancelled (timeout or forced stop)

``plan`` says what this execution was told to do: ``ok``, or on the job's first
execution only, ``fail`` (raise) or ``slow`` (outlive its timeout). The handler
returns ``{"pid", "tok", "n"}`` so the checker can tell which execution the queue's
record was written by.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, ClassVar

import redis
import redis.asyncio as aredis

from lark_core import Job

_URL = os.environ.get("LARK_CHAOS_RECORD_URL", "redis://127.0.0.1:1/0")
_sync_client: redis.Redis | None = None
_async_client: aredis.Redis | None = None


def _sync() -> redis.Redis:
    global _sync_client
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(_URL, decode_responses=True)
    return _sync_client


def _async() -> aredis.Redis:
    global _async_client
    if _async_client is None:
        _async_client = aredis.Redis.from_url(_URL, decode_responses=True)
    return _async_client


def _token(job: Job) -> str:
    """The lock token of this execution's claim (engine internals; '-' if unavailable)."""
    claim = getattr(getattr(job, "_context", None), "claim", None)
    return str(getattr(claim, "token", "") or "-")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _plan(payload: dict[str, Any], n: int) -> str:
    first = payload.get("first")
    return str(first) if n == 1 and first in ("fail", "slow") else "ok"


def _entry(kind: str, job: Job, tok: str, extra: str = "") -> str:
    line = f"{kind}|{os.getpid()}|{tok}|{job.attempt}|{_now_ms()}"
    return f"{line}|{extra}" if extra else line


class _ChaosAsync(Job):
    abstract: ClassVar[bool] = True

    async def handle(self, payload: dict[str, Any]) -> dict[str, Any]:
        r = _async()
        jid, tok = str(self.job_id), _token(self)
        n = int(await r.hincrby("starts", jid, 1))
        plan = _plan(payload, n)
        await r.rpush(f"x:{jid}", _entry("s", self, tok, plan))
        try:
            if plan == "slow":
                await asyncio.sleep(float(payload.get("slow_s", 2.0)))
            else:
                await asyncio.sleep(int(payload.get("ms", 0)) / 1000)
            if plan == "fail":
                raise RuntimeError(f"planned failure of {jid}")
        except asyncio.CancelledError:
            await asyncio.shield(r.rpush(f"x:{jid}", _entry("c", self, tok)))
            raise
        except RuntimeError:
            await r.rpush(f"x:{jid}", _entry("f", self, tok))
            raise
        await r.rpush(f"x:{jid}", _entry("e", self, tok))
        return {"pid": os.getpid(), "tok": tok, "n": n}


class _ChaosSync(Job):
    abstract: ClassVar[bool] = True

    def handle(self, payload: dict[str, Any]) -> dict[str, Any]:  # type: ignore[override]
        r = _sync()
        jid, tok = str(self.job_id), _token(self)
        n = int(r.hincrby("starts", jid, 1))  # type: ignore[arg-type]
        plan = "fail" if n == 1 and payload.get("first") == "fail" else "ok"
        r.rpush(f"x:{jid}", _entry("s", self, tok, plan))
        time.sleep(int(payload.get("ms", 0)) / 1000)
        if plan == "fail":
            r.rpush(f"x:{jid}", _entry("f", self, tok))
            raise RuntimeError(f"planned failure of {jid}")
        r.rpush(f"x:{jid}", _entry("e", self, tok))
        return {"pid": os.getpid(), "tok": tok, "n": n}


class AlphaAsync(_ChaosAsync):
    queue = "alpha"


class AlphaSync(_ChaosSync):
    queue = "alpha"


class BetaAsync(_ChaosAsync):
    queue = "beta"


class BetaSync(_ChaosSync):
    queue = "beta"

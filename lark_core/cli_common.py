"""Shared plumbing of the ``lark-core`` CLI: options, config lookup, errors, output.

Status and errors go to stderr, data to stdout. Every command body loads the config,
builds a ``Lark``, runs one coroutine with ``asyncio.run`` and closes the project.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import redis
import typer
from rich.console import Console
from rich.text import Text

from lark_core.config import find_config_path, load_config
from lark_core.connection import REDIS_DOWN_ERRORS
from lark_core.errors import (
    ConfigError,
    DiscoveryError,
    LarkError,
    PayloadTooLarge,
    RedisUnavailable,
    SerializationError,
    UnknownQueue,
)
from lark_core.project import Lark
from lark_core.settings import Config

T = TypeVar("T")

#: how long a one-shot command waits for Redis to answer its first PING
PING_TIMEOUT_S = 5.0
#: the width of tables written to a pipe or file
PIPED_WIDTH = 200

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", metavar="PATH", show_default=False,
                 help="Config file (else $LARK_CONFIG, else ./lark.config.yaml)."),
]
QueueOpt = Annotated[
    str | None,
    typer.Option("--queue", "-q", metavar="Q", show_default=False,
                 help="Only this queue (default: every configured queue)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
JobIdArg = Annotated[str, typer.Argument(metavar="JOB_ID", help="The job's id.")]


class UsageProblem(Exception):
    """Bad input found after parsing (bad JSON, unknown job name): exit 2."""


#: LarkErrors that mean the user asked for something malformed (exit 2, not 1)
_USAGE_ERRORS: tuple[type[Exception], ...] = (
    UsageProblem, DiscoveryError, UnknownQueue, SerializationError, PayloadTooLarge,
)


def out() -> Console:
    """The console for data (stdout); piped, tables are never cut to 80 columns."""
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else PIPED_WIDTH
    return Console(highlight=False, soft_wrap=True, emoji=False, width=width)


def err() -> Console:
    """The console for status and errors (stderr)."""
    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def note(message: str) -> None:
    """A status line on stderr (no markup interpretation)."""
    err().print(message, markup=False)


def warn(message: str) -> None:
    err().print(f"warning: {message}", markup=False, style="yellow")


def fail(message: str, code: int = 1) -> NoReturn:
    err().print(f"error: {message}", markup=False, style="red")
    raise typer.Exit(code)


def cells(*values: object) -> list[Text]:
    """Table cells shown verbatim: data may contain ``[...]``, which rich reads as markup."""
    return [v if isinstance(v, Text) else Text(str(v)) for v in values]


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str) + "\n")


# ----------------------------------------------------------------------------- errors


def _report_config_error(exc: ConfigError) -> NoReturn:
    where = getattr(exc, "config_path", None)
    if where is None:
        fail("\n".join(exc.problems), 2)
    lines = "\n".join(f"  {p}" for p in exc.problems)
    fail(f"invalid config {where}:\n{lines}", 2)


def guarded(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn Lark's exceptions into ``error: <message>`` and an exit code; no tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            _report_config_error(exc)
        except _USAGE_ERRORS as exc:
            fail(str(exc), 2)
        except LarkError as exc:
            fail(str(exc), 1)
        except redis.RedisError as exc:
            fail(f"Redis: {exc}", 1)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper


# ----------------------------------------------------------------------------- config


def config_option(ctx: typer.Context, local: Path | None) -> Path | None:
    """``--config`` after the command wins over ``--config`` before it."""
    if local is not None:
        return local
    root = ctx.find_root().obj
    return root.get("config") if isinstance(root, dict) else None


def load(ctx: typer.Context, local: Path | None) -> Config:
    """Find and load the config; warn about unknown keys; tag errors with the file."""
    path = find_config_path(config_option(ctx, local))
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        exc.config_path = str(path)  # type: ignore[attr-defined]
        raise
    for line in cfg.warnings:
        warn(f"{path}: {line}")
    return cfg


# ----------------------------------------------------------------------------- running


async def preflight(project: Lark, timeout: float = PING_TIMEOUT_S) -> None:
    """PING once, bounded, so a one-shot command fails fast naming the masked URL."""
    conn = project.connection
    client = conn.client()
    try:
        await asyncio.wait_for(client.ping(), timeout)
    except TimeoutError:
        raise RedisUnavailable(f"cannot reach Redis at {project.redis_display_url}: "
                               f"no answer within {timeout:g}s") from None
    except REDIS_DOWN_ERRORS as exc:
        raise conn.unavailable(exc) from None
    except redis.RedisError as exc:
        raise RedisUnavailable(f"Redis at {project.redis_display_url} refused PING: {exc}") from None


def run(cfg: Config, fn: Callable[[Lark], Awaitable[T]], *, ping: bool = True) -> T:
    """Build the project, run ``fn(project)`` in a fresh event loop, always close it."""
    project = Lark(cfg)

    async def main() -> T:
        try:
            if ping:
                await preflight(project)
            return await fn(project)
        finally:
            await project.close()

    return asyncio.run(main())


def queue_names(project: Lark, queue: str | None) -> list[str]:
    """The queue named by ``--queue`` (checked), else every configured queue."""
    return [project.queue(queue).name] if queue else list(project.queues)


# ----------------------------------------------------------------------------- formatting


def fmt_duration(ms: float) -> str:
    """A short human duration: ``850ms``, ``42s``, ``3m05s``, ``2h10m``, ``4d3h``."""
    if ms < 1000:
        return f"{int(ms)}ms"
    s = int(ms // 1000)
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h}h"


def now_ms() -> int:
    return int(time.time() * 1000)


def fmt_age(epoch_ms: int | None) -> str:
    return "-" if not epoch_ms else fmt_duration(max(now_ms() - epoch_ms, 0))


def fmt_time(epoch_ms: int | None) -> str:
    """Local ISO time plus how long ago (or how soon)."""
    if not epoch_ms:
        return "-"
    stamp = datetime.fromtimestamp(epoch_ms / 1000).astimezone().isoformat(timespec="seconds")
    delta = now_ms() - epoch_ms
    rel = f"{fmt_duration(delta)} ago" if delta >= 0 else f"in {fmt_duration(-delta)}"
    return f"{stamp} ({rel})"


def first_line(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"

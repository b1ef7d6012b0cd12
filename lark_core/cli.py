"""``lark-core``: the command line. A thin layer that parses and delegates to the engine.

Data goes to stdout (tables, ``--json``, ids), status and errors to stderr. Exit codes:
0 ok; 1 the operation failed (not found, wrong state, Redis unreachable, a doctor check);
2 bad usage or config. The commands live in ``cli_jobs``, ``cli_show``, ``cli_queues``,
``cli_doctor``, ``cli_init`` and ``cli_redis``; this module builds the app and runs the worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, NoReturn

import typer

from lark_core import cli_doctor, cli_init, cli_jobs, cli_queues, cli_redis, cli_show
from lark_core.cli_common import ConfigOpt, guarded, load
from lark_core.serve import run_worker, setup_logging

app = typer.Typer(
    name="lark-core",
    help="Lark: a Python job queue on Redis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
redis_app = typer.Typer(help="The project's Redis server: status, and stop (embedded only).",
                        no_args_is_help=True)


@app.callback()
def root(ctx: typer.Context, config: ConfigOpt = None) -> None:
    """Lark: a Python job queue on Redis. `--config PATH` works before or after a command."""
    ctx.obj = {"config": config}


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def _job_threads_left(wait_s: float = 1.0) -> bool:
    """Give the worker's job threads a moment to end; True if one is still running."""
    deadline = time.monotonic() + wait_s
    threads = [t for t in threading.enumerate() if t.name.startswith("lark-job")]
    for t in threads:
        t.join(max(deadline - time.monotonic(), 0))
    return any(t.is_alive() for t in threads)


def _exit(code: int) -> NoReturn:
    """A sync handler still running past its grace cannot be joined: leave without it."""
    if _job_threads_left():
        logging.shutdown()
        os._exit(code)
    raise typer.Exit(code)


def worker(
    ctx: typer.Context,
    queue: Annotated[list[str] | None, typer.Option(
        "--queue", "-q", metavar="Q", show_default=False,
        help="Serve this queue (repeatable; default: every configured queue).")] = None,
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", metavar="N", min=1, show_default=False,
        help="Jobs at once in this process.")] = None,
    lock_ms: Annotated[int | None, typer.Option(
        "--lock-ms", metavar="MS", min=100, show_default=False,
        help="Lock on an active job, in milliseconds.")] = None,
    stalled_interval_ms: Annotated[int | None, typer.Option(
        "--stalled-interval-ms", metavar="MS", min=1, show_default=False,
        help="How often to sweep for stalled jobs, in milliseconds.")] = None,
    max_stalls: Annotated[int | None, typer.Option(
        "--max-stalls", metavar="N", min=0, show_default=False,
        help="Recoveries before a stalled job is failed.")] = None,
    shutdown_grace: Annotated[float | None, typer.Option(
        "--shutdown-grace", metavar="SECONDS", min=0, show_default=False,
        help="On SIGTERM, time for in-flight jobs to finish.")] = None,
    log_level: Annotated[LogLevel, typer.Option("--log-level", metavar="LEVEL",
                                                help="debug, info, warning or error.")]
    = LogLevel.INFO,
    config: ConfigOpt = None,
) -> None:
    """Process jobs until SIGTERM/SIGINT (defaults from the config's `worker:` section)."""
    cfg = load(ctx, config)
    setup_logging(getattr(logging, log_level.value.upper()))
    code = asyncio.run(run_worker(
        config=cfg, queues=queue or None, concurrency=concurrency, lock_ms=lock_ms,
        stalled_interval_ms=stalled_interval_ms, max_stalls=max_stalls,
        shutdown_grace_s=shutdown_grace,
    ))
    _exit(code)


def _add(target: typer.Typer, fn: Callable[..., Any], name: str | None = None) -> None:
    target.command(name or fn.__name__)(guarded(fn))


for _fn in (worker, cli_jobs.dispatch, cli_queues.counts, cli_jobs.jobs, cli_show.show,
            cli_show.logs, cli_jobs.retry, cli_jobs.remove, cli_jobs.promote, cli_queues.pause,
            cli_queues.resume, cli_queues.clean, cli_queues.workers, cli_doctor.doctor,
            cli_init.init):
    _add(app, _fn)
_add(redis_app, cli_redis.status)
_add(redis_app, cli_redis.stop)
app.add_typer(redis_app, name="redis")


def main() -> None:
    """Console-script entry point (``lark-core``)."""
    app()


if __name__ == "__main__":
    main()

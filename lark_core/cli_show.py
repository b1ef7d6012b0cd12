"""``lark-core show`` and ``lark-core logs``: one job in full, and its log lines."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.table import Table

from lark_core.cli_common import (
    ConfigOpt,
    JobIdArg,
    JsonOpt,
    QueueOpt,
    cells,
    first_line,
    fmt_time,
    load,
    note,
    out,
    print_json,
    run,
)
from lark_core.project import Lark
from lark_core.record import JobRecord, JobState

FINISHED = (JobState.COMPLETED.value, JobState.FAILED.value)
FOLLOW_POLL_S = 0.5

# ----------------------------------------------------------------------------- show


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _summary_rows(rec: JobRecord) -> list[tuple[str, str]]:
    return [
        ("id", rec.id), ("name", rec.name), ("queue", rec.queue), ("state", rec.state),
        ("priority", str(rec.priority)),
        ("attempts", f"{rec.attempts_made} of {rec.max_attempts}"),
        ("stalled", str(rec.stalled_count)), ("created", fmt_time(rec.timestamp)),
        ("started", fmt_time(rec.processed_on)), ("finished", fmt_time(rec.finished_on)),
        ("due", fmt_time(rec.delay_until)),
        ("progress", "-" if rec.progress is None else json.dumps(rec.progress)),
        ("options", json.dumps(rec.options) if rec.options else "-"),
    ]


def _sections(rec: JobRecord, logs: list[str]) -> list[tuple[str, str | None]]:
    result = None if rec.return_value is None else _json_text(rec.return_value)
    return [("payload", _json_text(rec.payload)), ("return value", result),
            ("failed reason", rec.failed_reason), ("traceback", rec.stacktrace),
            ("logs", "\n".join(logs) if logs else None)]


def print_record(rec: JobRecord, logs: list[str]) -> None:
    console = out()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for key, value in _summary_rows(rec):
        grid.add_row(*cells(key, value))
    console.print(grid)
    for title, body in _sections(rec, logs):
        if body:
            console.print(f"\n[bold]{title}[/bold]")
            console.print(body, markup=False)


def show(ctx: typer.Context, job_id: JobIdArg, queue: QueueOpt = None, as_json: JsonOpt = False,
         config: ConfigOpt = None) -> None:
    """Everything about one job: payload, return value, traceback, logs."""
    cfg = load(ctx, config)

    async def fetch(project: Lark) -> tuple[JobRecord, list[str]]:
        rec = await project.find_job(job_id, queue)
        return rec, await rec.get_logs()

    rec, logs = run(cfg, fetch)
    if as_json:
        print_json({**rec.to_dict(), "logs": logs})
    else:
        print_record(rec, logs)


# ----------------------------------------------------------------------------- logs


def _emit(lines: list[str]) -> None:
    for line in lines:
        typer.echo(line)


async def follow_logs(project: Lark, rec: JobRecord, poll_s: float = FOLLOW_POLL_S) -> None:
    """Print log lines as they arrive until the job is completed or failed (or removed)."""
    q = project.queue(rec.queue)
    seen = 0
    while True:
        current = await q.get_job(rec.id)
        lines = await q.get_job_logs(rec.id, seen, -1)
        _emit(lines)
        seen += len(lines)
        if current is None:
            note(f"job {rec.id} no longer exists (removed after it finished?)")
            return
        if current.state in FINISHED:
            reason = f": {first_line(current.failed_reason)}" if current.failed_reason else ""
            note(f"job {rec.id} {current.state}{reason}")
            return
        await asyncio.sleep(poll_s)


def logs(
    ctx: typer.Context,
    job_id: JobIdArg,
    queue: QueueOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-f",
                                         help="Keep printing until the job finishes.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Print a job's log lines."""
    cfg = load(ctx, config)

    async def read(project: Lark) -> None:
        rec = await project.find_job(job_id, queue)
        if follow:
            await follow_logs(project, rec)
        else:
            _emit(await rec.get_logs())

    run(cfg, read)

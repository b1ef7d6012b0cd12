"""``lark-core`` commands about jobs: dispatch, jobs, retry, remove, promote."""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from lark_core.cli_common import (
    ConfigOpt,
    JobIdArg,
    JsonOpt,
    QueueOpt,
    UsageProblem,
    cells,
    first_line,
    fmt_age,
    fmt_duration,
    load,
    note,
    now_ms,
    out,
    print_json,
    queue_names,
    run,
    warn,
)
from lark_core.config import MAX_PRIORITY
from lark_core.discovery import discover
from lark_core.errors import DiscoveryError, LarkError
from lark_core.project import Lark
from lark_core.record import JobRecord, JobState
from lark_core.settings import Config

# ----------------------------------------------------------------------------- dispatch


def parse_payload(text: str) -> Any:
    """``--payload`` as a JSON value; NaN/Infinity are refused like the engine does."""

    def refuse(word: str) -> Any:
        raise ValueError(f"{word} is not valid JSON")

    try:
        return json.loads(text, parse_constant=refuse)
    except ValueError as exc:
        raise UsageProblem(f"--payload: invalid JSON: {exc}") from None
    except RecursionError:
        raise UsageProblem("--payload: invalid JSON: nested too deeply (recursion limit)") from None


def dispatch_queue(cfg: Config, name: str, queue: str | None) -> str:
    """The queue of job ``name``, found by discovery; ``--queue`` wins and is the fallback."""
    try:
        cls = discover(cfg).get(name)
    except DiscoveryError as exc:
        if queue is None:
            raise DiscoveryError(f"{exc}\n(pass --queue Q to dispatch by name anyway)") from None
        warn(f"job discovery failed ({exc}); dispatching {name!r} to queue {queue!r} by name")
        return queue
    if cls is None:
        if queue is None:
            raise UsageProblem(f"no job named {name!r} in {cfg.jobs.dir} "
                               "(pass --queue Q to dispatch it by name anyway)")
        warn(f"no job named {name!r} in {cfg.jobs.dir}; a worker fails it unless it knows it")
        return queue
    return queue or cls.queue


def dispatch(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Registered job name.")],
    payload: Annotated[str, typer.Option("--payload", metavar="JSON",
                                         help="Payload, a JSON value.")] = "{}",
    delay: Annotated[int, typer.Option("--delay", metavar="MS", min=0,
                                       help="Start no sooner than MS milliseconds from now.")] = 0,
    priority: Annotated[int, typer.Option("--priority", metavar="N", min=0, max=MAX_PRIORITY,
                                          help="Lower runs first.")] = 0,
    job_id: Annotated[str | None, typer.Option("--job-id", metavar="ID", show_default=False,
                                               help="Your own id (dedupes).")] = None,
    queue: Annotated[str | None, typer.Option(
        "--queue", "-q", metavar="Q", show_default=False,
        help="Queue to use (default: the job class's queue).")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Enqueue a job by name; prints its id."""
    data = parse_payload(payload)
    cfg = load(ctx, config)
    target = dispatch_queue(cfg, name, queue)

    async def add(project: Lark) -> JobRecord:
        q = project.queue(target)
        try:
            return await q.add(name, data, delay=delay, priority=priority, job_id=job_id)
        except LarkError:
            raise
        except (ValueError, TypeError) as exc:
            raise UsageProblem(str(exc)) from None

    rec = run(cfg, add)
    if as_json:
        print_json(rec.to_dict())
    else:
        typer.echo(rec.id)
        note(f"{rec.state} in queue {rec.queue!r}: {rec.name}")


# ----------------------------------------------------------------------------- jobs


_ORDER: dict[str, Callable[[JobRecord], int]] = {
    "completed": lambda r: -(r.finished_on or 0),
    "failed": lambda r: -(r.finished_on or 0),
    "delayed": lambda r: r.delay_until or 0,
    "active": lambda r: r.processed_on or 0,
    "waiting": lambda r: r.timestamp or 0,
    "paused": lambda r: r.timestamp or 0,
}


async def list_jobs(project: Lark, names: list[str], state: str, offset: int,
                    limit: int) -> list[JobRecord]:
    """One page over the queues: each list's own order kept, interleaved by time."""
    per_queue = [await project.queue(n).get_jobs(state, 0, offset + limit - 1) for n in names]
    merged = heapq.merge(*per_queue, key=_ORDER[state])
    return list(merged)[offset:offset + limit]


def _reason(rec: JobRecord) -> str:
    if rec.state == JobState.DELAYED.value and rec.delay_until:
        return f"due in {fmt_duration(max(rec.delay_until - now_ms(), 0))}"
    return first_line(rec.failed_reason)


def jobs_table(records: list[JobRecord]) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column("id", no_wrap=True)
    table.add_column("queue", no_wrap=True)
    table.add_column("name", no_wrap=True)
    table.add_column("attempts", justify="right", no_wrap=True)
    table.add_column("age", justify="right", no_wrap=True)
    table.add_column("reason", overflow="ellipsis", no_wrap=True)
    for r in records:
        table.add_row(*cells(r.id, r.queue, r.name, f"{r.attempts_made}/{r.max_attempts}",
                             fmt_age(r.timestamp), _reason(r)))
    return table


def jobs(
    ctx: typer.Context,
    state: Annotated[JobState, typer.Argument(metavar="STATE", help="waiting, active, delayed, "
                                              "completed, failed or paused.")],
    queue: QueueOpt = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", min=1, help="At most N jobs.")] = 50,
    offset: Annotated[int, typer.Option("--offset", metavar="N", min=0,
                                        help="Skip the first N jobs.")] = 0,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """List the jobs in one state."""
    cfg = load(ctx, config)

    async def page(project: Lark) -> tuple[list[JobRecord], int]:
        names = queue_names(project, queue)
        counts = await project.get_all_counts()
        total = sum(counts[n][state.value] for n in names)
        return await list_jobs(project, names, state.value, offset, limit), total

    records, total = run(cfg, page)
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    if records:
        out().print(jobs_table(records))
        note(f"{offset + 1}-{offset + len(records)} of {total} {state.value}")
    else:
        note(f"no {state.value} jobs" + (f" past offset {offset}" if offset else ""))


# ----------------------------------------------------------------------------- actions


def retry(
    ctx: typer.Context,
    job_id: Annotated[str | None, typer.Argument(metavar="JOB_ID", show_default=False,
                                                 help="The failed or completed job.")] = None,
    all_failed: Annotated[bool, typer.Option("--all", help="Every failed job.")] = False,
    queue: QueueOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Retry one failed or completed job, or every failed job (--all)."""
    if (job_id is None) == (not all_failed):
        raise UsageProblem("give either a JOB_ID or --all")
    cfg = load(ctx, config)

    async def one(project: Lark) -> JobRecord:
        rec = await project.find_job(job_id or "", queue)
        await rec.retry()
        return rec

    async def every(project: Lark) -> dict[str, int]:
        return {n: await project.queue(n).retry_failed() for n in queue_names(project, queue)}

    if job_id is not None:
        rec = run(cfg, one)
        note(f"retried job {rec.id} (queue {rec.queue!r}): queued again")
        return
    per_queue = run(cfg, every)
    typer.echo(sum(per_queue.values()))
    detail = ", ".join(f"{n}: {c}" for n, c in per_queue.items())
    note(f"retried {sum(per_queue.values())} failed job(s) ({detail})")


def remove(ctx: typer.Context, job_id: JobIdArg, queue: QueueOpt = None,
           config: ConfigOpt = None) -> None:
    """Delete a job (not while it is active) and its logs."""
    cfg = load(ctx, config)

    async def act(project: Lark) -> JobRecord:
        rec = await project.find_job(job_id, queue)
        await rec.remove()
        return rec

    rec = run(cfg, act)
    note(f"removed job {rec.id} (queue {rec.queue!r}, was {rec.state})")


def promote(ctx: typer.Context, job_id: JobIdArg, queue: QueueOpt = None,
            config: ConfigOpt = None) -> None:
    """Run a delayed job now."""
    cfg = load(ctx, config)

    async def act(project: Lark) -> JobRecord:
        rec = await project.find_job(job_id, queue)
        await rec.promote()
        return rec

    rec = run(cfg, act)
    note(f"promoted job {rec.id} (queue {rec.queue!r}): ready now")

"""``lark-core`` commands about queues and workers: counts, pause, resume, clean, workers."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from lark_core.cli_common import (
    ConfigOpt,
    JsonOpt,
    QueueOpt,
    cells,
    fmt_age,
    load,
    note,
    out,
    print_json,
    queue_names,
    run,
)
from lark_core.project import Lark
from lark_core.record import STATES
from lark_core.registry import WorkerInfo

QueueArg = Annotated[str, typer.Argument(metavar="Q", help="A configured queue.")]


class CleanState(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"


# ----------------------------------------------------------------------------- counts


def counts_table(counts: dict[str, dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column("queue", no_wrap=True)
    for state in STATES:
        table.add_column(state, justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    for name, row in counts.items():
        flag = Text("PAUSED", style="yellow") if row["is_paused"] else ""
        table.add_row(*cells(name, *(row[s] for s in STATES), flag))
    return table


def counts(ctx: typer.Context, queue: QueueOpt = None, as_json: JsonOpt = False,
           config: ConfigOpt = None) -> None:
    """Jobs per state in every queue (or one)."""
    cfg = load(ctx, config)

    async def fetch(project: Lark) -> dict[str, dict[str, Any]]:
        names = queue_names(project, queue)
        every = await project.get_all_counts()
        return {n: every[n] for n in names}

    result = run(cfg, fetch)
    if as_json:
        print_json(result)
    else:
        out().print(counts_table(result))


# ----------------------------------------------------------------------------- queue actions


def pause(ctx: typer.Context, queue: QueueArg, config: ConfigOpt = None) -> None:
    """Pause a queue for every worker (active jobs finish; nothing new starts)."""
    cfg = load(ctx, config)

    async def act(project: Lark) -> None:
        await project.queue(queue).pause()

    run(cfg, act)
    note(f"queue {queue!r} paused")


def resume(ctx: typer.Context, queue: QueueArg, config: ConfigOpt = None) -> None:
    """Resume a paused queue (paused jobs go back to waiting, in order)."""
    cfg = load(ctx, config)

    async def act(project: Lark) -> None:
        await project.queue(queue).resume()

    run(cfg, act)
    note(f"queue {queue!r} resumed")


def clean(
    ctx: typer.Context,
    queue: QueueArg,
    state: Annotated[CleanState, typer.Argument(metavar="STATE", help="completed or failed.")],
    grace: Annotated[float, typer.Option("--grace", metavar="SECONDS", min=0,
                                         help="Keep jobs that finished less than SECONDS ago."
                                         )] = 0,
    config: ConfigOpt = None,
) -> None:
    """Remove completed or failed jobs of a queue; prints how many."""
    cfg = load(ctx, config)

    async def act(project: Lark) -> int:
        return await project.queue(queue).clean(state.value, int(grace * 1000))

    removed = run(cfg, act)
    typer.echo(removed)
    note(f"removed {removed} {state.value} job(s) from queue {queue!r}")


# ----------------------------------------------------------------------------- workers


def workers_table(infos: list[WorkerInfo]) -> Table:
    table = Table(box=None, pad_edge=False)
    for title in ("id", "queues", "state", "conc", "running", "done", "failed", "up", "seen"):
        table.add_column(title, no_wrap=True,
                         justify="left" if title in ("id", "queues", "state") else "right")
    for w in infos:
        table.add_row(*cells(w.id, ",".join(w.queues), w.state, w.concurrency, len(w.current),
                             w.jobs_done, w.jobs_failed, fmt_age(w.started),
                             f"{fmt_age(w.last_seen)} ago"))
    return table


def workers(ctx: typer.Context, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Live workers from the registry (any host)."""
    cfg = load(ctx, config)

    async def fetch(project: Lark) -> list[WorkerInfo]:
        return await project.list_workers()

    infos = run(cfg, fetch)
    if as_json:
        print_json([w.to_dict() for w in infos])
    elif infos:
        out().print(workers_table(infos))
    else:
        note("no live workers (start one with `lark-core worker`)")

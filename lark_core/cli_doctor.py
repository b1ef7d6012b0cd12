"""``lark-core doctor``: the seed's troubleshooting steps as one command.

Checks, in order: the config loads; Redis answers (version, eviction policy, AOF);
job discovery; counts; live workers. Each prints ✓ (ok), ! (warning) or ✗ (failed)
with a hint; any ✗ makes the exit code 1.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import typer
from rich.text import Text

from lark_core.cli_common import ConfigOpt, load, out, preflight
from lark_core.discovery import JobRegistry, discover
from lark_core.errors import ConfigError, LarkError
from lark_core.project import Lark
from lark_core.registry import WorkerInfo
from lark_core.settings import Config

_MARKS = {"ok": "[green]✓[/green]", "warn": "[yellow]![/yellow]", "fail": "[red]✗[/red]"}


@dataclass
class Report:
    """Prints each check as it completes and remembers whether one failed."""

    failed: int = 0
    warned: int = 0
    console: Any = field(default_factory=out)

    def check(self, status: str, title: str, detail: str = "", hint: str = "") -> None:
        self.failed += status == "fail"
        self.warned += status == "warn"
        self.console.print(Text.assemble(Text.from_markup(_MARKS[status]), " ", title))
        for line in detail.splitlines():
            self.console.print(f"    {line}", markup=False)
        if hint:
            self.console.print(Text.assemble("    ", ("hint:", "dim"), " ", hint))

    def summary(self) -> None:
        if self.failed:
            self.console.print(f"\n[red]{self.failed} check(s) failed[/red], "
                               f"{self.warned} warning(s)")
        else:
            self.console.print(f"\n[green]all checks passed[/green], {self.warned} warning(s)")


# ----------------------------------------------------------------------------- config


def check_config(report: Report, ctx: typer.Context, config: Path | None) -> Config | None:
    try:
        cfg = load(ctx, config)
    except ConfigError as exc:
        where = getattr(exc, "config_path", "")
        report.check("fail", f"config {where}".strip(), "\n".join(exc.problems),
                     "fix the file, or create one with `lark-core init`")
        return None
    report.check("ok", f"config {cfg.source}",
                 f"queues: {', '.join(cfg.jobs.queues)}\njobs.dir: {cfg.jobs.dir}")
    for line in cfg.warnings:
        report.check("warn", line)
    return cfg


# ----------------------------------------------------------------------------- redis


def _pick(reply: Any, key: str) -> Any:
    """A value from an INFO/CONFIG reply, which a cluster client nests per node."""
    if not isinstance(reply, dict):
        return None
    if key in reply:
        return reply[key]
    nested = [v for v in reply.values() if isinstance(v, dict) and key in v]
    return nested[0][key] if nested else None


async def check_redis(report: Report, project: Lark) -> bool:
    cfg = project.config
    where = project.redis_display_url
    try:
        await preflight(project)
        client = project.connection.client()
        info = await client.info("server")
    except (LarkError, redis.RedisError) as exc:
        detail = str(exc)
        hint = ("see .lark/redis.log in the project folder" if cfg.redis.embedded
                else "is redis-server running? check redis.url (or REDIS_URL) in the config")
        report.check("fail", f"Redis at {where}", detail, hint)
        return False
    version = _pick(info, "valkey_version") or _pick(info, "redis_version") or "?"
    kind = "embedded redis-server" if cfg.redis.embedded else "Redis"
    report.check("ok", f"{kind} at {where}: PONG, version {version}")
    await check_durability(report, client)
    return True


async def check_durability(report: Report, client: Any) -> None:
    try:
        policy = _pick(await client.config_get("maxmemory-policy"), "maxmemory-policy")
        aof = _pick(await client.config_get("appendonly"), "appendonly")
    except redis.ResponseError as exc:
        report.check("warn", "CONFIG GET refused; cannot check eviction policy and persistence",
                     str(exc), "make sure maxmemory-policy is noeviction and AOF is on")
        return
    if policy != "noeviction":
        report.check("warn", f"maxmemory-policy is {policy}",
                     hint="set maxmemory-policy noeviction: an evicted key is a lost job")
    if aof != "yes":
        report.check("warn", "AOF persistence is off",
                     hint="set appendonly yes, or a restart loses jobs since the last snapshot")
    if policy == "noeviction" and aof == "yes":
        report.check("ok", "maxmemory-policy noeviction, AOF on")


# ----------------------------------------------------------------------------- discovery


def check_discovery(report: Report, cfg: Config) -> JobRegistry | None:
    try:
        registry = discover(cfg)
    except LarkError as exc:
        report.check("fail", "job discovery", str(exc),
                     "a worker would refuse to start; fix the file named above")
        return None
    by_queue: dict[str, list[str]] = {q: [] for q in cfg.jobs.queues}
    for name, cls in sorted(registry.jobs.items()):
        by_queue[cls.queue].append(name)
    detail = "\n".join(f"{q}: {', '.join(names) or '(no jobs)'}" for q, names in by_queue.items())
    status = "ok" if registry.jobs else "warn"
    report.check(status, f"job discovery: {len(registry)} job(s) in {cfg.jobs.dir}", detail,
                 "" if registry.jobs else "add a Job subclass to a .py file there")
    return registry


# ----------------------------------------------------------------------------- counts, workers


async def check_counts(report: Report, project: Lark) -> dict[str, dict[str, Any]]:
    counts = await project.get_all_counts()
    lines = [f"{q}: " + ", ".join(f"{c[s]} {s}" for s in c if s != "is_paused")
             + (" (PAUSED)" if c["is_paused"] else "") for q, c in counts.items()]
    report.check("ok", "counts", "\n".join(lines))
    for q, c in counts.items():
        if c["is_paused"]:
            report.check("warn", f"queue {q} is paused", hint=f"lark-core resume {q}")
    return counts


def _idle_queues(counts: dict[str, dict[str, Any]], workers: list[WorkerInfo]) -> list[str]:
    served = {q for w in workers for q in w.queues}
    return [q for q, c in counts.items() if c["waiting"] and q not in served]


async def check_workers(report: Report, project: Lark, counts: dict[str, dict[str, Any]]) -> None:
    workers = await project.list_workers()
    if not workers:
        report.check("warn", "no live workers", hint="start one: lark-core worker")
    else:
        detail = "\n".join(f"{w.id}: {', '.join(w.queues)} ({w.state}, {w.jobs_done} done)"
                           for w in workers)
        report.check("ok", f"{len(workers)} live worker(s)", detail)
    idle = _idle_queues(counts, workers)
    if idle and workers:
        report.check("warn", f"jobs waiting with no worker serving: {', '.join(idle)}",
                     hint=f"lark-core worker --queue {idle[0]}")


async def check_project(report: Report, cfg: Config) -> None:
    project = Lark(cfg)
    try:
        redis_ok = await check_redis(report, project)
        check_discovery(report, cfg)
        if redis_ok:
            counts = await check_counts(report, project)
            await check_workers(report, project, counts)
    finally:
        await project.close()


def doctor(ctx: typer.Context, config: ConfigOpt = None) -> None:
    """Check config, Redis, job discovery, counts and workers; exit 1 if a check fails."""
    report = Report()
    cfg = check_config(report, ctx, config)
    if cfg is not None:
        asyncio.run(check_project(report, cfg))
    report.summary()
    if report.failed:
        raise typer.Exit(1)

"""``lark-core redis status|stop``: the project's Redis (the managed one when embedded)."""

from __future__ import annotations

from typing import Any

import typer

from lark_core.cli_common import ConfigOpt, fail, fmt_duration, load, note, out, run
from lark_core.config import mask_url, redis_url
from lark_core.embedded import EmbeddedStatus, server_status, stop_server
from lark_core.project import Lark
from lark_core.settings import Config


def _project_dir(cfg: Config) -> Any:
    if cfg.project_dir is None:  # pragma: no cover - configs from files always have one
        fail("the config has no project folder")
    return cfg.project_dir


def _print_embedded(st: EmbeddedStatus) -> None:
    rows = [("state", f"running (pid {st.pid})" if st.running else "not running"),
            ("socket", str(st.socket_path)), ("data", str(st.data_dir))]
    if st.version:
        rows += [("version", st.version), ("memory", st.used_memory_human or "?"),
                 ("keys", "?" if st.keys is None else str(st.keys)),
                 ("uptime", fmt_duration((st.uptime_seconds or 0) * 1000))]
    console = out()
    console.print("embedded redis-server", markup=False)
    for key, value in rows:
        console.print(f"  {key:<8} {value}", markup=False)


async def _server_info(project: Lark) -> dict[str, Any]:
    info: dict[str, Any] = await project.connection.client().info("server")
    info["_dbsize"] = await project.connection.client().dbsize()
    return info


def _print_remote(url: str, info: dict[str, Any]) -> None:
    version = info.get("valkey_version") or info.get("redis_version") or "?"
    rows = [("state", "up (PONG)"), ("version", str(version)),
            ("uptime", fmt_duration(int(info.get("uptime_in_seconds") or 0) * 1000)),
            ("keys", str(info.get("_dbsize", "?")))]
    console = out()
    console.print(f"Redis at {url}", markup=False)
    for key, value in rows:
        console.print(f"  {key:<8} {value}", markup=False)


def status(ctx: typer.Context, config: ConfigOpt = None) -> None:
    """Is the project's Redis up? Exit 1 if it is not."""
    cfg = load(ctx, config)
    if cfg.redis.embedded:
        st = server_status(_project_dir(cfg))
        _print_embedded(st)
        if not st.running:
            note("it starts on demand (any lark-core command that needs it, or a worker)")
            raise typer.Exit(1)
        return
    info = run(cfg, _server_info)
    _print_remote(mask_url(redis_url(cfg.redis)), info)


def stop(ctx: typer.Context, config: ConfigOpt = None) -> None:
    """Stop the project's embedded redis-server gracefully (its data is kept)."""
    cfg = load(ctx, config)
    if not cfg.redis.embedded:
        fail(f"this project uses the Redis at {mask_url(redis_url(cfg.redis))} "
             "(redis.embedded is not set); lark-core only stops its embedded server")
    if stop_server(_project_dir(cfg)):
        note("embedded redis-server stopped (data kept in .lark/)")
    else:
        note("embedded redis-server was not running")

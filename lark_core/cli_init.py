"""``lark-core init``: scaffold ``lark.config.yaml`` and ``jobs/example.py`` in a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lark_core.cli_common import ConfigOpt, config_option, fail, note
from lark_core.config import CONFIG_FILENAME

CONFIG_TEMPLATE = """\
# Lark project config. Found by `--config PATH`, else $LARK_CONFIG, else
# ./lark.config.yaml; relative paths resolve against this file's folder.
jobs:
  queues: [default]
  dir: ./jobs
  options:                      # defaults for every job; a Job class or dispatch overrides
    removeOnComplete: {count: 1000}   # keep the newest 1000 finished jobs
    removeOnFail: false               # keep failed jobs for inspection / retry
    attempts: 3                       # TOTAL tries, first run included
    backoff: {type: exponential, delay: 1000}   # ms

redis:
  # This project's own managed redis-server, kept under .lark/ (started on demand).
  embedded: true
  # To use a Redis of your own instead, replace `embedded: true` with (not both):
  # url: ${REDIS_URL:-redis://127.0.0.1:6379/0}

worker:                         # defaults for `lark-core worker`; each has a CLI flag
  concurrency: 10
  lock_ms: 30000
  stalled_interval_ms: 30000
  max_stalls: 1
  shutdown_grace_s: 30
"""

EXAMPLE_JOB = '''\
"""An example job. Try:  lark-core dispatch Hello --payload '{"name": "world"}'"""

from lark_core import Job


class Hello(Job):
    queue = "default"
    attempts = 3

    async def handle(self, payload: dict) -> dict:
        name = payload.get("name", "world")
        self.info("saying hello to", name)
        return {"greeting": f"hello, {name}"}
'''

GITIGNORE_LINE = ".lark/"


def _target(directory: Path, config: Path | None) -> Path:
    """The config file to write: ``--config`` (a file or a folder), else DIR/lark.config.yaml."""
    if config is None:
        return directory / CONFIG_FILENAME
    return config / CONFIG_FILENAME if config.is_dir() else config


def _ensure_gitignore(project: Path) -> bool:
    """Add ``.lark/`` to the project's .gitignore; True if the file changed."""
    path = project / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if any(line.strip() in (".lark", ".lark/", "/.lark", "/.lark/") for line in text.splitlines()):
        return False
    sep = "" if not text or text.endswith("\n") else "\n"
    path.write_text(f"{text}{sep}{GITIGNORE_LINE}\n", encoding="utf-8")
    return True


def init(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Project folder.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Create a project: lark.config.yaml (embedded Redis) and jobs/example.py."""
    cfg_path = _target(directory, config_option(ctx, config)).absolute()
    example = cfg_path.parent / "jobs" / "example.py"
    existing = [p for p in (cfg_path, example) if p.exists()]
    if existing and not force:
        fail(f"{', '.join(map(str, existing))} already exist(s); pass --force to overwrite")
    example.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(CONFIG_TEMPLATE, encoding="utf-8")
    example.write_text(EXAMPLE_JOB, encoding="utf-8")
    note(f"created {cfg_path}\ncreated {example}")
    if _ensure_gitignore(cfg_path.parent):
        note(f"added {GITIGNORE_LINE} to {cfg_path.parent / '.gitignore'}")
    here = "" if cfg_path.parent == Path.cwd() else f"cd {cfg_path.parent} && "
    flag = "" if cfg_path.name == CONFIG_FILENAME else f" --config {cfg_path.name}"
    note(f"next: {here}lark-core worker{flag}   "
         f"(and in another shell: lark-core dispatch Hello{flag})")

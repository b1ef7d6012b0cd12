"""Entry points that run a worker: ``run_worker`` (async) and ``init_queues`` (blocking)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import threading
from typing import Any

from lark_core.discovery import discover
from lark_core.logsink import BatchingStreamHandler, FastFormatter, lighten_records
from lark_core.project import Lark, set_default_project
from lark_core.settings import Config
from lark_core.worker import Worker, worker_settings

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """Worker log lines on stderr, one per job event (unless the app configured logging)."""
    root = logging.getLogger()
    if not root.handlers:
        handler = BatchingStreamHandler(sys.stderr)
        handler.setFormatter(FastFormatter(LOG_FORMAT))
        lighten_records()
        root.addHandler(handler)
    logging.getLogger("lark").setLevel(level)


async def run_worker(config: Config | None = None, *, config_path: str | None = None,
                     queues: list[str] | None = None, install_signals: bool = True,
                     project: Lark | None = None, **overrides: Any) -> int:
    """Load config, discover jobs, serve the queues until SIGTERM/SIGINT (or ``stop``)."""
    project = project or Lark(config, config_path=config_path)
    if config is not None or config_path is not None:
        # dispatch() inside handlers goes to this worker's project
        set_default_project(project)
    jobs = discover(project.config)
    settings = worker_settings(project.config.worker, **overrides)
    worker = Worker(project, jobs, queues, settings)
    # the modules, config and job classes live as long as the worker: out of the cyclic
    # collector's generations, a full collection no longer walks them between two jobs;
    # and fewer, larger young collections (each job makes a few hundred short-lived objects)
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    if install_signals:
        worker.install_signal_handlers()
    logging.getLogger("lark.worker").info(
        "discovered %d job(s): %s", len(jobs), ", ".join(sorted(jobs.jobs)) or "none")
    try:
        return await worker.run()
    finally:
        await project.close()


def init_queues(config_path: str | None = None, **overrides: Any) -> int:
    """The seed's ``initQueues()``: load config, discover jobs, process until a signal."""
    setup_logging()
    code = asyncio.run(run_worker(config_path=config_path, **overrides))
    if any(t.name.startswith("lark-job") for t in threading.enumerate()):
        # a sync handler past its grace cannot be stopped; its job was put back to waiting
        logging.shutdown()
        os._exit(code)
    return code

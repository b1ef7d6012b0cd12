"""Run a worker for the demo project: the seed's ``jobs.ts`` entry point, in Python.

    python examples/worker.py          # same as `lark-core worker` in the repo root

It serves every queue in ``lark.config.yaml`` with the jobs in ``examples/jobs/`` until
SIGTERM or Ctrl-C, then lets in-flight jobs finish. (Named ``worker.py`` rather than
``jobs.py`` so that it cannot shadow the ``jobs`` package beside it.)
"""

from __future__ import annotations

import os
from pathlib import Path

from lark_core import init_queues

if __name__ == "__main__":
    # The demo's own config wherever this is started from, unless $LARK_CONFIG says otherwise.
    os.environ.setdefault("LARK_CONFIG", str(Path(__file__).resolve().parent.parent / "lark.config.yaml"))
    init_queues()

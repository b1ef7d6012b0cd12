"""Local worker processes: start, watch, stop (SIGTERM, grace, SIGKILL), reap.

Each worker is a ``lark-core worker`` OS process in its own session, so an SSH
hang-up of the console's terminal does not reach it unseen. Its stdout and
stderr are drained continuously by a reader thread into a bounded ring buffer;
the same thread reaps the process and records how it ended. All methods are
thread-safe and none blocks for long, except :meth:`Supervisor.shutdown`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from lark_tui.model import LocalWorker

MAX_LINE = 2000


def worker_command(config_path: str | Path) -> list[str]:
    """The argv prefix that starts one ``lark-core worker`` for this project."""
    script = Path(sys.executable).with_name("lark-core")
    if script.exists():
        exe = [str(script)]
    elif found := shutil.which("lark-core"):
        exe = [found]
    else:
        code = "import sys; from lark_core.cli import main; sys.exit(main())"
        exe = [sys.executable, "-c", code]
    return [*exe, "worker", "--config", str(config_path)]


def worker_env() -> dict[str, str]:
    """The environment for workers: ours, unbuffered, with ``lark_core`` importable."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    root = str(Path(__file__).resolve().parents[1])
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in parts:
        env["PYTHONPATH"] = os.pathsep.join([root, *parts])
    return env


def exit_text(code: int) -> str:
    """How a worker process ended, for the last line of its output."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker exited: killed by {name} (exit code {code})"
    return f"worker exited with code {code}"


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What to run: the queues served and the concurrency."""

    queues: tuple[str, ...]
    concurrency: int


class WorkerProcess:
    """One spawned worker: its process, its output ring buffer, how it ended."""

    def __init__(self, key: int, spec: WorkerSpec, argv: Sequence[str], cwd: str | None,
                 env: dict[str, str], started: float, max_lines: int) -> None:
        self.key = key
        self.spec = spec
        self.started = started
        self.lines: deque[tuple[int, str]] = deque(maxlen=max_lines)
        self.seq = 0
        self.stop_requested = False
        self.forget_on_exit = False
        self.exit_code: int | None = None
        self.exited = threading.Event()
        self._lock = threading.Lock()
        self.popen = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.pid = self.popen.pid
        self._ps: psutil.Process | None = None
        with contextlib.suppress(psutil.Error):
            self._ps = psutil.Process(self.pid)
            self._ps.cpu_percent(None)
        self._reader = threading.Thread(target=self._drain, name=f"lark-worker-{key}",
                                        daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        stream = self.popen.stdout
        assert stream is not None
        for raw in iter(stream.readline, b""):
            self.append(raw.decode("utf-8", "replace").rstrip("\r\n")[:MAX_LINE])
        stream.close()
        code = self.popen.wait()
        self.append(f"[lark-tui] {exit_text(code)}")
        self.exit_code = code
        self.exited.set()

    def append(self, line: str) -> None:
        with self._lock:
            self.seq += 1
            self.lines.append((self.seq, line))

    def lines_since(self, seq: int) -> tuple[list[str], int]:
        """Lines numbered after ``seq`` still in the buffer, and the newest number."""
        with self._lock:
            return [text for n, text in self.lines if n > seq], self.seq

    @property
    def state(self) -> str:
        if not self.exited.is_set():
            return "stopping" if self.stop_requested else "running"
        if self.stop_requested and self.exit_code in (0, -signal.SIGTERM):
            return "stopped"
        if self.stop_requested and self.exit_code == -signal.SIGKILL:
            return "killed"
        return "exited" if self.exit_code == 0 else "crashed"

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the worker (SIGKILL goes to its whole session)."""
        if self.exited.is_set():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if sig == signal.SIGKILL:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)

    def stats(self) -> tuple[float | None, int | None]:
        if self._ps is None or self.exited.is_set():
            return None, None
        try:
            with self._ps.oneshot():
                return self._ps.cpu_percent(None), self._ps.memory_info().rss
        except psutil.Error:
            return None, None

    def snapshot(self, tail: int = 5) -> LocalWorker:
        cpu, mem = self.stats()
        with self._lock:
            last = tuple(text for _, text in list(self.lines)[-tail:])
        return LocalWorker(
            key=self.key, pid=self.pid, queues=self.spec.queues,
            concurrency=self.spec.concurrency, state=self.state, started=self.started,
            cpu=cpu, memory=mem, exit_code=self.exit_code, last_output=last,
        )


class Supervisor:
    """The worker processes this console started, and nothing else."""

    def __init__(self, argv: Sequence[str], cwd: str | None = None,
                 env: dict[str, str] | None = None, grace_s: float = 30.0,
                 clock: Callable[[], float] = time.time, max_lines: int = 2000,
                 keep_dead: int = 20, kill_margin_s: float = 5.0) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.env = env if env is not None else worker_env()
        self.grace_s = grace_s
        #: SIGKILL comes this long after the worker's own grace period, not before
        self.kill_margin_s = kill_margin_s
        self.clock = clock
        self.max_lines = max_lines
        self.keep_dead = keep_dead
        self._workers: dict[int, WorkerProcess] = {}
        self._keys = itertools.count(1)
        self._lock = threading.Lock()

    # -- starting ---------------------------------------------------------
    def start(self, queues: Sequence[str], concurrency: int, count: int = 1) -> list[int]:
        """Start ``count`` workers serving ``queues``; returns their keys."""
        spec = WorkerSpec(tuple(queues), max(1, concurrency))
        return [self._spawn(spec) for _ in range(max(0, count))]

    def _spawn(self, spec: WorkerSpec) -> int:
        argv = [*self.argv, "--concurrency", str(spec.concurrency)]
        for q in spec.queues:
            argv += ["--queue", q]
        key = next(self._keys)
        proc = WorkerProcess(key, spec, argv, self.cwd, self.env, self.clock(), self.max_lines)
        with self._lock:
            self._workers[key] = proc
            self._prune()
        return key

    def _prune(self) -> None:
        dead = [k for k, w in self._workers.items() if w.exited.is_set()]
        for key in [k for k in dead if self._workers[k].forget_on_exit]:
            del self._workers[key]
        dead = [k for k in dead if k in self._workers]
        for key in dead[: max(0, len(dead) - self.keep_dead)]:
            del self._workers[key]

    # -- stopping ---------------------------------------------------------
    def stop(self, key: int) -> None:
        """Stop one worker gracefully: SIGTERM now, SIGKILL after the grace period."""
        proc = self.get(key)
        if proc is None or proc.exited.is_set() or proc.stop_requested:
            return
        proc.stop_requested = True
        proc.signal(signal.SIGTERM)
        threading.Thread(target=self._escalate, args=(proc,), daemon=True).start()

    def _escalate(self, proc: WorkerProcess) -> None:
        limit = self.grace_s + self.kill_margin_s
        if not proc.exited.wait(limit):
            proc.append(f"[lark-tui] no exit {limit:.0f}s after SIGTERM: SIGKILL")
            proc.signal(signal.SIGKILL)

    def restart(self, key: int) -> int | None:
        """Stop ``key`` gracefully and start a fresh worker with the same spec."""
        proc = self.get(key)
        if proc is None:
            return None
        proc.forget_on_exit = True
        if proc.exited.is_set():
            with self._lock:
                self._workers.pop(key, None)
        else:
            self.stop(key)
        return self._spawn(proc.spec)

    def scale(self, spec: WorkerSpec, delta: int) -> list[int]:
        """Add ``delta`` workers like ``spec``, or stop ``-delta`` of them (newest first)."""
        if delta > 0:
            return [self._spawn(spec) for _ in range(delta)]
        alike = [w for w in self.alive() if w.spec == spec and not w.stop_requested]
        victims = sorted(alike, key=lambda w: w.key, reverse=True)[:-delta]
        for w in victims:
            self.stop(w.key)
        return [w.key for w in victims]

    def forget(self, key: int) -> bool:
        """Drop a finished worker's row; a live one is kept."""
        with self._lock:
            proc = self._workers.get(key)
            if proc is None or not proc.exited.is_set():
                return False
            del self._workers[key]
            return True

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop every live worker gracefully and wait; SIGKILL stragglers at the deadline."""
        for proc in self.alive():
            self.stop(proc.key)
        limit = self.grace_s + self.kill_margin_s
        deadline = time.monotonic() + (limit if timeout is None else timeout)
        for proc in self.all():
            proc.exited.wait(max(0.0, deadline - time.monotonic()))
        for proc in self.alive():
            proc.signal(signal.SIGKILL)
            proc.exited.wait(5)

    # -- reading ----------------------------------------------------------
    def get(self, key: int) -> WorkerProcess | None:
        with self._lock:
            return self._workers.get(key)

    def all(self) -> list[WorkerProcess]:
        with self._lock:
            self._prune()
            return list(self._workers.values())

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.all() if not w.exited.is_set()]

    @property
    def running(self) -> int:
        return len(self.alive())

    def snapshot(self) -> tuple[LocalWorker, ...]:
        return tuple(w.snapshot() for w in self.all())

    def lines_since(self, key: int, seq: int) -> tuple[list[str], int]:
        proc = self.get(key)
        return ([], seq) if proc is None else proc.lines_since(seq)

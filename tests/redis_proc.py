"""Throwaway redis-server processes for the test suite (never the developer's Redis)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_binary() -> str | None:
    return shutil.which("redis-server") or shutil.which("valkey-server")


@dataclass
class RedisProc:
    """One redis-server on a loopback port with its data in a temp folder.

    ``stop()`` and ``start()`` keep the port and the data folder, so tests can
    restart Redis under running workers.
    """

    port: int = field(default_factory=free_port)
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lark-redis-")))
    appendfsync: str = "everysec"
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def args(self) -> list[str]:
        binary = redis_binary()
        assert binary, "redis-server not found"
        return [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--save", "", "--appendonly", "yes", "--appendfsync", self.appendfsync,
            "--daemonize", "no", "--logfile", str(self.dir / "redis.log"), *self.extra_args,
        ]

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                except redis.exceptions.BusyLoadingError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, graceful: bool = True) -> None:
        if self.proc is None:
            return
        if graceful:
            try:
                client = redis.Redis(port=self.port, socket_connect_timeout=1)
                client.shutdown(nosave=False)
            except (redis.ConnectionError, redis.ResponseError):
                pass
        else:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        self.stop(graceful=False)

    def cleanup(self) -> None:
        self.stop(graceful=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)


def require_redis() -> None:
    """Skip locally when no redis-server exists; fail under CI."""
    import pytest

    if redis_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is required under CI")
        pytest.skip("redis-server not installed")

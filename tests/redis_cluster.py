"""A throwaway 3-master Redis Cluster on loopback ports, for the cluster tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.redis_proc import free_port, redis_binary


def redis_cli_binary() -> str | None:
    return shutil.which("redis-cli") or shutil.which("valkey-cli")


@dataclass
class RedisClusterProc:
    """Three ``cluster-enabled`` redis-servers joined with ``redis-cli --cluster create``."""

    size: int = 3
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lark-cluster-")))
    ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """A URL naming one node (what ``redis.url`` holds with ``cluster: true``)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def _node_args(self, port: int) -> list[str]:
        binary = redis_binary()
        assert binary, "redis-server not found"
        node_dir = self.dir / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        return [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir),
            "--cluster-enabled", "yes", "--cluster-config-file", str(node_dir / "nodes.conf"),
            "--cluster-node-timeout", "2000", "--appendonly", "no", "--save", "",
            "--daemonize", "no", "--logfile", str(node_dir / "redis.log"),
        ]

    def start(self, timeout: float = 20.0) -> None:
        self.ports = self._distinct_ports()
        for port in self.ports:
            self.procs.append(subprocess.Popen(self._node_args(port), stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + timeout
        for port in self.ports:
            self._wait_ping(port, deadline)
        cli = redis_cli_binary()
        assert cli, "redis-cli not found"
        create = subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=timeout)
        if create.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{create.stdout}{create.stderr}")
        for port in self.ports:
            self._wait_cluster_ok(port, deadline)

    def _distinct_ports(self) -> list[int]:
        # a cluster node also listens on port + 10000 (the cluster bus); keep both free
        ports: list[int] = []
        while len(ports) < self.size:
            p = free_port()
            if p < 55535 and p not in ports:
                ports.append(p)
        return ports

    def _wait_ping(self, port: int, deadline: float) -> None:
        client = redis.Redis(port=port, socket_connect_timeout=0.5)
        try:
            while True:
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster node on port {port} did not start")
                time.sleep(0.02)
        finally:
            client.close()

    def _wait_cluster_ok(self, port: int, deadline: float) -> None:
        client = redis.Redis(port=port, decode_responses=True)
        try:
            while True:
                info = client.execute_command("CLUSTER", "INFO")
                text = info if isinstance(info, str) else str(info)
                if "cluster_state:ok" in text:
                    slots = client.execute_command("CLUSTER", "SLOTS")
                    if sum(int(s[1]) - int(s[0]) + 1 for s in slots) == 16384:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster did not reach cluster_state:ok:\n{text}")
                time.sleep(0.05)
        finally:
            client.close()

    def node_clients(self) -> list[redis.Redis]:
        return [redis.Redis(port=p, decode_responses=True) for p in self.ports]

    def all_keys(self) -> list[str]:
        """Every key on every node (a node only answers for its own slots)."""
        keys: list[str] = []
        for c in self.node_clients():
            try:
                keys.extend(c.scan_iter(count=1000))
            finally:
                c.close()
        return keys

    def flushall(self) -> None:
        for c in self.node_clients():
            try:
                c.flushall()
                c.script_flush()
            finally:
                c.close()

    def cleanup(self) -> None:
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


def require_cluster_support() -> None:
    """Skip locally when redis-server/redis-cli are missing; fail under CI."""
    import pytest

    missing = [name for name, found in (("redis-server", redis_binary()),
                                        ("redis-cli", redis_cli_binary())) if found is None]
    if missing:
        reason = f"Redis Cluster tests need {' and '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)

"""A throwaway redis-server with TLS only and ACL users, for the TLS/ACL tests.

The certificates come from the ``openssl`` CLI: a CA, a server certificate for
127.0.0.1/localhost and a client certificate (the server asks for one), all
signed by that CA, plus a second CA that signed nothing (an "untrusted" CA).
The ACL users are the ones the README's "TLS and ACL users" section documents.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.redis_proc import free_port, redis_binary

#: the config reads the ACL user and password from these (``${VAR}`` expansion)
USER_VAR = "LARK_TEST_REDIS_USER"
PASSWORD_VAR = "LARK_TEST_REDIS_PASSWORD"
ADMIN_PASSWORD = "admin-Pw-3141"
WORKER_PASSWORD = "wrk-S3cret-7e2f"
VIEWER_PASSWORD = "vw-S3cret-9a1c"

#: a worker (and producer): Lark's keys, the commands the engine uses, nothing dangerous
WORKER_ACL = ("on >{password} resetkeys ~lark:* resetchannels -@all +@connection +@read +@write "
              "-@scripting -@dangerous +evalsha +script|load +time +info +select")
#: a read-only console: reads Lark's keys, runs no script, writes nothing
VIEWER_ACL = ("on >{password} resetkeys ~lark:* resetchannels -@all +@connection +@read "
              "-@dangerous +info +select")

_LEAF_EXT = ("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
             "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
_CA_EXT = ("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
           "subjectKeyIdentifier=hash\n")


def openssl_binary() -> str | None:
    return shutil.which("openssl")


def _openssl(*args: str, cwd: Path) -> None:
    binary = openssl_binary()
    assert binary, "openssl not found"
    subprocess.run([binary, *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _key(cwd: Path, name: str) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=cwd)


def make_ca(cwd: Path, name: str) -> None:
    """``<name>.crt``/``<name>.key``: a self-signed CA."""
    _key(cwd, name)
    (cwd / f"{name}.ext").write_text(_CA_EXT)
    _openssl("req", "-x509", "-new", "-key", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
             "-subj", f"/CN=lark test {name}", "-extensions", "v3", "-config",
             str(_req_config(cwd, name)), cwd=cwd)


def _req_config(cwd: Path, name: str) -> Path:
    path = cwd / f"{name}.cnf"
    path.write_text("[req]\ndistinguished_name=dn\n[dn]\n[v3]\n" + _CA_EXT)
    return path


def make_leaf(cwd: Path, name: str, ca: str, usage: str, san: str = "") -> None:
    """``<name>.crt``/``<name>.key`` signed by ``ca``; usage is serverAuth or clientAuth."""
    _key(cwd, name)
    _openssl("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN=lark test {name}", cwd=cwd)
    ext = _LEAF_EXT + f"extendedKeyUsage={usage}\n" + (f"subjectAltName={san}\n" if san else "")
    (cwd / f"{name}.ext").write_text(ext)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
             cwd=cwd)


@dataclass
class TLSRedis:
    """redis-server with ``port 0`` and a TLS port, ``default`` user off, ACL users set."""

    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lark-tls-")))
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def file(self, name: str) -> str:
        return str(self.dir / name)

    def url(self, user: str | None = None) -> str:
        """A ``rediss://`` URL (no password: tests pass it through config/env)."""
        auth = f"{user}@" if user else ""
        return f"rediss://{auth}127.0.0.1:{self.port}/0"

    def make_certs(self) -> None:
        make_ca(self.dir, "ca")
        make_ca(self.dir, "other-ca")
        make_leaf(self.dir, "server", "ca", "serverAuth", "IP:127.0.0.1,DNS:localhost")
        make_leaf(self.dir, "client", "ca", "clientAuth")

    def conf(self) -> str:
        return "\n".join([
            "port 0", f"tls-port {self.port}", "bind 127.0.0.1", f"dir {self.dir}",
            f"tls-cert-file {self.file('server.crt')}", f"tls-key-file {self.file('server.key')}",
            f"tls-ca-cert-file {self.file('ca.crt')}", "tls-auth-clients yes",
            "save \"\"", "appendonly no", f"logfile {self.file('redis.log')}",
            "user default off",
            f"user admin on >{ADMIN_PASSWORD} ~* &* +@all",
            "user worker " + WORKER_ACL.format(password=WORKER_PASSWORD),
            "user viewer " + VIEWER_ACL.format(password=VIEWER_PASSWORD),
            "",
        ])

    def start(self, timeout: float = 15.0) -> None:
        binary = redis_binary()
        assert binary, "redis-server not found"
        self.make_certs()
        conf = self.dir / "redis.conf"
        conf.write_text(self.conf())
        self.proc = subprocess.Popen([binary, str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.admin() as client:
                    if client.ping():
                        return
            except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                pass
            assert self.proc is not None
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = Path(self.file("redis.log"))
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise RuntimeError(f"TLS redis-server did not start on port {self.port}\n{tail}")
            time.sleep(0.02)

    def admin(self) -> redis.Redis:
        """A client as the ``admin`` user, for set-up and for checking what changed."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, username="admin", password=ADMIN_PASSWORD,
            ssl=True, ssl_ca_certs=self.file("ca.crt"), ssl_certfile=self.file("client.crt"),
            ssl_keyfile=self.file("client.key"), ssl_cert_reqs=ssl.CERT_REQUIRED,
            socket_connect_timeout=1, socket_timeout=5, decode_responses=True,
        )

    def cleanup(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def tls_supported() -> str | None:
    """Why the TLS tests cannot run here, or None when they can."""
    binary = redis_binary()
    if binary is None:
        return "redis-server not installed"
    if openssl_binary() is None:
        return "openssl CLI not installed"
    probe = subprocess.run([binary, "--port", "0", "--tls-port", "1", "--tls-cert-file", "/nonexistent",
                            "--tls-key-file", "/nonexistent", "--logfile", ""],
                           capture_output=True, text=True, timeout=10)
    if "not supported" in (probe.stdout + probe.stderr).lower() or "bad directive" in (
            probe.stdout + probe.stderr).lower():
        return f"{binary} was built without TLS support"
    return None


@contextmanager
def tls_server() -> Iterator[TLSRedis]:
    """A started :class:`TLSRedis`; skips (fails under CI) when TLS cannot run here."""
    reason = tls_supported()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    server = TLSRedis()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


def creds(user: str, password: str | None = None) -> dict[str, str]:
    """The environment that logs the project in as ``user`` (its password unless given)."""
    default = {"worker": WORKER_PASSWORD, "viewer": VIEWER_PASSWORD}[user]
    return {USER_VAR: user, PASSWORD_VAR: password or default}


def write_tls_project(root: Path, server: TLSRedis, jobs: str, queues: str = "default, emails",
                      ca: str = "ca.crt", verify: bool = True) -> Path:
    """A project on the TLS server; the user and password come from ``creds()``'s env."""
    (root / "jobs").mkdir(parents=True, exist_ok=True)
    (root / "jobs" / "demo.py").write_text(jobs)
    tls = f"    ca_file: {server.file(ca)}\n" if verify else "    verify: false\n"
    cfg = root / "lark.config.yaml"
    cfg.write_text(
        f"jobs:\n  queues: [{queues}]\n  dir: ./jobs\n"
        "  options:\n    removeOnComplete: false\n    attempts: 1\n"
        f"redis:\n  url: rediss://127.0.0.1:{server.port}/0\n"
        f"  username: ${{{USER_VAR}}}\n  password: ${{{PASSWORD_VAR}}}\n"
        f"  tls:\n{tls}    cert_file: {server.file('client.crt')}\n"
        f"    key_file: {server.file('client.key')}\n"
    )
    return cfg

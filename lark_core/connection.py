"""Redis clients for one project: built from the config, kept per running event loop."""

from __future__ import annotations

import asyncio
import functools
import ssl
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster as SyncRedisCluster
from redis.retry import Retry

from lark_core.errors import LarkError, PermissionDenied, RedisUnavailable
from lark_core.settings import Config

P = ParamSpec("P")
T = TypeVar("T")

#: Errors that mean "Redis is not there right now" (as opposed to a bad command).
REDIS_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    ConnectionError,
    OSError,
)


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that an outage handler swallowed.

    redis-py can turn a cancellation that lands while it connects (the TLS handshake,
    the AUTH reply) into a ConnectionError; a retry loop that catches that must still stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError

#: "user 'viewer' may not <operation>": the phrase per API method; others use its name
_OPERATIONS: dict[str, str] = {
    "add": "add jobs", "add_bulk": "add jobs", "retry_job": "retry jobs",
    "retry_failed": "retry jobs", "remove_job": "remove jobs", "promote_job": "promote jobs",
    "pause": "pause queues", "resume": "resume queues", "clean": "clean queues",
    "prune_metrics": "prune metrics", "get_job_counts": "read counts",
    "get_all_counts": "read counts", "overview": "read the overview",
}


def is_acl_refusal(exc: BaseException) -> bool:
    """``NOPERM``, or a script whose user may not run a command inside it."""
    return isinstance(exc, redis.exceptions.NoPermissionError) or (
        isinstance(exc, redis.exceptions.ResponseError)
        and ("NOPERM" in str(exc) or "user executing the script can't run" in str(exc)))


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind ``exc``: redis-py wraps it in a ConnectionError."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _tls_reason(exc: BaseException) -> str | None:
    """A plain sentence for a failed TLS handshake, or None when TLS is not the cause."""
    tls = _tls_error(exc)
    text = str(exc)
    if isinstance(tls, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        detail = getattr(tls, "verify_message", None) or "certificate verify failed"
        return (f"TLS: the server's certificate is not trusted ({detail}); "
                "set redis.tls.ca_file to the CA that signed it")
    if tls is not None or "[SSL" in text:
        reason = getattr(tls, "reason", None) or text
        return f"TLS handshake failed ({reason}); is that port serving TLS, with these certificates?"
    return None


def resolve_url(config: Config) -> str:
    """The URL to connect to; starts the project's managed server for ``embedded: true``."""
    if config.redis.embedded:
        from lark_core.embedded import ensure_server

        if config.project_dir is None:
            raise RedisUnavailable("redis.embedded needs a project folder (load the config from a file)")
        return ensure_server(config.project_dir)
    from lark_core.config import redis_url

    return redis_url(config.redis)


def _client_kwargs(config: Config, url: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"decode_responses": True, "protocol": 2,
                              "encoding_errors": "surrogateescape"}
    tls = config.redis.tls
    if tls is not None and not url.startswith("unix"):
        kwargs["ssl_cert_reqs"] = ssl.CERT_REQUIRED if tls.verify else ssl.CERT_NONE
        if not tls.verify:
            kwargs["ssl_check_hostname"] = False
        if tls.ca_file:
            kwargs["ssl_ca_certs"] = tls.ca_file
        if tls.cert_file:
            kwargs["ssl_certfile"] = tls.cert_file
        if tls.key_file:
            kwargs["ssl_keyfile"] = tls.key_file
    return kwargs


#: client kind -> (socket timeout s, automatic retries)
_KINDS: dict[str, tuple[float | None, int]] = {
    "default": (10.0, 2),
    "worker": (10.0, 0),
    "blocking": (None, 0),
}


#: seconds between two attempts to start a stopped embedded redis-server again
REVIVE_EVERY_S = 3.0


class Connection:
    """Lazily connects; one async client (and one blocking client) per event loop."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._url: str | None = None
        self._lock = threading.Lock()
        self._revive_lock = threading.Lock()
        self._revive_at = 0.0
        # kind -> event loop -> client
        self._stores: dict[str, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]] = {
            kind: weakref.WeakKeyDictionary() for kind in _KINDS}
        self._sync: redis.Redis | SyncRedisCluster | None = None

    @property
    def url(self) -> str:
        with self._lock:
            if self._url is None:
                self._url = resolve_url(self.config)
            return self._url

    @property
    def display_url(self) -> str:
        """The URL with any password masked: the only form that may be shown."""
        from lark_core.config import mask_url

        try:
            return mask_url(self.url)
        except Exception:
            return "<redis: not configured>"

    @property
    def username(self) -> str:
        """The ACL user Lark logs in as (``default`` when none is configured)."""
        if self.config.redis.username:
            return self.config.redis.username
        try:
            user = urlsplit(self.display_url).username
        except ValueError:
            user = None
        return unquote(user) if user else "default"

    async def revive_embedded(self) -> tuple[bool, str]:
        """Start the project's embedded redis-server again if it died (killed, crashed):
        (whether this call started it, a sentence for a log line or a banner). A server
        stopped on purpose (``lark-core redis stop``) stays stopped.

        The server is started on demand by whichever process needs it, and one that
        outlives it (a worker, the console) needs it again. At most every few seconds;
        the blocking work runs in a thread. A remote Redis is never touched: (False, '').
        """
        if not self.config.redis.embedded or self.config.project_dir is None:
            return False, ""
        return await asyncio.to_thread(self._revive, self.config.project_dir)

    def _revive(self, project_dir: Any) -> tuple[bool, str]:
        from lark_core.embedded import ensure_server, server_status, was_stopped

        with self._revive_lock:
            try:
                if server_status(project_dir).running:
                    return False, ""
                if was_stopped(project_dir):
                    return False, ("The embedded redis-server was stopped (`lark-core redis stop`); "
                                   "it is used again once a new command starts it.")
                if time.monotonic() - self._revive_at < REVIVE_EVERY_S:
                    return False, "The embedded redis-server is not running; starting it again."
                self._revive_at = time.monotonic()
                ensure_server(project_dir)
                pid = server_status(project_dir).pid
            except (LarkError, OSError) as exc:
                return False, ("The embedded redis-server (.lark/) is not running and could not "
                               f"be started: {exc}")
        return True, f"The embedded redis-server had stopped; started it again (pid {pid})."

    @property
    def is_cluster(self) -> bool:
        return self.config.redis.cluster

    def _make(self, socket_timeout: float | None, retries: int) -> Any:
        url = self.url
        kwargs = _client_kwargs(self.config, url)
        kwargs.update(socket_connect_timeout=3.0, socket_timeout=socket_timeout,
                      health_check_interval=0)
        if self.is_cluster:
            return RedisCluster.from_url(url, **kwargs)
        # the asyncio client needs the asyncio Retry: the sync one never retries an awaited call
        kwargs["retry"] = AsyncRetry(ExponentialBackoff(cap=0.5, base=0.05), retries)
        return aredis.Redis.from_url(url, **kwargs)

    def _for_loop(self, kind: str) -> Any:
        loop = asyncio.get_running_loop()
        store = self._stores[kind]
        c = store.get(loop)
        if c is None:
            socket_timeout, retries = _KINDS[kind]
            c = store[loop] = self._make(socket_timeout=socket_timeout, retries=retries)
        return c

    def client(self) -> Any:
        """The async client of the running event loop (retries reads and idempotent writes)."""
        return self._for_loop("default")

    def worker_client(self) -> Any:
        """No automatic re-send: a worker's claim pipeline must not be applied twice."""
        return self._for_loop("worker")

    def blocking_client(self) -> Any:
        """A client for blocking waits: no socket timeout, so a long BZPOPMIN is never re-sent."""
        return self._for_loop("blocking")

    def sync_client(self) -> redis.Redis | SyncRedisCluster:
        """A thread-safe sync client (``dispatch_sync``, the CLI's quick checks)."""
        with self._lock:
            if self._sync is None:
                url = self._url or resolve_url(self.config)
                self._url = url
                kwargs = _client_kwargs(self.config, url)
                kwargs.update(socket_connect_timeout=3.0, socket_timeout=10.0)
                if self.is_cluster:
                    self._sync = SyncRedisCluster.from_url(url, **kwargs)
                else:
                    kwargs["retry"] = Retry(ExponentialBackoff(cap=0.5, base=0.05), 2)
                    self._sync = redis.Redis.from_url(url, **kwargs)
            return self._sync

    async def aclose(self) -> None:
        """Close the clients of the running loop (and the sync client)."""
        loop = asyncio.get_running_loop()
        for store in self._stores.values():
            c = store.pop(loop, None)
            if c is not None:
                await c.aclose()
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    def unavailable(self, exc: BaseException) -> RedisUnavailable:
        """``exc`` as a clear message naming the masked URL: down, login refused, or TLS."""
        return RedisUnavailable(self.outage_reason(exc, prefix=True))

    def outage_reason(self, exc: BaseException, prefix: bool = False) -> str:
        """Why Redis cannot be used: a refused login, an untrusted certificate, or ``exc``."""
        url = self.display_url
        if isinstance(exc, redis.exceptions.AuthenticationError):
            reason = str(exc).rstrip(".")
            return (f"Redis at {url} refused the credentials of user {self.username!r} ({reason}); "
                    "check redis.username and redis.password")
        tls = _tls_reason(exc)
        if tls is not None:
            return f"cannot connect to Redis at {url}: {tls}"
        detail = str(exc).replace(self._url, url) if self._url else str(exc)
        return f"cannot reach Redis at {url}: {detail}" if prefix else detail

    def permission_denied(self, operation: str, exc: BaseException) -> PermissionDenied:
        """A ``NOPERM`` reply as "user 'viewer' may not pause queues (Redis ACL: ...)"."""
        return PermissionDenied(f"user {self.username!r} may not {operation} (Redis ACL: {exc})")


def translate_errors(
    fn: Callable[P, Awaitable[T]],
) -> Callable[P, Awaitable[T]]:
    """Turn a Redis outage inside a Queue method into ``RedisUnavailable`` (masked URL),
    and an ACL refusal (``NOPERM``) into ``PermissionDenied`` naming the operation."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except redis.exceptions.ResponseError as exc:
            if not is_acl_refusal(exc):
                raise
            conn: Connection = args[0].connection  # type: ignore[attr-defined]
            operation = _OPERATIONS.get(fn.__name__, fn.__name__.replace("_", " "))
            raise conn.permission_denied(operation, exc) from None
        except REDIS_DOWN_ERRORS as exc:
            conn = args[0].connection  # type: ignore[attr-defined]
            raise conn.unavailable(exc) from None

    return wrapper

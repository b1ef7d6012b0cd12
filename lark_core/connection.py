"""Redis clients for one project: built from the config, kept per running event loop."""

from __future__ import annotations

import asyncio
import functools
import ssl
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import redis
import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster as SyncRedisCluster
from redis.retry import Retry

from lark_core.errors import RedisUnavailable
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


class Connection:
    """Lazily connects; one async client (and one blocking client) per event loop."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._url: str | None = None
        self._lock = threading.Lock()
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
        detail = str(exc).replace(self._url or "\0", self.display_url) if self._url else str(exc)
        return RedisUnavailable(f"cannot reach Redis at {self.display_url}: {detail}")


def translate_errors(
    fn: Callable[P, Awaitable[T]],
) -> Callable[P, Awaitable[T]]:
    """Turn a Redis outage inside a Queue method into ``RedisUnavailable`` (masked URL)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except redis.exceptions.AuthenticationError as exc:
            conn: Connection = args[0].connection  # type: ignore[attr-defined]
            raise RedisUnavailable(
                f"Redis at {conn.display_url} refused the credentials: {exc}"
            ) from None
        except REDIS_DOWN_ERRORS as exc:
            conn = args[0].connection  # type: ignore[attr-defined]
            raise conn.unavailable(exc) from None

    return wrapper

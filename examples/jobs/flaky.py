"""``FlakyApiCall``: an upstream HTTP call that fails at random, to show retries.

Payload (every key optional)::

    {"endpoint": "/v1/orders/sync",     # only used in log lines and the result
     "failure_rate": 0.5,               # chance that one try fails, 0.0 to 1.0
     "latency_ms": [50, 400]}           # each try takes a random time in this range

Attempts and backoff come from ``jobs.options`` in ``lark.config.yaml`` (5 tries,
exponential from 1 s), so a failing call is retried after 1 s, 2 s, 4 s, 8 s; with the
default rate about 1 job in 32 ends up failed, keeping the last error.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from lark_core import Job

from ._util import require_mapping

#: What a flaky upstream says when it fails, with how often it says it.
UPSTREAM_ERRORS: list[tuple[str, float]] = [
    ("503 Service Unavailable", 0.45),
    ("502 Bad Gateway", 0.2),
    ("429 Too Many Requests", 0.2),
    ("read timeout after 5.0 s", 0.15),
]


class UpstreamError(RuntimeError):
    """The (pretend) upstream API answered with an error."""


def parse_payload(payload: Any) -> tuple[str, float, tuple[int, int]]:
    data = require_mapping(payload, "FlakyApiCall")
    endpoint = data.get("endpoint", "/v1/orders/sync")
    if not isinstance(endpoint, str) or not endpoint:
        raise ValueError(f"FlakyApiCall: 'endpoint' must be a non-empty string, got {endpoint!r}")
    rate = data.get("failure_rate", 0.5)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"FlakyApiCall: 'failure_rate' must be between 0 and 1, got {rate!r}")
    latency = data.get("latency_ms", [50, 400])
    if (
        not isinstance(latency, list)
        or len(latency) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in latency)
        or latency[0] > latency[1]
    ):
        raise ValueError(f"FlakyApiCall: 'latency_ms' must be [min, max] in milliseconds, got {latency!r}")
    return endpoint, float(rate), (latency[0], latency[1])


class FlakyApiCall(Job):
    queue = "default"
    timeout = 30

    async def handle(self, payload: Any) -> dict[str, Any]:
        endpoint, rate, (lo, hi) = parse_payload(payload)
        self.info(f"try {self.attempt}: POST {endpoint} (failure rate {rate:.0%})")
        took_ms = random.randint(lo, hi)
        await asyncio.sleep(took_ms / 1000)
        if random.random() < rate:
            reasons, weights = zip(*UPSTREAM_ERRORS, strict=True)
            reason = random.choices(reasons, weights=weights)[0]
            self.warn(f"try {self.attempt} failed after {took_ms} ms: {reason}")
            raise UpstreamError(f"POST {endpoint}: {reason}")
        self.info(f"try {self.attempt} succeeded: 200 OK in {took_ms} ms")
        return {"endpoint": endpoint, "status": 200, "tries": self.attempt, "took_ms": took_ms}

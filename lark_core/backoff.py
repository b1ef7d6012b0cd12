"""Retry delays, a pure function of the policy and the attempt that failed."""

from __future__ import annotations

from lark_core.settings import Backoff


def retry_delay_ms(backoff: Backoff | None, attempts_made: int) -> int:
    """Milliseconds to wait before the next try, after try number ``attempts_made`` failed.

    Exponential: try k (k >= 2) starts delay * 2**(k-2) after try k-1 failed,
    so the waits are d, 2d, 4d, 8d...  Fixed: d every time.
    """
    if backoff is None or backoff.delay_ms <= 0:
        return 0
    if backoff.type == "exponential":
        return int(backoff.delay_ms * 2 ** max(attempts_made - 1, 0))
    return int(backoff.delay_ms)

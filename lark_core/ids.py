"""Sortable, globally unique job ids (ULID layout: 48-bit ms time + 80 random bits)."""

from __future__ import annotations

import base64
import os
import time

#: RFC 4648 base32 digits -> Crockford base32 digits (same 5-bit values)
_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def _base32(raw: bytes) -> str:
    return base64.b32encode(raw).translate(_CROCKFORD).decode("ascii")


def new_ids(n: int) -> list[str]:
    """``n`` 26-character Crockford base32 ULIDs, chosen by the producer before the first send.

    The first 10 characters are the time in ms (the top 50 of 80 bits of ``ms << 30``), the
    other 16 encode 80 random bits (10 bytes, exactly 16 characters); one ``b32encode`` call
    covers the randomness of the whole batch.
    """
    stamp = _base32(((time.time_ns() // 1_000_000) << 30).to_bytes(10, "big"))[:10]
    rand = _base32(os.urandom(10 * n))
    return [stamp + rand[i:i + 16] for i in range(0, 16 * n, 16)]


def new_id() -> str:
    """One id (see ``new_ids``)."""
    return new_ids(1)[0]

"""JSON encoding of payloads, return values and progress (never pickle)."""

from __future__ import annotations

import json
from typing import Any

from lark_core.errors import PayloadTooLarge, SerializationError

_encoder = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any, what: str = "value") -> str:
    """Encode ``value`` as compact JSON; NaN/Infinity and non-JSON types raise SerializationError."""
    try:
        return _encoder.encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise SerializationError(f"{what} is not JSON-serialisable: {exc}") from None


def encode_payload(payload: Any, max_bytes: int) -> str:
    text = dumps({} if payload is None else payload, "payload")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise PayloadTooLarge(
            f"payload is {size} bytes encoded, over jobs.max_payload_bytes ({max_bytes})"
        )
    return text


def loads(text: str | None, default: Any = None) -> Any:
    """Decode JSON written by Lark; ``None`` or empty gives ``default``."""
    if text is None or text == "":
        return default
    return json.loads(text)

"""Two small everyday jobs.

``SyncInventory`` (queue ``high-priority``): reconcile a warehouse's stock levels with
the shop, in batches, reporting progress. Payload::

    {"warehouse": "AMS-1", "skus": 40}          # skus: how many SKUs to check (1..500)

``ResizeImage`` (queue ``default``): CPU-bound thumbnailing of an uploaded image, done
in pure Python on a synthetic greyscale bitmap (the demo ships no images). Payload::

    {"image": "uploads/avatar-1042.png", "width": 640, "height": 480, "sizes": [256, 64]}
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import zlib
from typing import Any

from lark_core import Job

from ._util import require_mapping

WAREHOUSES = ("AMS-1", "FRA-2", "DUB-1", "IAD-3", "SFO-1", "SIN-1", "GRU-1")
MAX_PIXELS = 1_000_000


def _int_field(data: dict[str, Any], key: str, default: int, lo: int, hi: int, job: str) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{job}: {key!r} must be an integer from {lo} to {hi}, got {value!r}")
    return value


class SyncInventory(Job):
    queue = "high-priority"
    timeout = 20

    async def handle(self, payload: Any) -> dict[str, Any]:
        data = require_mapping(payload, "SyncInventory")
        warehouse = data.get("warehouse", "AMS-1")
        if warehouse not in WAREHOUSES:
            raise ValueError(
                f"SyncInventory: unknown warehouse {warehouse!r}; known: {', '.join(WAREHOUSES)}"
            )
        skus = _int_field(data, "skus", 40, 1, 500, "SyncInventory")
        started = time.monotonic()
        # The whole sync takes 0.2 to 1.5 s, spread over batches of 10 SKUs.
        budget_s = random.uniform(0.2, 1.5)
        batches = max(1, -(-skus // 10))
        rng = random.Random(f"{warehouse}:{self.job_id}")
        self.info(f"syncing {skus} SKUs in {warehouse} ({batches} batches)")

        adjustments: list[dict[str, Any]] = []
        for batch in range(batches):
            await asyncio.sleep(budget_s / batches)  # the warehouse API round trip
            for n in range(batch * 10, min(skus, (batch + 1) * 10)):
                if rng.random() < 0.12:  # shop and warehouse disagree
                    delta = rng.choice([-3, -2, -1, 1, 2, 5])
                    adjustments.append({"sku": f"{warehouse}-{n + 1:04d}", "delta": delta})
            await self.update_progress(round(100 * (batch + 1) / batches))
        for adj in adjustments[:5]:
            self.debug(f"adjusted {adj['sku']} by {adj['delta']:+d}")
        took_ms = round((time.monotonic() - started) * 1000)
        self.info(f"{warehouse}: {len(adjustments)} of {skus} SKUs adjusted in {took_ms} ms")
        largest = max(adjustments, key=lambda a: abs(a["delta"]), default=None)
        return {
            "warehouse": warehouse,
            "skus_checked": skus,
            "adjusted": len(adjustments),
            "largest_adjustment": largest,
            "took_ms": took_ms,
        }


def synthetic_bitmap(name: str, width: int, height: int) -> list[bytes]:
    """A deterministic greyscale picture (rows of bytes) standing in for a decoded upload."""
    seed = zlib.crc32(name.encode("utf-8"))
    fx, fy = 3 + seed % 7, 5 + (seed >> 8) % 11
    return [
        bytes(((x * fx + y * fy + ((x ^ y) & 31) * 4 + seed) & 0xFF) for x in range(width))
        for y in range(height)
    ]


def box_downscale(rows: list[bytes], width: int, height: int, tw: int, th: int) -> bytes:
    """Area-average ``rows`` down to ``tw`` x ``th`` (the classic box filter)."""
    out = bytearray()
    for ty in range(th):
        y0, y1 = ty * height // th, max(ty * height // th + 1, (ty + 1) * height // th)
        band = rows[y0:y1]
        for tx in range(tw):
            x0, x1 = tx * width // tw, max(tx * width // tw + 1, (tx + 1) * width // tw)
            total = sum(sum(row[x0:x1]) for row in band)
            out.append(total // ((x1 - x0) * len(band)))
    return bytes(out)


class ResizeImage(Job):
    queue = "default"
    timeout = 30

    def handle(self, payload: Any) -> dict[str, Any]:
        data = require_mapping(payload, "ResizeImage")
        image = data.get("image")
        if not isinstance(image, str) or not image:
            raise ValueError(f"ResizeImage: payload needs 'image', a path; got {image!r}")
        width = _int_field(data, "width", 640, 1, 4096, "ResizeImage")
        height = _int_field(data, "height", 480, 1, 4096, "ResizeImage")
        if width * height > MAX_PIXELS:
            raise ValueError(f"ResizeImage: {width}x{height} is over {MAX_PIXELS:,} pixels")
        sizes = data.get("sizes", [256, 64])
        if (
            not isinstance(sizes, list)
            or not sizes
            or not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 2048 for s in sizes)
        ):
            raise ValueError(f"ResizeImage: 'sizes' must be a list of 1..2048, got {sizes!r}")

        started = time.monotonic()
        rows = synthetic_bitmap(image, width, height)
        thumbs = []
        for size in sizes:
            scale = min(1.0, size / max(width, height))  # fit the longer side, never upscale
            tw, th = max(1, round(width * scale)), max(1, round(height * scale))
            pixels = box_downscale(rows, width, height, tw, th)
            digest = hashlib.sha256(pixels).hexdigest()[:16]
            thumbs.append({"size": size, "width": tw, "height": th, "sha256": digest})
            self.info(f"{image}: {width}x{height} -> {tw}x{th} (sha256 {digest})")
        return {
            "image": image,
            "source": {"width": width, "height": height},
            "thumbnails": thumbs,
            "took_ms": round((time.monotonic() - started) * 1000),
        }

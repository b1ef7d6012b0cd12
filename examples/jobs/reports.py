"""``BuildSalesReport``: aggregate ``examples/data/sales.csv`` into a small report.

Payload (every key optional)::

    {"region": "EMEA",                  # one region (case-insensitive); default: all
     "from": "2024-02-01",              # inclusive ISO dates; default: the whole file
     "to": "2024-03-31",
     "format": "md",                    # "md" (Markdown) or "csv"
     "top": 5}                          # how many products the Markdown ranks

Writes ``examples/reports/sales-<region>-<from>-<to>-<job id>.<ext>`` and returns a
summary: rows, units, revenue, the top product, revenue per region and the path.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from lark_core import Job

from ._util import DATA_DIR, REPORTS_DIR, require_mapping, safe_slug, write_atomic

SALES_CSV = DATA_DIR / "sales.csv"
FORMATS = ("md", "csv")
CENTS = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Sale:
    day: date
    region: str
    product: str
    units: int
    unit_price: Decimal

    @property
    def revenue(self) -> Decimal:
        return self.unit_price * self.units


@dataclass(frozen=True, slots=True)
class Query:
    region: str | None
    start: date | None
    end: date | None
    fmt: str
    top: int

    def matches(self, sale: Sale) -> bool:
        return (
            (self.region is None or sale.region.casefold() == self.region.casefold())
            and (self.start is None or sale.day >= self.start)
            and (self.end is None or sale.day <= self.end)
        )


@dataclass(slots=True)
class Totals:
    units: int = 0
    revenue: Decimal = Decimal(0)

    def add(self, sale: Sale) -> None:
        self.units += sale.units
        self.revenue += sale.revenue


@dataclass(slots=True)
class Aggregate:
    rows: int = 0
    total: Totals = field(default_factory=Totals)
    by_region: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    by_product: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    by_pair: dict[tuple[str, str], Totals] = field(default_factory=lambda: defaultdict(Totals))
    first_day: date | None = None
    last_day: date | None = None

    def add(self, sale: Sale) -> None:
        self.rows += 1
        self.total.add(sale)
        self.by_region[sale.region].add(sale)
        self.by_product[sale.product].add(sale)
        self.by_pair[(sale.region, sale.product)].add(sale)
        self.first_day = min(self.first_day or sale.day, sale.day)
        self.last_day = max(self.last_day or sale.day, sale.day)

    def ranked_products(self) -> list[tuple[str, Totals]]:
        return sorted(self.by_product.items(), key=lambda kv: (-kv[1].revenue, kv[0]))


def _parse_date(value: Any, key: str) -> date | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"BuildSalesReport: {key!r} must be an ISO date string, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"BuildSalesReport: {key!r} must be an ISO date (YYYY-MM-DD), got {value!r}"
        ) from None


def parse_query(payload: Any) -> Query:
    data = require_mapping(payload, "BuildSalesReport")
    region = data.get("region")
    if region is not None and (not isinstance(region, str) or not region.strip()):
        raise ValueError(f"BuildSalesReport: 'region' must be a region name, got {region!r}")
    start, end = _parse_date(data.get("from"), "from"), _parse_date(data.get("to"), "to")
    if start and end and start > end:
        raise ValueError(f"BuildSalesReport: 'from' ({start}) is after 'to' ({end})")
    fmt = data.get("format", "md")
    if fmt not in FORMATS:
        raise ValueError(f"BuildSalesReport: 'format' must be one of {FORMATS}, got {fmt!r}")
    top = data.get("top", 5)
    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise ValueError(f"BuildSalesReport: 'top' must be a positive integer, got {top!r}")
    return Query(region.strip() if region else None, start, end, fmt, top)


def read_sales(path: Path) -> tuple[list[Sale], list[str]]:
    """Every well-formed row of the CSV, and a note for each row that was skipped."""
    sales: list[Sale] = []
    skipped: list[str] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for lineno, row in enumerate(csv.DictReader(fh), start=2):
            try:
                sales.append(
                    Sale(
                        day=date.fromisoformat(row["date"]),
                        region=row["region"].strip(),
                        product=row["product"].strip(),
                        units=int(row["units"]),
                        unit_price=Decimal(row["unit_price"]),
                    )
                )
            except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
                skipped.append(f"line {lineno}: {exc!r}")
    return sales, skipped


def _title(q: Query) -> str:
    return f"{q.region or 'all regions'}, {q.start or 'start'} to {q.end or 'end'}"


def _money(value: Decimal) -> str:
    return f"{value.quantize(CENTS):,}"


def render_markdown(q: Query, agg: Aggregate, title: str, job_id: str) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        f"# Sales report: {title}",
        "",
        f"_Generated {now} by job `{job_id}` from `data/sales.csv`._",
        "",
        f"- Sales rows: **{agg.rows}**",
        f"- Units sold: **{agg.total.units:,}**",
        f"- Revenue: **{_money(agg.total.revenue)}**",
        "",
        "## By region",
        "",
        "| Region | Units | Revenue | Share |",
        "|---|---:|---:|---:|",
    ]
    for region, t in sorted(agg.by_region.items(), key=lambda kv: -kv[1].revenue):
        share = t.revenue / agg.total.revenue * 100 if agg.total.revenue else Decimal(0)
        out.append(f"| {region} | {t.units:,} | {_money(t.revenue)} | {share:.1f}% |")
    out += [
        "",
        f"## Top {q.top} products",
        "",
        "| # | Product | Units | Revenue |",
        "|---:|---|---:|---:|",
    ]
    for rank, (product, t) in enumerate(agg.ranked_products()[: q.top], start=1):
        out.append(f"| {rank} | {product} | {t.units:,} | {_money(t.revenue)} |")
    if not agg.rows:
        out += ["", "_No sales matched this query._"]
    return "\n".join(out) + "\n"


def render_csv(agg: Aggregate) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["region", "product", "units", "revenue"])
    for (region, product), t in sorted(agg.by_pair.items()):
        writer.writerow([region, product, t.units, t.revenue.quantize(CENTS)])
    writer.writerow(["TOTAL", "", agg.total.units, agg.total.revenue.quantize(CENTS)])
    return buf.getvalue()


class BuildSalesReport(Job):
    queue = "reports"
    timeout = 60

    async def handle(self, payload: Any) -> dict[str, Any]:
        q = parse_query(payload)
        self.info("building sales report:", _title(q), f"({q.fmt})")
        await self.update_progress(5)

        sales, skipped = await asyncio.to_thread(read_sales, SALES_CSV)
        self.info(f"read {len(sales)} rows from {SALES_CSV.name}")
        for note in skipped[:10]:
            self.warn("skipped malformed row", note)
        if q.region:
            known = {s.region.casefold(): s.region for s in sales}
            if q.region.casefold() not in known:
                raise ValueError(
                    f"BuildSalesReport: unknown region {q.region!r}; "
                    f"known: {', '.join(sorted(known.values()))}"
                )
            q = replace(q, region=known[q.region.casefold()])  # as the data spells it
        await self.update_progress(30)

        agg = Aggregate()
        for i, sale in enumerate(sales, start=1):
            if q.matches(sale):
                agg.add(sale)
            if i % 50 == 0:  # a real warehouse query takes a moment; show it moving
                await self.update_progress(30 + int(50 * i / len(sales)))
                await asyncio.sleep(0.05)
        self.info(f"{agg.rows} rows matched: {agg.total.units} units, revenue {_money(agg.total.revenue)}")
        await self.update_progress(80)

        text = render_markdown(q, agg, _title(q), str(self.job_id)) if q.fmt == "md" else render_csv(agg)
        name = "-".join(
            [
                "sales",
                safe_slug(q.region or "all"),
                str(q.start or "start"),
                str(q.end or "end"),
                safe_slug(str(self.job_id), 64),
            ]
        )
        path = await asyncio.to_thread(write_atomic, REPORTS_DIR / f"{name}.{q.fmt}", text.encode("utf-8"))
        self.info("wrote", str(path))
        await self.update_progress(100)

        ranked = agg.ranked_products()
        top = None
        if ranked:
            name0, t0 = ranked[0]
            top = {
                "product": name0,
                "units": t0.units,
                "revenue": float(t0.revenue.quantize(CENTS)),
            }
        return {
            "rows": agg.rows,
            "units": agg.total.units,
            "revenue": float(agg.total.revenue.quantize(CENTS)),
            "top_product": top,
            "revenue_by_region": {
                r: float(t.revenue.quantize(CENTS)) for r, t in sorted(agg.by_region.items())
            },
            "period": {
                "from": agg.first_day.isoformat() if agg.first_day else None,
                "to": agg.last_day.isoformat() if agg.last_day else None,
            },
            "format": q.fmt,
            "path": str(path),
        }

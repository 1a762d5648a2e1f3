"""Import daily USD prices from CSV (``date,asset,usd``) into the ``prices`` table.

Rows for a (date, asset) already in the table are replaced by the imported ones; everything else stays.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa

from fundtrail.errors import InputError
from fundtrail.prices.book import asset_key
from fundtrail.store import GLOBAL, Workspace, writes
from fundtrail.store import schema as S


@dataclass(frozen=True, slots=True)
class PriceImportStats:
    rows: int  # rows read
    assets: tuple[str, ...]
    first: date | None
    last: date | None
    total: int  # rows in the prices table after the import
    source: str


def _parse_date(text: str, path: str, line: int) -> date:
    t = text.strip()
    try:
        if len(t) == 10:
            return date.fromisoformat(t)
        return datetime.fromisoformat(t.replace("Z", "+00:00")).date()
    except ValueError:
        raise InputError(f"{text!r} is not a date (YYYY-MM-DD)", path=path, line=line, field="date") from None


def parse_price_csv(text: str, path: str, default_asset: str | None = None) -> list[tuple[date, str, float]]:
    """Rows ``(date, asset, usd)`` of a price CSV. The header must name ``date`` and ``usd``, and ``asset``
    unless ``default_asset`` is given; other columns are ignored. Errors name the file and line."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise InputError("empty file: expected the header date,asset,usd", path=path, line=1) from None
    need = ["date", "usd"] + ([] if default_asset else ["asset"])
    missing = [c for c in need if c not in header]
    if missing:
        raise InputError(f"header {','.join(header)!r} lacks {', '.join(missing)} (expected date,asset,usd)",
                         path=path, line=1)
    i_date, i_usd = header.index("date"), header.index("usd")
    i_asset = header.index("asset") if "asset" in header else None
    seen: dict[tuple[date, str], float] = {}
    rows: list[tuple[date, str, float]] = []
    for row in reader:
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < len(header):
            raise InputError(f"{len(row)} fields, the header has {len(header)}", path=path, line=line)
        d = _parse_date(row[i_date], path, line)
        a_text = row[i_asset].strip() if i_asset is not None else ""
        if not a_text:
            if not default_asset:
                raise InputError("empty asset", path=path, line=line, field="asset")
            a_text = default_asset
        a = asset_key(a_text)
        u_text = row[i_usd].strip()
        try:
            u = float(u_text)
        except ValueError:
            raise InputError(f"{u_text!r} is not a number", path=path, line=line, field="usd") from None
        if not math.isfinite(u) or u < 0:
            raise InputError(f"{u_text!r} is not a price (a finite number >= 0)", path=path, line=line,
                             field="usd")
        prev = seen.get((d, a))
        if prev is not None and prev != u:
            raise InputError(f"{a} on {d} is listed twice with different prices ({prev} and {u})",
                             path=path, line=line)
        if prev is None:
            seen[(d, a)] = u
            rows.append((d, a, u))
    return rows


@writes("prices import")
def import_rows(ws: Workspace, rows: Iterable[tuple[date, str, float]], source: str) -> PriceImportStats:
    new = {(d, asset_key(a)): float(u) for d, a, u in rows}
    with ws.transaction() as txn:
        old = ws.read("prices", GLOBAL)
        merged: dict[tuple[date, str], tuple[float, str | None]] = {}
        for d, a, u, s in zip(old["date"].to_pylist(), old["asset"].to_pylist(), old["usd"].to_pylist(),
                              old["source"].to_pylist(), strict=True):
            merged[(d, a)] = (u, s)
        for k, u in new.items():
            merged[k] = (u, source)
        keys = sorted(merged, key=lambda k: (k[1], k[0]))
        table = pa.table({
            "date": pa.array([k[0] for k in keys], pa.date32()),
            "asset": pa.array([k[1] for k in keys], pa.string()),
            "usd": pa.array([merged[k][0] for k in keys], pa.float64()),
            "source": pa.array([merged[k][1] for k in keys], pa.string()),
        }, schema=S.schema_of("prices"))
        txn.replace("prices", GLOBAL, table if table.num_rows else None)
    days = [k[0] for k in new]
    return PriceImportStats(rows=len(new), assets=tuple(sorted({k[1] for k in new})),
                            first=min(days) if days else None, last=max(days) if days else None,
                            total=len(merged), source=source)


def import_csv(ws: Workspace, path: str | Path, *, source: str | None = None,
               default_asset: str | None = None) -> PriceImportStats:
    """Import a ``date,asset,usd`` CSV file into the workspace's ``prices`` table."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such file", path=p) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read: {e}", path=p) from None
    rows = parse_price_csv(text, str(p), default_asset=default_asset)
    return import_rows(ws, rows, source or f"csv:{p.name}")

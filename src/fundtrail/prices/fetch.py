"""``fundtrail prices fetch``: download a public daily USD price history, then import it.

The default source is CoinGecko's public ``market_chart`` endpoint (daily points for the last N days).
The URL is configurable (``--url`` or ``FUNDTRAIL_PRICES_URL``) with the placeholders ``{id}`` (the
source's coin id, e.g. ``bitcoin``), ``{asset}`` (``BTC``) and ``{days}``. The answer may be either

* CoinGecko-style JSON: ``{"prices": [[unix_ms, usd], ...]}`` — the last point of each UTC day is kept;
* CSV with the header ``date,asset,usd`` (or ``date,usd`` for the one asset asked for).
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, date, datetime

import httpx

from fundtrail.errors import FetchError, InputError, SourceTimeout, SourceUnreachable
from fundtrail.netclient import BoundedHttp, HttpLimits, check_http_url, loads_json, redact_url
from fundtrail.prices.importer import PriceImportStats, import_rows, parse_price_csv
from fundtrail.store import Workspace

DEFAULT_URL = "https://api.coingecko.com/api/v3/coins/{id}/market_chart?vs_currency=usd&days={days}&interval=daily"
COIN_IDS = {"BTC": "bitcoin", "ETH": "ethereum"}
# a daily history of a few years is well under 1 MB; same-host redirects only
PRICE_LIMITS = HttpLimits(max_bytes=32 << 20, timeout=30.0, deadline=120.0, redirects="same-host")


def _parse_json(body: bytes, asset: str, url: str) -> list[tuple[date, str, float]]:
    try:
        doc = loads_json(body)
        points = doc["prices"]
        if not isinstance(points, list):
            raise TypeError(f"'prices' is a {type(points).__name__}")
    except (ValueError, KeyError, TypeError) as e:
        raise FetchError(f"{url}: not a price history (expected JSON with 'prices': [[ms, usd], ...]): "
                         f"{str(e)[:200]}") from None
    by_day: dict[date, tuple[float, float]] = {}
    for i, pt in enumerate(points):
        try:
            ms, usd = float(pt[0]), float(pt[1])
            d = datetime.fromtimestamp(ms / 1000, UTC).date()
        except (TypeError, ValueError, IndexError, KeyError, OverflowError, OSError):
            raise InputError(f"point {i} is not [unix_ms, usd]: {str(pt)[:100]}", path=url,
                             field="prices") from None
        if d not in by_day or ms >= by_day[d][0]:
            by_day[d] = (ms, usd)
    return [(d, asset, u) for d, (_, u) in sorted(by_day.items())]


def fetch_prices(ws: Workspace, asset: str = "BTC", *, url: str | None = None, days: int = 365,
                 coin_id: str | None = None, transport: httpx.BaseTransport | None = None,
                 timeout: float = 30.0) -> PriceImportStats:
    """Download the daily USD history of ``asset`` and import it into ``prices``."""
    a = asset.strip().upper() if not asset.strip().lower().startswith("0x") else asset.strip().lower()
    cid = coin_id or COIN_IDS.get(a)
    template = url or os.environ.get("FUNDTRAIL_PRICES_URL") or DEFAULT_URL
    if "{id}" in template and cid is None:
        raise FetchError(f"no coin id known for {asset!r} (known: {', '.join(sorted(COIN_IDS))}); "
                         "pass coin_id / --coin-id or a URL without {id}")
    full = template.format(id=cid or "", asset=a, days=int(days))
    check_http_url(full, "the prices URL")
    name = redact_url(full)
    try:
        with BoundedHttp(replace(PRICE_LIMITS, timeout=timeout), source="prices fetch", transport=transport) as c:
            resp = c.request("GET", full)
    except (SourceTimeout, SourceUnreachable) as e:
        raise FetchError(f"download failed: {e}") from None
    if resp.status != 200:  # the body is not echoed: it may be anything the URL points at
        raise FetchError(f"{name}: HTTP {resp.status}")
    body = resp.body
    if "json" in resp.content_type or body.lstrip()[:1] in (b"{", b"["):
        rows = _parse_json(body, a, name)
    else:
        try:
            rows = parse_price_csv(body.decode("utf-8", errors="replace"), name, default_asset=a)
        except InputError:  # its message quotes the answer's lines: say what was wrong, not what it held
            raise FetchError(f"{name}: the answer is neither a price history JSON nor a date,asset,usd CSV") \
                from None
    if not rows:
        raise FetchError(f"{name}: the answer holds no prices")
    return import_rows(ws, rows, source=name)

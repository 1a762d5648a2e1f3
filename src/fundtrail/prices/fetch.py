"""``fundtrail prices fetch``: download a public daily USD price history, then import it.

The default source is CoinGecko's public ``market_chart`` endpoint (daily points for the last N days).
The URL is configurable (``--url`` or ``FUNDTRAIL_PRICES_URL``) with the placeholders ``{id}`` (the
source's coin id, e.g. ``bitcoin``), ``{asset}`` (``BTC``) and ``{days}``. The answer may be either

* CoinGecko-style JSON: ``{"prices": [[unix_ms, usd], ...]}`` — the last point of each UTC day is kept;
* CSV with the header ``date,asset,usd`` (or ``date,usd`` for the one asset asked for).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime

import httpx

from fundtrail.errors import FetchError, InputError
from fundtrail.prices.importer import PriceImportStats, import_rows, parse_price_csv
from fundtrail.store import Workspace

DEFAULT_URL = "https://api.coingecko.com/api/v3/coins/{id}/market_chart?vs_currency=usd&days={days}&interval=daily"
COIN_IDS = {"BTC": "bitcoin", "ETH": "ethereum"}


def _parse_json(body: bytes, asset: str, url: str) -> list[tuple[date, str, float]]:
    try:
        doc = json.loads(body)
        points = doc["prices"]
    except (ValueError, KeyError, TypeError) as e:
        raise FetchError(f"{url}: not a price history (expected JSON with 'prices': [[ms, usd], ...]): {e}") from None
    by_day: dict[date, tuple[float, float]] = {}
    for i, pt in enumerate(points):
        try:
            ms, usd = float(pt[0]), float(pt[1])
        except (TypeError, ValueError, IndexError):
            raise InputError(f"point {i} is not [unix_ms, usd]: {pt!r}", path=url, field="prices") from None
        d = datetime.fromtimestamp(ms / 1000, UTC).date()
        if d not in by_day or ms >= by_day[d][0]:
            by_day[d] = (ms, usd)
    return [(d, asset, u) for d, (_, u) in sorted(by_day.items())]


def fetch_prices(ws: Workspace, asset: str = "BTC", *, url: str | None = None, days: int = 365,
                 coin_id: str | None = None, client: httpx.Client | None = None,
                 timeout: float = 30.0) -> PriceImportStats:
    """Download the daily USD history of ``asset`` and import it into ``prices``."""
    a = asset.strip().upper() if not asset.strip().lower().startswith("0x") else asset.strip().lower()
    cid = coin_id or COIN_IDS.get(a)
    template = url or os.environ.get("FUNDTRAIL_PRICES_URL") or DEFAULT_URL
    if "{id}" in template and cid is None:
        raise FetchError(f"no coin id known for {asset!r} (known: {', '.join(sorted(COIN_IDS))}); "
                         "pass coin_id / --coin-id or a URL without {id}")
    full = template.format(id=cid or "", asset=a, days=int(days))
    own = client is None
    c = client or httpx.Client(timeout=timeout, follow_redirects=True,
                               headers={"User-Agent": "fundtrail (open-source forensics)"})
    try:
        resp = c.get(full)
    except httpx.HTTPError as e:
        raise FetchError(f"{full}: download failed: {e}") from e
    finally:
        if own:
            c.close()
    if resp.status_code != 200:
        raise FetchError(f"{full}: HTTP {resp.status_code}: {resp.text[:200]}")
    body = resp.content
    ctype = resp.headers.get("content-type", "")
    if "json" in ctype or body.lstrip()[:1] in (b"{", b"["):
        rows = _parse_json(body, a, full)
    else:
        rows = parse_price_csv(body.decode("utf-8", errors="replace"), full, default_asset=a)
    if not rows:
        raise FetchError(f"{full}: the answer holds no prices")
    return import_rows(ws, rows, source=full)

"""Prices: CSV import (with errors naming file and line), the day-exact lookup, and the fetch."""

from __future__ import annotations

import http.server
import json
import threading
from datetime import UTC, date, datetime

import httpx
import pytest

from fundtrail.errors import FetchError, InputError
from fundtrail.prices import PriceBook, fetch_prices, import_csv
from fundtrail.store import Workspace

USDT = "0xdAC17F958D2ee523a2206206994597C13D831ec7"


def _write(tmp_path, text, name="prices.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_import_and_lookup(home, tmp_path):
    ws = Workspace(home)
    p = _write(tmp_path, "date,asset,usd\n2023-02-01,BTC,23731.41\n2023-02-02,btc,23488.94\n"
                         f"2023-02-01,ETH,1641.5\n2023-02-01,{USDT},1.0\n2023-02-03,USDC,0.9998\n")
    stats = import_csv(ws, p)
    assert stats.rows == 5 and stats.first == date(2023, 2, 1) and stats.last == date(2023, 2, 3)
    assert set(stats.assets) == {"BTC", "ETH", USDT.lower(), "USDC"}
    book = PriceBook.load(Workspace(home))
    t = datetime(2023, 2, 1, 23, 59, 59, tzinfo=UTC)
    assert book.usd("bitcoin", "BTC", None, t, 150_000_000, 8) == 35597.115  # 1.5 * 23731.41
    assert book.usd("ethereum", "ETH", None, t, 2 * 10**18, 18) == 3283.0
    # token by contract address (any case), then by symbol
    assert book.usd("ethereum", USDT.lower(), "USDT", t, 5_000_000, 6) == 5.0
    assert book.usd("ethereum", "0x" + "11" * 20, "usdc", datetime(2023, 2, 3, tzinfo=UTC),
                    10_000_000, 6) == 9.998
    # the day after has no ETH price: null, never the nearest day
    assert book.usd("ethereum", "ETH", None, datetime(2023, 2, 2, tzinfo=UTC), 10**18, 18) is None
    assert book.usd("bitcoin", "BTC", None, None, 1, 8) is None
    assert book.usd("ethereum", "0x" + "22" * 20, None, t, 1, 6) is None


def test_reimport_replaces_same_day(home, tmp_path):
    ws = Workspace(home)
    import_csv(ws, _write(tmp_path, "date,asset,usd\n2023-02-01,BTC,1\n2023-02-02,BTC,2\n"))
    stats = import_csv(ws, _write(tmp_path, "asset,date,usd,source\nBTC,2023-02-02,3,x\n", "b.csv"))
    assert stats.total == 2
    book = PriceBook.load(ws)
    assert book.price(None, "BTC", None, date(2023, 2, 1)) == 1
    assert book.price(None, "BTC", None, date(2023, 2, 2)) == 3


@pytest.mark.parametrize("text,line,field,msg", [
    ("date,asset\n2023-01-01,BTC\n", 1, None, "lacks usd"),
    ("date,asset,usd\n2023-01-01,BTC,1\n2023-13-01,BTC,2\n", 3, "date", "not a date"),
    ("date,asset,usd\n2023-01-01,BTC,abc\n", 2, "usd", "not a number"),
    ("date,asset,usd\n2023-01-01,BTC,-1\n", 2, "usd", "not a price"),
    ("date,asset,usd\n2023-01-01,,1\n", 2, "asset", "empty asset"),
    ("date,asset,usd\n2023-01-01,BTC,1\n2023-01-01,BTC,2\n", 3, None, "twice"),
    ("date,asset,usd\n2023-01-01,BTC\n", 2, None, "fields"),
    ("", 1, None, "empty file"),
])
def test_csv_errors_name_file_and_line(home, tmp_path, text, line, field, msg):
    p = _write(tmp_path, text)
    with pytest.raises(InputError) as ei:
        import_csv(Workspace(home), p)
    e = ei.value
    assert e.path == str(p) and e.line == line and e.field == field
    assert msg in str(e) and str(p) in str(e) and f"line {line}" in str(e)
    assert Workspace(home).row_count("prices") == 0  # nothing half-imported


def test_missing_file(home, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        import_csv(Workspace(home), tmp_path / "nope.csv")


def _gecko(days):
    base = int(datetime(2023, 2, 1, tzinfo=UTC).timestamp() * 1000)
    pts = []
    for d in range(days):
        pts.append([base + d * 86_400_000, 20000.0 + d])
        pts.append([base + d * 86_400_000 + 3_600_000, 20000.5 + d])  # later the same day: kept
    return {"prices": pts, "market_caps": [], "total_volumes": []}


def test_fetch_with_mock_transport(home):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json=_gecko(3))

    stats = fetch_prices(Workspace(home), "BTC", days=3, transport=httpx.MockTransport(handler))
    assert seen == ["https://api.coingecko.com/api/v3/coins/bitcoin/market_chart?vs_currency=usd&days=3&interval=daily"]
    assert stats.rows == 3
    book = PriceBook.load(Workspace(home))
    assert book.price("bitcoin", "BTC", None, date(2023, 2, 2)) == 20001.5


def test_fetch_errors(home):
    client = httpx.MockTransport(lambda r: httpx.Response(429, text="rate limited"))
    with pytest.raises(FetchError, match="HTTP 429"):
        fetch_prices(Workspace(home), "ETH", transport=client)
    client = httpx.MockTransport(lambda r: httpx.Response(200, json={"x": 1}))
    with pytest.raises(FetchError, match="not a price history"):
        fetch_prices(Workspace(home), "ETH", transport=client)
    with pytest.raises(FetchError, match="no coin id"):
        fetch_prices(Workspace(home), "DOGE", transport=client)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        if self.path.startswith("/btc.csv"):
            body, ctype = b"date,usd\n2023-02-01,23731.41\n2023-02-02,23488.94\n", "text/csv"
        else:
            body, ctype = json.dumps(_gecko(2)).encode(), "application/json"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def loopback():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_fetch_from_loopback_server_csv_and_json(home, loopback):
    ws = Workspace(home)
    stats = fetch_prices(ws, "BTC", url=loopback + "/btc.csv?days={days}")
    assert stats.rows == 2 and stats.source.startswith(loopback)
    stats = fetch_prices(ws, "ETH", url=loopback + "/coins/{id}/chart")
    assert stats.rows == 2
    book = PriceBook.load(ws)
    assert book.price(None, "BTC", None, date(2023, 2, 2)) == 23488.94
    assert book.price(None, "ETH", None, date(2023, 2, 1)) == 20000.5
    rows = ws.query("SELECT asset, count(*) AS n FROM prices GROUP BY asset ORDER BY asset").to_pylist()
    assert rows == [{"asset": "BTC", "n": 2}, {"asset": "ETH", "n": 2}]

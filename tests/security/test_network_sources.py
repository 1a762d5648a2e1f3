"""Findings 8, 10 and 13 (and issue 21's RPC part): hostile JSON-RPC nodes and download sources on
127.0.0.1. Every network client has a size cap, a per-call deadline, bounded JSON depth, no cross-host
redirects, and names its source without credentials; the CLI runs under memory/CPU/time limits."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fundtrail.errors import ResponseLimitError, RpcError, SourceTimeout, UsageError
from fundtrail.ingest.bitcoin.rpc import HttpRpc, read_cookie
from fundtrail.ingest.evm.client import HttpTransport, RpcClient, open_client
from fundtrail.netclient import BoundedHttp, HttpLimits, redact_url
from tests.security.hostile import answer, chunked, hostile_server, run_limited

SECRETS = ("S3cretPass", "INFURA_KEY_123", "abcdef0123456789abcdef0123456789")


def hostile_rpc(mode: str, mb: int = 64):
    def handle(req, body, seen):
        if mode == "big":
            w = chunked(req)
            w(b'{"jsonrpc":"2.0","id":1,"result":"0x1","pad":"')
            for _ in range(mb):
                w(b"A" * (1 << 20))
            w(b'"}')
            w(b"")
        elif mode == "slow":
            w = chunked(req)
            for _ in range(60):
                w(b" ")
                time.sleep(0.25)
            w(b"")
        elif mode == "deep":
            answer(req, b"[" * 200_000 + b"]" * 200_000)
        elif mode in ("wrongtype", "wrongtype-str"):
            reqs = json.loads(body)
            reqs = reqs if isinstance(reqs, list) else [reqs]
            res = {"not": "a quantity"} if mode == "wrongtype" else "x"
            answer(req, json.dumps([{"jsonrpc": "2.0", "id": r["id"], "result": res} for r in reqs]).encode())
        elif mode == "garbage":
            answer(req, b"<html>502 bad gateway</html>", 200, "text/html")
        elif mode == "redirect":
            answer(req, b"", 307, headers={"location": "http://127.0.0.2:9/steal"})
        elif mode == "503":
            answer(req, b"busy", 503, "text/plain")
    return handle


# --- the bounded client itself ---------------------------------------------------------------------------

def test_size_cap_is_enforced_while_streaming():
    with hostile_server(hostile_rpc("big", 40)) as (url, _), \
            BoundedHttp(HttpLimits(max_bytes=4 << 20), source="test") as c:
        t0 = time.monotonic()
        with pytest.raises(ResponseLimitError, match="larger than the 4,194,304-byte limit"):
            c.request("POST", url + "/", content=b"{}")
        assert time.monotonic() - t0 < 10


def test_deadline_holds_against_a_trickle():
    """1 byte every 0.25 s never trips a per-read timeout; the per-call deadline ends it."""
    with hostile_server(hostile_rpc("slow")) as (url, _), \
            BoundedHttp(HttpLimits(timeout=2.0, deadline=2.0), source="test") as c:
        t0 = time.monotonic()
        with pytest.raises(SourceTimeout, match="deadline"):
            c.request("POST", url + "/", content=b"{}")
        assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("policy", ["none", "same-host"])
def test_redirects_to_another_host_are_refused(policy):
    with hostile_server(hostile_rpc("redirect")) as (url, _), \
            BoundedHttp(HttpLimits(redirects=policy), source="test") as c:
        with pytest.raises(ResponseLimitError, match="redirect to http://127.0.0.2:9/steal refused"):
            c.request("GET", url + "/x")


def test_same_host_redirect_is_followed_when_allowed():
    def handle(req, body, seen):
        if req.path == "/old":
            answer(req, b"", 302, headers={"location": "/new"})
        else:
            answer(req, b"here", 200, "text/plain")
    with hostile_server(handle) as (url, seen), \
            BoundedHttp(HttpLimits(redirects="same-host"), source="test") as c:
        assert c.request("GET", url + "/old").body == b"here"
    with hostile_server(handle) as (url, seen), BoundedHttp(HttpLimits(), source="test") as c, \
            pytest.raises(ResponseLimitError, match="not followed"):
        c.request("GET", url + "/old")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "/etc/passwd", "gopher://127.0.0.1/", "http:///x"])
def test_only_http_urls(url):
    with BoundedHttp(HttpLimits(), source="test") as c, pytest.raises(UsageError):
        c.request("GET", url)


def test_redaction():
    assert redact_url("http://alice:S3cretPass@127.0.0.1:8545/v3/INFURA_KEY_123") == \
        "http://127.0.0.1:8545/v3/***"
    assert redact_url("https://x.io/api?apikey=abc&days=3&token=t") == "https://x.io/api?apikey=***&days=3&token=***"
    assert redact_url("https://eth.x.io/abcdef0123456789abcdef0123456789") == "https://eth.x.io/***"
    assert redact_url("https://x.io/lists/sanctioned_addresses_XBT.txt") == \
        "https://x.io/lists/sanctioned_addresses_XBT.txt"
    assert redact_url("http://u:p@h:1/any/path?q=1", keep_path=False) == "http://h:1/***?***"


# --- EVM RPC -----------------------------------------------------------------------------------------------

def _evm(url, **kw):
    return RpcClient(HttpTransport(url, limits=HttpLimits(max_bytes=4 << 20, timeout=0.5, deadline=0.5)),
                     sleep=lambda s: None, **kw)


@pytest.mark.parametrize("mode,match", [("big", "larger than"), ("deep", "nested too deeply"),
                                        ("garbage", "not JSON"), ("slow", "deadline")])
def test_evm_client_fails_cleanly(mode, match):
    with hostile_server(hostile_rpc(mode)) as (url, _):
        c = _evm(url + "/")
        with pytest.raises(RpcError, match=match):
            c.call("eth_chainId")


def test_evm_client_retries_invalid_json_then_succeeds():
    n = {"k": 0}

    def handle(req, body, seen):
        n["k"] += 1
        if n["k"] <= 2:
            answer(req, b"{not json")
        else:
            r = json.loads(body)
            answer(req, json.dumps({"jsonrpc": "2.0", "id": r["id"], "result": "0x1"}).encode())
    with hostile_server(handle) as (url, _):
        c = _evm(url + "/")
        assert c.call("eth_chainId") == "0x1" and c.retried == 2


# --- Bitcoin RPC ---------------------------------------------------------------------------------------------

def _btc(url, **kw):
    return HttpRpc(url, limits=HttpLimits(max_bytes=4 << 20, timeout=0.5, deadline=0.5), sleep=lambda s: None,
                   retries=2, **kw)


@pytest.mark.parametrize("mode,match", [("big", "larger than"), ("deep", "nested too deeply"),
                                        ("garbage", "giving up after 3 attempts.*not a JSON-RPC answer"),
                                        ("slow", "giving up after 3 attempts.*deadline"),
                                        ("503", "giving up after 3 attempts"),
                                        ("redirect", "refused")])
def test_bitcoin_client_fails_cleanly(mode, match):
    with hostile_server(hostile_rpc(mode)) as (url, _):
        with pytest.raises(RpcError, match=match) as ei:
            _btc(url.replace("http://", "http://alice:S3cretPass@") + "/").call("getblockcount")
    assert "S3cretPass" not in str(ei.value) and "alice" not in str(ei.value)


def test_bitcoin_client_retries_with_backoff():
    n = {"k": 0}
    sleeps = []

    def handle(req, body, seen):
        n["k"] += 1
        if n["k"] == 1:
            answer(req, b"busy", 503, "text/plain")
        elif n["k"] == 2:
            answer(req, b"[{\"id\": 2, \"result\": nul")  # cut short
        elif n["k"] == 3:
            r = json.loads(body)
            answer(req, json.dumps([{"id": r[0]["id"], "result": None,
                                     "error": {"code": -28, "message": "Loading block index..."}}]).encode())
        else:
            r = json.loads(body)
            answer(req, json.dumps([{"id": r[0]["id"], "result": 7, "error": None}]).encode())
    with hostile_server(handle) as (url, _):
        c = HttpRpc(url + "/", sleep=sleeps.append, backoff=0.5, retries=5)
        assert c.call("getblockcount") == 7
    assert sleeps == [0.5, 1.0, 2.0]


def test_cookie_must_be_a_core_cookie_and_goes_to_loopback_only(tmp_path):
    conf = tmp_path / "app.conf"
    conf.write_text("line1:db_password=hunter2\n")
    with pytest.raises(UsageError, match="not a Bitcoin Core .cookie file") as ei:
        read_cookie(conf, "http://127.0.0.1:8332/")
    assert "hunter2" not in str(ei.value)
    cookie = tmp_path / ".cookie"
    cookie.write_text("__cookie__:" + "ab" * 32)
    assert read_cookie(cookie, "http://127.0.0.1:8332/") == ("__cookie__", "ab" * 32)
    assert read_cookie(cookie, "http://localhost:8332/")[0] == "__cookie__"
    assert read_cookie(cookie, "http://[::1]:8332/")[0] == "__cookie__"
    with pytest.raises(UsageError, match="only sent to a node on this machine"):
        read_cookie(cookie, "http://node.invalid:8332/")


def test_cli_cookie_file_is_not_exfiltrated(tmp_path, capsys):
    from fundtrail.cli.main import main

    conf = tmp_path / "app.conf"
    conf.write_text("line1:db_password=hunter2\n")
    with hostile_server(hostile_rpc("503")) as (url, seen):
        code = main(["ingest", "bitcoin", "--rpc", url + "/", "--rpc-cookie", str(conf), "--network", "regtest",
                     "--home", str(tmp_path / "ws")])
    out = capsys.readouterr()
    assert code == 2, out.err
    assert seen.requests == [] and "hunter2" not in out.err + out.out


# --- the CLI against hostile nodes (subprocess, memory and time limits) -----------------------------------

LIMITS = ["--rpc-max-mb", "8", "--rpc-timeout", "1", "--rpc-deadline", "1.5", "--rpc-retries", "1"]
SLOW = pytest.mark.slow


@pytest.mark.parametrize("mode,match", [pytest.param("big", "larger than the 8,388,608-byte limit", marks=SLOW),
                                        ("deep", "nested too deeply"),
                                        pytest.param("wrongtype", "unexpected answer from the node", marks=SLOW),
                                        pytest.param("slow", "deadline", marks=SLOW)])
def test_cli_ingest_evm_against_a_hostile_node(tmp_path, mode, match):
    with hostile_server(hostile_rpc(mode, 200)) as (url, _):
        r = run_limited(["ingest", "evm", "--rpc", url + "/", "--chain", "ethereum", "--home", str(tmp_path / "ws"),
                         *LIMITS], memory_mb=3072, timeout=150)
    assert r.returncode == 4, r.stderr[-2000:]
    assert match in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: ")


@pytest.mark.parametrize("mode,match", [pytest.param("big", "larger than", marks=SLOW),
                                        pytest.param("deep", "nested too deeply", marks=SLOW),
                                        pytest.param("wrongtype-str", "answered a str", marks=SLOW),
                                        pytest.param("garbage", "giving up", marks=SLOW)])
def test_cli_ingest_bitcoin_against_a_hostile_node(tmp_path, mode, match):
    with hostile_server(hostile_rpc(mode, 200)) as (url, _):
        r = run_limited(["ingest", "bitcoin", "--rpc", url + "/", "--network", "regtest", "--home",
                         str(tmp_path / "ws"), *LIMITS], memory_mb=3072, timeout=150)
    assert r.returncode == 4, r.stderr[-2000:]
    assert match in r.stderr and "Traceback" not in r.stderr


def test_cli_evm_credentials_never_printed(tmp_path):
    with hostile_server(hostile_rpc("503")) as (url, seen):
        rpc = url.replace("http://", "http://alice:S3cretPass@") + "/v3/INFURA_KEY_123?apikey=" + SECRETS[2]
        r = run_limited(["ingest", "evm", "--rpc", rpc, "--chain", "ethereum", "--home", str(tmp_path / "ws"),
                         *LIMITS], timeout=120)
    assert r.returncode == 4
    assert "HTTP 503" in r.stderr and "retrying" in r.stderr
    for s in SECRETS:
        assert s not in r.stderr and s not in r.stdout
    # the credentials still reach the node, as Basic auth
    assert seen.auth_headers and all(h.startswith("Basic ") for h in seen.auth_headers)


@pytest.mark.parametrize("rpc", ["/etc/passwd", "gopher://127.0.0.1:1/"])
def test_cli_evm_rpc_must_be_a_url(tmp_path, rpc, capsys):
    from fundtrail.cli.main import main

    assert main(["ingest", "evm", "--rpc", rpc, "--chain", "ethereum", "--home", str(tmp_path / "ws")]) == 2
    err = capsys.readouterr().err
    assert "--rpc must be" in err and "root:" not in err


@pytest.mark.parametrize("rpc", ["/etc/passwd", "file:///etc/passwd"])
def test_cli_bitcoin_rpc_must_be_http(tmp_path, rpc, capsys):
    from fundtrail.cli.main import main

    assert main(["ingest", "bitcoin", "--rpc", rpc, "--network", "regtest", "--home", str(tmp_path / "ws")]) == 2
    err = capsys.readouterr().err
    assert "--rpc must be an http:// or https:// URL" in err and "root:" not in err


def test_open_client_without_files_refuses_replays():
    with pytest.raises(UsageError):
        open_client("file:///etc/passwd", allow_files=False)


# --- downloads ---------------------------------------------------------------------------------------------

def test_prices_fetch_does_not_echo_what_a_url_holds(tmp_path):
    from fundtrail.errors import FetchError
    from fundtrail.prices.fetch import fetch_prices
    from fundtrail.store import Workspace

    def handle(req, body, seen):
        answer(req, b"INTERNAL admin_token=tok_9f8e7d6c\n", 200, "text/plain")
    with hostile_server(handle) as (url, _):
        with pytest.raises(FetchError) as ei:
            fetch_prices(Workspace(tmp_path / "ws"), "BTC", url=url + "/secret.txt")
    assert "tok_9f8e7d6c" not in str(ei.value)


def test_fetchers_refuse_cross_host_redirects(tmp_path):
    from fundtrail.attribution.fetch import HttpFetcher
    from fundtrail.errors import FetchError
    from fundtrail.prices.fetch import fetch_prices
    from fundtrail.store import Workspace

    with hostile_server(hostile_rpc("redirect")) as (url, _):
        with pytest.raises(ResponseLimitError, match="refused"):
            HttpFetcher().get(url + "/SDN.XML")
        with pytest.raises((ResponseLimitError, FetchError), match="refused"):
            fetch_prices(Workspace(tmp_path / "ws"), "BTC", url=url + "/p.json")


def test_fetch_size_cap(tmp_path):
    from fundtrail.attribution.fetch import HttpFetcher

    with hostile_server(hostile_rpc("big", 16)) as (url, _):
        f = HttpFetcher(limits=HttpLimits(max_bytes=1 << 20, redirects="same-host"))
        with pytest.raises(ResponseLimitError, match="larger than"):
            f.get(url + "/x")


def test_mock_transport_still_works():
    t = httpx.MockTransport(lambda r: httpx.Response(200, content=b"ok"))
    with BoundedHttp(HttpLimits(), source="t", transport=t) as c:
        assert c.request("GET", "https://example.org/").body == b"ok"


@given(user=st.text(alphabet=st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=12),
       pw=st.text(alphabet=st.characters(min_codepoint=48, max_codepoint=122), min_size=6, max_size=24),
       path=st.lists(st.text(alphabet="abcdefghij0123456789_-", min_size=1, max_size=40), max_size=4))
def test_redacted_urls_never_hold_the_password(user, pw, path):
    from urllib.parse import quote

    url = f"http://{quote(user, safe='')}:{quote(pw, safe='')}@127.0.0.1:8545/" + "/".join(path)
    for keep in (True, False):
        red = redact_url(url, keep_path=keep)
        assert quote(pw, safe="") not in red.split("127.0.0.1")[0] and "@" not in red

"""Bitcoin Core JSON-RPC: a small batched client, the RPC ingestion loop, and a fake node for tests.

``getblock HASH 3`` gives every transaction's raw hex and, on Core 23+, the outputs its inputs spend
(``prevout``); older nodes answer verbosity 3 as 2 (no prevouts) and the prevouts come from our own UTXO
store (and, with ``prevouts_via_rpc=True``, from ``getrawtransaction`` on a node with ``txindex``). The
block is reassembled from its header fields and the transactions' hex and goes through the same parser as
block files, so both sources give identical rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import logging
import re
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import numpy as np

from fundtrail.errors import (
    ResponseLimitError,
    RpcError,
    SourceTimeout,
    SourceUnreachable,
    UsageError,
)
from fundtrail.ingest.bitcoin.serialize import varint
from fundtrail.netclient import BoundedHttp, HttpLimits, check_http_url, loads_json, redact_url

log = logging.getLogger(__name__)

CORE_CHAIN_NAMES = {"main": "mainnet", "test": "testnet", "testnet4": "testnet4", "signet": "signet",
                    "regtest": "regtest"}


class RpcClient(Protocol):
    def call(self, method: str, params: Sequence[Any] = ()) -> Any: ...
    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]: ...
    def close(self) -> None: ...


def _loads(data: bytes) -> Any:
    return loads_json(data, decimal=True)


# Core answers these while starting (-28: loading the block index, verifying blocks) or busy: worth retrying
_CORE_RETRY_CODES = {-28}
_COOKIE = re.compile(r"__cookie__:[0-9a-f]{64}\Z")
DEFAULT_LIMITS = HttpLimits(max_bytes=512 << 20, timeout=60.0, deadline=600.0)


def read_cookie(path: Path | str, url: str) -> tuple[str, str]:
    """The (user, password) of Core's ``.cookie`` file, checked before anything is sent: the file must hold
    exactly ``__cookie__:<64 hex>`` (Core's format, so no other file's contents can leave the machine as
    credentials), and the node must be on this machine (a loopback address): a cookie authenticates to its
    own node only."""
    host = (urlsplit(url).hostname or "").lower()
    loopback = host == "localhost"
    with contextlib.suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    if not loopback:
        raise UsageError(f"--rpc-cookie is only sent to a node on this machine (127.0.0.1, ::1 or localhost), "
                         f"not to {host!r}; give user:password in the URL for a remote node")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(200)
    except OSError as e:
        raise UsageError(f"cannot read the RPC cookie file {str(path)!r}: {e.strerror}") from None
    text = raw.decode("ascii", errors="replace").strip()
    if _COOKIE.match(text) is None:
        raise UsageError(f"{str(path)!r} is not a Bitcoin Core .cookie file (expected __cookie__:<64 hex "
                         "digits>); its contents are not sent")
    user, _, pw = text.partition(":")
    return user, pw


class HttpRpc:
    """JSON-RPC over HTTP (batched) through :class:`fundtrail.netclient.BoundedHttp` (size cap, per-read
    timeout and per-call deadline, no redirects). Timeouts, connection failures, HTTP 5xx without a JSON-RPC
    answer, invalid JSON and Core's "still starting" errors are retried ``retries`` times with exponential
    backoff (``backoff * 2**attempt``, capped at ``max_backoff``); then RpcError names the method and the
    node (its URL without credentials). ``transport``: an httpx transport (e.g. ``httpx.MockTransport``)."""

    def __init__(self, url: str, *, cookie: Path | str | None = None, transport: httpx.BaseTransport | None = None,
                 timeout: float = 60.0, limits: HttpLimits | None = None, retries: int = 5,
                 backoff: float = 0.5, max_backoff: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        check_http_url(url, "--rpc")
        parts = urlsplit(url)
        auth = None
        if parts.username is not None:
            auth = (unquote(parts.username), unquote(parts.password or ""))
            netloc = parts.hostname or ""
            if parts.port:
                netloc += f":{parts.port}"
            url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        if cookie is not None:
            auth = read_cookie(cookie, url)
        self._url = url
        self.url = redact_url(url, keep_path=False)  # without credentials (used in error messages)
        lim = limits or replace(DEFAULT_LIMITS, timeout=timeout)
        self._client = BoundedHttp(lim, source="Bitcoin RPC", auth=auth, transport=transport,
                                   headers={"content-type": "application/json"})
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self.retried = 0
        self._id = 0

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        return self.batch([(method, params)])[0]

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        if not calls:
            return []
        attempt = 0
        while True:
            try:
                return self._attempt(calls)
            except _Retry as e:
                if attempt >= self.retries:
                    raise RpcError(f"giving up after {attempt + 1} attempts: {e}", url=self.url,
                                   method=_what(calls)) from None
                delay = min(self.max_backoff, self.backoff * (2 ** attempt))
                attempt += 1
                self.retried += 1
                log.warning("%s %s: %s; retrying in %.2fs", self.url, _what(calls), e, delay)
                self._sleep(delay)

    def _attempt(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        body = []
        for m, p in calls:
            self._id += 1
            body.append({"jsonrpc": "1.0", "id": self._id, "method": m, "params": list(p)})
        first = self._id - len(calls) + 1
        try:
            r = self._client.request("POST", self._url, content=json.dumps(body).encode())
        except (SourceTimeout, SourceUnreachable) as e:
            raise _Retry(str(e)) from None
        except ResponseLimitError as e:
            raise RpcError(str(e), url=self.url, method=_what(calls)) from None
        if r.status == 401:
            raise RpcError("unauthorized (check the user/password or --rpc-cookie)", url=self.url, code=401)
        try:
            data = _loads(r.body)
        except ValueError as e:
            raise _Retry(f"HTTP {r.status}: not a JSON-RPC answer ({e})") from None
        if isinstance(data, dict):  # a server that answered the batch with one error
            err = data.get("error") if isinstance(data.get("error"), dict) else {}
            code = err.get("code") if isinstance(err.get("code"), int) else None
            if code in _CORE_RETRY_CODES or (not err and r.status >= 500):
                raise _Retry(f"HTTP {r.status}: {str(err.get('message', ''))[:200]}")
            raise RpcError(str(err.get("message", data))[:500], url=self.url, method=calls[0][0], code=code)
        if not isinstance(data, list):
            raise _Retry(f"HTTP {r.status}: not a JSON-RPC answer (a {type(data).__name__})")
        if r.status in (429,) or (r.status >= 500 and not data):
            raise _Retry(f"HTTP {r.status}")
        out: list[Any] = [None] * len(calls)
        seen = [False] * len(calls)
        for item in data:
            rid = item.get("id") if isinstance(item, dict) else None
            k = rid - first if isinstance(rid, int) and not isinstance(rid, bool) else -1
            if not 0 <= k < len(calls):
                raise _Retry(f"HTTP {r.status}: an answer with an unknown id {str(rid)[:40]}")
            if item.get("error"):
                e = item["error"] if isinstance(item["error"], dict) else {"message": item["error"]}
                code = e.get("code") if isinstance(e.get("code"), int) else None
                if code in _CORE_RETRY_CODES:
                    raise _Retry(f"{calls[k][0]}: {str(e.get('message'))[:200]}")
                raise RpcError(str(e.get("message"))[:500], url=self.url, method=calls[k][0], code=code)
            out[k] = item.get("result")
            seen[k] = True
        if not all(seen):
            raise _Retry(f"HTTP {r.status}: {seen.count(False)} of {len(calls)} requests got no answer")
        return out

    def close(self) -> None:
        self._client.close()


class _Retry(Exception):
    """A failure of one attempt that is worth retrying."""


def _what(calls: Sequence[tuple[str, Sequence[Any]]]) -> str:
    m, p = calls[0]
    first = f" {str(p[0])[:70]}" if p else ""
    return f"{m}{first}" + (f" (+{len(calls) - 1} more)" if len(calls) > 1 else "")


# --- blocks from getblock JSON ----------------------------------------------------------------------------

def sat(value: Any) -> int:
    """Satoshi of a JSON BTC amount (parsed as Decimal: exact)."""
    return int(Decimal(str(value)) * 100_000_000)


def raw_block_of(blk: dict[str, Any]) -> tuple[bytes, dict[int, tuple[int, bytes]]]:
    """(serialized block, known prevouts by non-coinbase input ordinal) of a getblock v2/v3 result."""
    prev = blk.get("previousblockhash") or "00" * 32
    header = struct.pack("<i", int(blk["version"])) + bytes.fromhex(prev)[::-1] + \
        bytes.fromhex(blk["merkleroot"])[::-1] + struct.pack("<III", int(blk["time"]), int(blk["bits"], 16),
                                                             int(blk["nonce"]))
    h = hashlib.sha256(hashlib.sha256(header).digest()).digest()[::-1].hex()
    if h != blk["hash"]:
        raise RpcError(f"block {blk['hash']}: header fields hash to {h}")
    txs = blk["tx"]
    try:
        body = b"".join(bytes.fromhex(t["hex"]) for t in txs)
    except (KeyError, TypeError):
        raise RpcError(f"block {blk['hash']}: transactions without hex (need getblock verbosity >= 2)") from None
    known: dict[int, tuple[int, bytes]] = {}
    k = 0
    for t in txs[1:]:
        for vin in t.get("vin", []):
            po = vin.get("prevout")
            if po is not None:
                known[k] = (sat(po["value"]), bytes.fromhex(po["scriptPubKey"]["hex"]))
            k += 1
    return header + varint(len(txs)) + body, known


# --- a fake node for tests --------------------------------------------------------------------------------

class FakeNode:
    """A JSON-RPC node serving ``getblock`` results (dicts as Core returns them) by height.

    Use ``transport()`` (an httpx.MockTransport) or ``serve()`` (a real HTTP server on 127.0.0.1).
    ``blocks`` may be changed between calls (to simulate new blocks or a reorganisation).
    """

    def __init__(self, blocks: list[dict[str, Any]], chain: str = "main",
                 raw_transactions: dict[str, dict[str, Any]] | None = None, verbosity3: bool = False) -> None:
        self.blocks = blocks
        self.chain = chain
        self.raw_transactions = raw_transactions or {}
        self.verbosity3 = verbosity3
        self.calls: list[str] = []
        self.lock = threading.Lock()

    @classmethod
    def from_raw_blocks(cls, raws: list[bytes], start_height: int = 0, chain: str = "regtest") -> FakeNode:
        return cls([getblock_json(r, start_height + i) for i, r in enumerate(raws)], chain=chain)

    def _by_height(self) -> dict[int, dict[str, Any]]:
        return {int(b["height"]): b for b in self.blocks}

    def dispatch(self, method: str, params: list[Any]) -> Any:
        self.calls.append(method)
        bh = self._by_height()
        if method == "getblockchaininfo":
            tip = max(bh) if bh else -1
            return {"chain": self.chain, "blocks": tip, "bestblockhash": bh[tip]["hash"] if bh else None}
        if method == "getblockcount":
            return max(bh) if bh else -1
        if method == "getblockhash":
            b = bh.get(int(params[0]))
            if b is None:
                raise _Fail(-8, "Block height out of range")
            return b["hash"]
        if method == "getblock":
            for b in self.blocks:
                if b["hash"] == params[0]:
                    if not self.verbosity3:
                        return {**b, "tx": [{k: v for k, v in t.items()} for t in b["tx"]]}
                    return b
            raise _Fail(-5, "Block not found")
        if method == "getrawtransaction":
            t = self.raw_transactions.get(params[0])
            if t is None:
                raise _Fail(-5, "No such mempool or blockchain transaction")
            return t
        raise _Fail(-32601, "Method not found")

    def handle(self, body: bytes) -> bytes:
        req = json.loads(body, parse_float=Decimal)
        single = isinstance(req, dict)
        out = []
        with self.lock:
            for r in [req] if single else req:
                try:
                    out.append({"result": self.dispatch(r["method"], r.get("params", [])), "error": None,
                                "id": r.get("id")})
                except _Fail as e:
                    out.append({"result": None, "error": {"code": e.code, "message": e.message}, "id": r.get("id")})
        return json.dumps(out[0] if single else out, default=_dec).encode()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(lambda request: httpx.Response(200, content=self.handle(request.content)))

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                data = node.handle(body)
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        try:
            yield f"http://user:pass@127.0.0.1:{srv.server_address[1]}/"
        finally:
            srv.shutdown()
            srv.server_close()


class _Fail(Exception):
    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message


def _dec(o: Any) -> Any:
    if isinstance(o, Decimal):
        return float(o) if o != o.to_integral_value() else int(o)
    raise TypeError(type(o))


def getblock_json(raw: bytes, height: int) -> dict[str, Any]:
    """A minimal ``getblock HASH 2`` result for a serialized block (what FakeNode serves)."""
    from fundtrail.ingest.bitcoin.parse import parse_blocks

    buf = np.frombuffer(raw, np.uint8)
    b = parse_blocks(buf, np.array([0]), np.array([len(raw)]))
    h = hashlib.sha256(hashlib.sha256(raw[:80]).digest()).digest()[::-1].hex()
    version, = struct.unpack("<i", raw[:4])
    t, bits, nonce = struct.unpack("<III", raw[68:80])
    txs = []
    for i in range(len(b.tx_start)):
        s, e = int(b.tx_start[i]), int(b.tx_end[i])
        vin = [{"txid": raw[p:p + 32][::-1].hex(), "vout": int(n)}
               for p, n in zip(b.in_prev[b.in_tx == i].tolist(), b.in_n[b.in_tx == i].tolist(), strict=True)]
        if i == 0:
            vin = [{"coinbase": "", "sequence": 0xFFFFFFFF}]
        txs.append({"txid": b.txid[i][::-1].tobytes().hex(), "hex": raw[s:e].hex(), "vin": vin})
    blk = {"hash": h, "height": height, "version": version, "merkleroot": raw[36:68][::-1].hex(), "time": t,
           "bits": f"{bits:08x}", "nonce": nonce, "tx": txs, "nTx": len(txs)}
    if raw[4:36] != b"\0" * 32:
        blk["previousblockhash"] = raw[4:36][::-1].hex()
    return blk

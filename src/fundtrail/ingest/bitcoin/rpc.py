"""Bitcoin Core JSON-RPC: a small batched client, blocks reassembled from ``getblock`` JSON, and a fake
node for tests (the ingestion loop over a node is ``service.ingest_from_node``).

``getblock HASH 3`` gives every transaction's raw hex and, on Core 23+, the outputs its inputs spend
(``prevout``); older nodes answer verbosity 3 as 2 (no prevouts) and the prevouts come from our own UTXO
store (and, with ``prevouts_via_rpc=True``, from ``getrawtransaction`` on a node with ``txindex``). The
block is reassembled from its header fields and the transactions' hex and goes through the same parser as
block files, so both sources give identical rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct
import threading
from collections.abc import Iterator, Sequence
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np

from fundtrail.errors import RpcError
from fundtrail.ingest.bitcoin.serialize import varint

CORE_CHAIN_NAMES = {"main": "mainnet", "test": "testnet", "testnet4": "testnet4", "signet": "signet",
                    "regtest": "regtest"}


class RpcClient(Protocol):
    def call(self, method: str, params: Sequence[Any] = ()) -> Any: ...
    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]: ...
    def close(self) -> None: ...


def _loads(data: bytes) -> Any:
    return json.loads(data, parse_float=Decimal)


class HttpRpc:
    """JSON-RPC over HTTP (batched). ``transport``: an httpx transport (e.g. ``httpx.MockTransport``)."""

    def __init__(self, url: str, *, cookie: Path | str | None = None, transport: httpx.BaseTransport | None = None,
                 timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        auth = None
        if parts.username is not None:
            auth = (parts.username, parts.password or "")
            netloc = parts.hostname or ""
            if parts.port:
                netloc += f":{parts.port}"
            url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        if cookie is not None:
            user, _, pw = Path(cookie).read_text().strip().partition(":")
            auth = (user, pw)
        self.url = url  # without credentials (used in error messages)
        self._client = httpx.Client(auth=auth, timeout=timeout, transport=transport)
        self._id = 0

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        return self.batch([(method, params)])[0]

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        if not calls:
            return []
        body = []
        for m, p in calls:
            self._id += 1
            body.append({"jsonrpc": "1.0", "id": self._id, "method": m, "params": list(p)})
        first = self._id - len(calls) + 1
        try:
            r = self._client.post(self.url, content=json.dumps(body), headers={"content-type": "application/json"})
        except httpx.HTTPError as e:
            raise RpcError(f"request failed: {e}", url=self.url, method=calls[0][0]) from e
        if r.status_code == 401:
            raise RpcError("unauthorized (check the user/password or --rpc-cookie)", url=self.url, code=401)
        try:
            data = _loads(r.content)
        except ValueError:
            raise RpcError(f"HTTP {r.status_code}: not a JSON-RPC answer", url=self.url,
                           method=calls[0][0]) from None
        if isinstance(data, dict):  # a server that answered the batch with one error
            err = data.get("error") or {}
            raise RpcError(str(err.get("message", data)), url=self.url, method=calls[0][0], code=err.get("code"))
        out: list[Any] = [None] * len(calls)
        for item in data:
            k = int(item["id"]) - first
            if item.get("error"):
                e = item["error"]
                raise RpcError(str(e.get("message")), url=self.url, method=calls[k][0], code=e.get("code"))
            out[k] = item.get("result")
        return out

    def close(self) -> None:
        self._client.close()


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

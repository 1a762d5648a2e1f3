"""Raw transactions on evidence paths: as the chain itself holds them, so a reader can check them anywhere.

The workspace keeps what tracing needs (values, address ids, heights), not the bytes a transaction was
serialised as: no input scripts, no witnesses, no output scripts beyond their address. Re-serialising a
Bitcoin transaction from the tables is therefore impossible, and the raw transactions are read from a
chain source instead, then checked against the workspace:

* Bitcoin: the block files the workspace was ingested from (``blk*.dat``, XOR-obfuscated or ``.bz2``):
  the block with the stored hash at the stored height is read and split into its transactions; the
  bytes of each path transaction are kept as hex. Or a Bitcoin Core node: ``getblock HASH 2`` gives each
  transaction's hex. Its txid is recomputed (double SHA-256 of the serialisation without witness data),
  so the file proves itself.
* EVM: the node's JSON-RPC (or a recording of it): ``eth_getBlockByNumber(height, true)`` gives the
  transaction object and the block hash, ``eth_getTransactionReceipt`` the receipt (status, logs).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fundtrail.errors import DecodeError, NotFoundError, UsageError
from fundtrail.model.address import sha256d


@dataclass(frozen=True, slots=True)
class BtcTx:
    """A parsed Bitcoin transaction: its txid (display hex) and its output values in order."""

    txid: str
    values: tuple[int, ...]
    inputs: int


def _varint(b: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(b):
        raise DecodeError("transaction ends inside a varint", offset=pos)
    x = b[pos]
    if x < 0xFD:
        return x, pos + 1
    size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[x]
    if pos + 1 + size > len(b):
        raise DecodeError("transaction ends inside a varint", offset=pos)
    return int.from_bytes(b[pos + 1:pos + 1 + size], "little"), pos + 1 + size


def _take(b: bytes, pos: int, n: int) -> int:
    if n < 0 or pos + n > len(b):
        raise DecodeError(f"transaction ends early (needs {n} bytes)", offset=pos)
    return pos + n


def parse_tx(b: bytes, pos: int = 0) -> tuple[BtcTx, int]:
    """Parse one serialised transaction starting at ``pos``; returns it and the offset after it."""
    start = pos
    pos = _take(b, pos, 4)
    segwit = pos + 1 < len(b) and b[pos] == 0 and b[pos + 1] != 0
    body_from = pos + 2 if segwit else pos
    if segwit:
        pos += 2
    n_in, pos = _varint(b, pos)
    for _ in range(n_in):
        pos = _take(b, pos, 36)
        ln, pos = _varint(b, pos)
        pos = _take(b, pos, ln + 4)
    n_out, pos = _varint(b, pos)
    values = []
    for _ in range(n_out):
        _take(b, pos, 8)
        values.append(struct.unpack_from("<q", b, pos)[0])
        pos += 8
        ln, pos = _varint(b, pos)
        pos = _take(b, pos, ln)
    body_to = pos
    if segwit:
        for _ in range(n_in):
            items, pos = _varint(b, pos)
            for _ in range(items):
                ln, pos = _varint(b, pos)
                pos = _take(b, pos, ln)
    pos = _take(b, pos, 4)
    stripped = b[start:start + 4] + b[body_from:body_to] + b[pos - 4:pos]
    return BtcTx(sha256d(stripped)[::-1].hex(), tuple(values), n_in), pos


def parse_hex(text: str) -> BtcTx:
    """A whole transaction given as hex (what a bundle's ``raw/CHAIN/TXID.hex`` holds)."""
    try:
        b = bytes.fromhex(text.strip())
    except ValueError as e:
        raise DecodeError(f"not hex: {e}") from None
    tx, end = parse_tx(b)
    if end != len(b):
        raise DecodeError(f"{len(b) - end} bytes after the transaction", offset=end)
    return tx


def split_block(block: bytes) -> list[tuple[str, bytes]]:
    """The (txid, serialised bytes) of every transaction of a block (header and count first)."""
    n, pos = _varint(block, 80)
    out = []
    for _ in range(n):
        tx, end = parse_tx(block, pos)
        out.append((tx.txid, block[pos:end]))
        pos = end
    return out


class BlockFiles:
    """Blocks by hash from a folder of Bitcoin Core block files (indexed once)."""

    def __init__(self, blocks_dir: Path | str, network: str) -> None:
        from fundtrail.ingest.bitcoin import blockfiles as BF
        from fundtrail.model.chain import BITCOIN_NETWORKS

        net = BITCOIN_NETWORKS.get(network)
        if net is None:
            raise UsageError(f"unknown Bitcoin network {network!r}")
        d = Path(blocks_dir)
        if not d.exists():
            raise NotFoundError(f"{d}: no such block folder")
        self._src = BF.BlockSource(BF.list_block_files(d), BF.read_xor_key(d))
        self._index = BF.build_index(self._src, net)
        self._row = {bytes(h[::-1]).hex(): i for i, h in enumerate(self._index.hash)}

    def block(self, block_hash: str) -> bytes | None:
        row = self._row.get(block_hash.lower())
        if row is None:
            return None
        ix = self._index
        out = np.empty(int(ix.size[row]), np.uint8)
        self._src.read(int(ix.file[row]), int(ix.offset[row]), int(ix.size[row]), out)
        return out.tobytes()

    def close(self) -> None:
        self._src.close()


def bitcoin_raw(blocks: BlockFiles, wanted: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Hex of each (txid, block hash) found in the block files; missing ones are left out."""
    by_block: dict[str, set[str]] = {}
    for txid, bh in wanted:
        if bh:
            by_block.setdefault(bh, set()).add(txid)
    out: dict[str, str] = {}
    for bh, txids in sorted(by_block.items()):
        raw = blocks.block(bh)
        if raw is None:
            continue
        for txid, b in split_block(raw):
            if txid in txids:
                out[txid] = b.hex()
    return out


def bitcoin_rpc_raw(url: str, wanted: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Hex of each (txid, block hash) from a Bitcoin Core node (``getblock HASH 2``: every transaction with
    its hex); blocks or transactions the node does not have are left out."""
    from fundtrail.errors import RpcError
    from fundtrail.ingest.bitcoin.rpc import HttpRpc

    by_block: dict[str, set[str]] = {}
    for txid, bh in wanted:
        if bh:
            by_block.setdefault(bh, set()).add(txid)
    out: dict[str, str] = {}
    rpc = HttpRpc(url)
    try:
        for bh, txids in sorted(by_block.items()):
            try:
                blk = rpc.call("getblock", [bh, 2])
            except RpcError:
                continue
            for t in (blk or {}).get("tx", []):
                if isinstance(t, dict) and t.get("txid") in txids and t.get("hex"):
                    out[t["txid"]] = t["hex"]
    finally:
        rpc.close()
    return out


def evm_raw(url: str, wanted: Iterable[tuple[str, int]]) -> dict[str, dict[str, Any]]:
    """RPC JSON of each (txid, height): the transaction object from its block, the block's number and hash,
    and the receipt. Transactions the node does not hold are left out."""
    from fundtrail.ingest.evm.client import open_client

    by_height: dict[int, set[str]] = {}
    for txid, h in wanted:
        by_height.setdefault(int(h), set()).add(txid.lower())
    out: dict[str, dict[str, Any]] = {}
    with open_client(url) as client:
        for h, txids in sorted(by_height.items()):
            block = client.call("eth_getBlockByNumber", [hex(h), True])
            if not block:
                continue
            for tx in block.get("transactions") or []:
                if not isinstance(tx, dict) or str(tx.get("hash", "")).lower() not in txids:
                    continue
                txid = str(tx["hash"]).lower()
                try:
                    receipt = client.call("eth_getTransactionReceipt", [txid])
                except Exception:  # noqa: BLE001 - a node without receipts: the transaction still proves itself
                    receipt = None
                out[txid] = {"source": "eth_getBlockByNumber + eth_getTransactionReceipt",
                             "block": {"number": block.get("number"), "hash": block.get("hash"),
                                       "timestamp": block.get("timestamp")},
                             "transaction": tx, "receipt": receipt}
    return out


def hex_int(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, int):
        return v
    s = str(v)
    return int(s, 16) if s.startswith(("0x", "0X")) else int(s)


__all__ = ["BlockFiles", "BtcTx", "bitcoin_raw", "bitcoin_rpc_raw", "evm_raw", "hex_int", "parse_hex", "parse_tx", "split_block"]

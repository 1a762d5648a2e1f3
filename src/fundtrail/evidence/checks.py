"""A raw transaction file of a bundle against the workspace's record of it (used by export, which refuses to
write a raw copy that does not match, and by verify)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fundtrail.errors import FundtrailError
from fundtrail.evidence import rawtx
from fundtrail.evidence.chaindata import locate
from fundtrail.store import Workspace


def check_raw(ws: Workspace, name: str, data: bytes, places: Mapping[str, Any] | None = None,
              expect: Mapping[str, Any] | None = None) -> list[str]:
    """Problems of one raw transaction file (``raw/CHAIN/TXID.hex|json``) against the workspace."""
    parts = name.split("/")
    if len(parts) != 3:
        return [f"{name}: not a raw transaction file name (raw/CHAIN/TXID.hex|json)"]
    chain, fname = parts[1], parts[2]
    txid = fname.rsplit(".", 1)[0].lower()
    place = (places or locate(ws, [txid])).get(txid)
    if place is None:
        return [f"{name}: transaction {txid} is not in the workspace"]
    if place.chain != chain:
        return [f"{name}: transaction {txid} is on chain {place.chain} in the workspace, not {chain}"]
    out = []
    if expect is not None:
        if expect.get("height") is not None and expect["height"] != place.height:
            out.append(f"{name}: bundle says height {expect['height']}, the workspace {place.height}")
        if expect.get("block_hash") and place.block_hash and expect["block_hash"] != place.block_hash:
            out.append(f"{name}: bundle says block {expect['block_hash']}, the workspace {place.block_hash}")
    if fname.endswith(".hex"):
        try:
            tx = rawtx.parse_hex(data.decode("ascii", "replace"))
        except FundtrailError as e:
            return out + [f"{name}: does not parse as a Bitcoin transaction ({e})"]
        if tx.txid != txid:
            out.append(f"{name}: the transaction's hash is {tx.txid}, not {txid}")
        elif place.values and tx.values != place.values:
            out.append(f"{name}: output values {list(tx.values)} differ from the workspace's {list(place.values)}")
        return out
    try:
        obj = json.loads(data)
        tx, blk = obj["transaction"], obj["block"]
    except (ValueError, KeyError, TypeError) as e:
        return out + [f"{name}: not a transaction in RPC JSON ({e})"]
    if str(tx.get("hash", "")).lower() != txid:
        out.append(f"{name}: the transaction's hash is {tx.get('hash')}, not {txid}")
    h = rawtx.hex_int(tx.get("blockNumber") or blk.get("number"))
    if h != place.height:
        out.append(f"{name}: block number {h} in the file, {place.height} in the workspace")
    bh = str(tx.get("blockHash") or blk.get("hash") or "").lower()
    if place.block_hash and bh != place.block_hash:
        out.append(f"{name}: block hash {bh} in the file, {place.block_hash} in the workspace")
    if place.evm is not None:
        fa, ta, v = place.evm
        if fa and str(tx.get("from", "")).lower() != fa:
            out.append(f"{name}: sender {tx.get('from')} in the file, {fa} in the workspace")
        if ta and str(tx.get("to") or "").lower() != ta:
            out.append(f"{name}: receiver {tx.get('to')} in the file, {ta} in the workspace")
        if v is not None and rawtx.hex_int(tx.get("value")) != v:
            out.append(f"{name}: value {tx.get('value')} in the file, {v} in the workspace")
    return out


__all__ = ["check_raw"]

"""Token metadata (symbol, name, decimals) read with ``eth_call``, tolerant of real-world tokens.

Each of ``symbol()``, ``name()``, ``decimals()`` is called at ``latest`` (batched). A string answer is
ABI-decoded; a token that returns ``bytes32`` (e.g. MKR, SAI) is decoded as text with the trailing zero bytes
cut; an answer that is neither, a revert, an empty answer or a missing method leaves the field null. What
happened is recorded in ``status``: ``ok``, or ``;``-separated notes such as ``symbol=bytes32``,
``decimals=missing`` (no code answered / empty), ``name=reverted``, ``symbol=invalid`` (undecodable), ``symbol=empty`` (an empty string), ``symbol=unavailable`` (the node or recording lacks eth_call).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from fundtrail.errors import DecodeError
from fundtrail.ingest.evm.client import CallError, RpcClient
from fundtrail.model import evm_abi as abi

SYMBOL = abi.ERC20_SYMBOL
NAME = abi.ERC20_NAME
DECIMALS = abi.ERC20_DECIMALS


@dataclass(frozen=True, slots=True)
class TokenInfo:
    address: str
    symbol: str | None
    name: str | None
    decimals: int | None
    status: str


def _clean(text: str) -> str | None:
    t = text.replace("\x00", "").strip()
    if not t or any(ord(c) < 0x20 and c not in "\t" for c in t) or "\ufffd" in t:
        return None
    return t


def decode_text(result: Any) -> tuple[str | None, str]:
    """(value, how): how in ok | bytes32 | missing | invalid."""
    if not isinstance(result, str) or len(result) <= 2:
        return None, "missing"
    raw = bytes.fromhex(result[2:]) if len(result) % 2 == 0 else b""
    if not raw:
        return None, "invalid"
    if len(raw) >= 64:
        try:
            (s,) = abi.decode(["string"], raw)
            if s == "":
                return "", "empty"
            v = _clean(s)
            if v is not None:
                return v, "ok"
        except DecodeError:
            pass
    if len(raw) == 32:
        try:
            v = _clean(raw.rstrip(b"\0").decode("utf-8"))
        except UnicodeDecodeError:
            v = None
        return (v, "bytes32") if v is not None else (None, "invalid")
    return None, "invalid"


def decode_decimals(result: Any) -> tuple[int | None, str]:
    if not isinstance(result, str) or len(result) <= 2:
        return None, "missing"
    try:
        raw = bytes.fromhex(result[2:])
    except ValueError:
        return None, "invalid"
    if len(raw) < 32:
        return None, "invalid"
    v = int.from_bytes(raw[:32], "big")
    if v > 255:
        return None, "invalid"
    return v, "ok"


def fetch_tokens(client: RpcClient, addresses: Sequence[str], block: str = "latest") -> list[TokenInfo]:
    calls = []
    for a in addresses:
        for sel in (SYMBOL, NAME, DECIMALS):
            calls.append(("eth_call", [{"data": sel, "to": a}, block]))
    res = client.batch(calls, errors=True)
    out: list[TokenInfo] = []
    for i, a in enumerate(addresses):
        notes: list[str] = []
        vals: list[Any] = []
        for j, field in enumerate(("symbol", "name", "decimals")):
            r = res[3 * i + j]
            if isinstance(r, CallError):
                v, how = None, ("unavailable" if r.code == -32601 else "reverted")
            elif field == "decimals":
                v, how = decode_decimals(r)
            else:
                v, how = decode_text(r)
            if how != "ok":
                notes.append(f"{field}={how}")
            vals.append(v)
        out.append(TokenInfo(a, vals[0], vals[1], vals[2], ";".join(notes) or "ok"))
    return out


def tokens_table(chain: str, infos: Sequence[TokenInfo], first_height: dict[str, int]) -> pa.Table:
    return pa.table({
        "chain": pa.array([chain] * len(infos), pa.string()),
        "address": pa.array([t.address for t in infos], pa.string()),
        "symbol": pa.array([t.symbol for t in infos], pa.string()),
        "name": pa.array([t.name for t in infos], pa.string()),
        "decimals": pa.array([t.decimals for t in infos], pa.int32()),
        "status": pa.array([t.status for t in infos], pa.string()),
        "first_height": pa.array([first_height.get(t.address) for t in infos], pa.int64()),
    })

"""JSON-RPC objects (blocks, transactions, receipts, logs, traces, withdrawals) -> rows of the stored
EVM tables. Amounts are Python ints until they become DECIMAL(38,0) Arrow columns (exact).

Value movements (``evm_transfers.kind``), per transaction in this order (``seq`` counts within the
transaction):
  call / create   the transaction's own value (to ``to``, or to the created contract), if it succeeded;
  internal        value moved by a nested CALL frame of a trace; create = CREATE/CREATE2 frame with value;
  selfdestruct    a SELFDESTRUCT frame sending the contract's balance to its beneficiary;
  token           an ERC-20 ``Transfer`` log (asset = the token contract);
  fee             gas_used * effective_gas_price paid by the sender (to_address null: burnt base fee and the
                  proposer's tip together);
and per block: withdrawal (beacon-chain withdrawals, gwei * 10^9) and reward (trace_block's block/uncle
rewards, pre-Merge). A frame that failed, and every frame under it, moves nothing; a reverted transaction
moves nothing but its fee. DELEGATECALL, STATICCALL and CALLCODE frames move nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from fundtrail.errors import DecodeError
from fundtrail.model.evm_abi import TRANSFER as TRANSFER_TOPIC
from fundtrail.store.schema import AMOUNT, TS

_F = TypeVar("_F", bound=Callable[..., Any])
# what a JSON value of the wrong shape (a missing key, a list for an object, "0xzz" for a number, a
# number too large for its column) raises in the mappers; a node's answer is untrusted input
_SHAPE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, AssertionError, OverflowError,
                 RecursionError)


def _checked(what: str) -> Callable[[_F], _F]:
    """Turn a wrong-shaped JSON-RPC answer into a DecodeError naming what was being mapped."""
    def deco(fn: _F) -> _F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except _SHAPE_ERRORS as e:
                block = next((a.get("number") for a in args if isinstance(a, dict) and "number" in a), None)
                raise DecodeError(f"malformed JSON-RPC {what}: {type(e).__name__}: {str(e)[:200]}",
                                  block=str(block)[:80] if block is not None else None) from None
        return inner  # type: ignore[return-value]
    return deco

MAX_DECIMAL = 10**38
NO_VALUE_CALLS = {"delegatecall", "staticcall", "callcode"}


def qty(v: Any) -> int | None:
    """A JSON-RPC quantity (0x hex, or a plain int in some fixtures) as int."""
    if v is None:
        return None
    if type(v) is str and v[:2] == "0x" and len(v) > 2:  # the usual case, first
        return int(v, 16)
    if isinstance(v, int):
        return v
    s = str(v)
    if s.startswith(("0x", "0X")):
        return int(s, 16) if len(s) > 2 else 0
    return int(s)


def addr(v: Any) -> str | None:
    return str(v).lower() if v else None


def dec(v: int | None) -> Decimal | None:
    if v is None or v >= MAX_DECIMAL or v < 0:
        return None
    return Decimal(v)


def decimals(values: Sequence[int | None]) -> pa.Array:
    """DECIMAL(38,0) of Python ints (null for None and for what does not fit, as ``dec``). Bulk path: when
    every value fits int64 (nearly always, even in wei) one int64 array is cast; else via Decimal."""
    try:
        a = pa.array(values, pa.int64())
    except (OverflowError, pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([dec(v) for v in values], AMOUNT)
    if len(a) and a.null_count < len(a) and pc.min(a).as_py() < 0:
        return pa.array([dec(v) for v in values], AMOUNT)
    return a.cast(AMOUNT)


def amount_cols(values: Sequence[int | None]) -> tuple[pa.Array, pa.Array]:
    """DECIMAL(38,0) amounts and ``amount_raw`` strings for the ones that do not fit."""
    amt = decimals(values)
    if amt.null_count == 0:
        return amt, pa.nulls(len(values), pa.string())
    raw = pa.array([str(v) if v is not None and (v >= MAX_DECIMAL or v < 0) else None for v in values],
                   pa.string())
    return amt, raw


@dataclass(slots=True)
class Rows:
    """Columns being gathered for one batch of blocks (addresses still as strings)."""

    blocks: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in (
        "height", "hash", "prev_hash", "time", "tx_count", "miner", "gas_used", "gas_limit",
        "base_fee_per_gas", "size", "withdrawal_count")})
    txs: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in (
        "height", "tx_index", "txid", "time", "from", "to", "value", "gas", "gas_price", "gas_used",
        "effective_gas_price", "fee", "status", "created_contract", "nonce", "tx_type", "input_selector")})
    transfers: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in (
        "height", "time", "txid", "tx_index", "seq", "from", "to", "asset", "amount", "kind",
        "trace_address", "log_index")})
    logs: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in (
        "height", "txid", "tx_index", "log_index", "address", "topic0", "topic1", "topic2", "topic3",
        "data")})
    token_first_seen: dict[str, int] = field(default_factory=dict)

    def transfer(self, height: int, time: int, txid: str | None, tx_index: int | None, seq: int,
                 frm: str | None, to: str | None, asset: str, amount: int, kind: str,
                 trace_address: str | None = None, log_index: int | None = None) -> None:
        t = self.transfers
        t["height"].append(height)
        t["time"].append(time)
        t["txid"].append(txid)
        t["tx_index"].append(tx_index)
        t["seq"].append(seq)
        t["from"].append(frm)
        t["to"].append(to)
        t["asset"].append(asset)
        t["amount"].append(amount)
        t["kind"].append(kind)
        t["trace_address"].append(trace_address)
        t["log_index"].append(log_index)


@dataclass(frozen=True, slots=True)
class Move:
    """A value movement found in a trace (internal, create, selfdestruct or reward)."""

    kind: str
    frm: str | None
    to: str | None
    value: int
    trace_address: str


# --- traces --------------------------------------------------------------------------------------------

@_checked("callTracer trace")
def moves_from_calltracer(frame: dict[str, Any]) -> list[Move]:
    """Value movements under a geth callTracer top-level frame (the top-level frame itself excluded: the
    transaction's own value is taken from the transaction). Failed frames and their subtrees move nothing."""
    out: list[Move] = []

    def walk(f: dict[str, Any], path: list[int]) -> None:
        if f.get("error"):
            return
        for i, c in enumerate(f.get("calls") or []):
            p = path + [i]
            if c.get("error"):
                continue
            typ = str(c.get("type", "")).lower()
            value = qty(c.get("value")) or 0
            ta = ",".join(map(str, p))
            if typ == "selfdestruct":
                if value > 0:
                    out.append(Move("selfdestruct", addr(c.get("from")), addr(c.get("to")), value, ta))
            elif typ in ("create", "create2"):
                if value > 0:
                    out.append(Move("create", addr(c.get("from")), addr(c.get("to")), value, ta))
            elif typ not in NO_VALUE_CALLS and value > 0:
                out.append(Move("internal", addr(c.get("from")), addr(c.get("to")), value, ta))
            walk(c, p)

    walk(frame, [])
    return out


@_checked("trace_block answer")
def moves_from_parity(traces: Iterable[dict[str, Any]]) -> tuple[dict[str, list[Move]], list[Move]]:
    """Value movements from ``trace_block`` traces: per transaction hash (nested frames only) and the
    block's rewards. A trace with an error fails itself and every trace under its traceAddress."""
    by_tx: dict[str, list[Move]] = {}
    rewards: list[Move] = []
    failed: dict[str, list[tuple[int, ...]]] = {}
    for t in traces:
        typ = t.get("type")
        action = t.get("action") or {}
        if typ == "reward":
            v = qty(action.get("value")) or 0
            if v > 0:
                rewards.append(Move("reward", None, addr(action.get("author")), v,
                                    str(action.get("rewardType") or "block")))
            continue
        txh = t.get("transactionHash")
        if txh is None:
            continue
        txh = txh.lower()
        ta = tuple(t.get("traceAddress") or ())
        fl = failed.setdefault(txh, [])
        if t.get("error"):
            fl.append(ta)
            continue
        if any(ta[: len(f)] == f for f in fl):
            continue
        if not ta:
            continue  # the top-level frame: the transaction's own value
        key = ",".join(map(str, ta))
        if typ == "call":
            if str(action.get("callType", "call")).lower() in NO_VALUE_CALLS:
                continue
            v = qty(action.get("value")) or 0
            if v > 0:
                by_tx.setdefault(txh, []).append(Move("internal", addr(action.get("from")), addr(action.get("to")),
                                                      v, key))
        elif typ == "create":
            v = qty(action.get("value")) or 0
            res = t.get("result") or {}
            if v > 0:
                by_tx.setdefault(txh, []).append(Move("create", addr(action.get("from")), addr(res.get("address")),
                                                      v, key))
        elif typ in ("suicide", "selfdestruct"):
            v = qty(action.get("balance")) or 0
            if v > 0:
                by_tx.setdefault(txh, []).append(Move("selfdestruct", addr(action.get("address")),
                                                      addr(action.get("refundAddress")), v, key))
    return by_tx, rewards


# --- blocks --------------------------------------------------------------------------------------------

@_checked("log")
def token_transfer(log: dict[str, Any]) -> tuple[str, str, int] | None:
    """(from, to, value) of an ERC-20 Transfer log, else None. As ethereum-etl: the topics and the data's
    32-byte words together must be exactly [sig, from, to, value] (covers tokens that index nothing)."""
    topics = [str(x).lower() for x in (log.get("topics") or [])]
    if not topics or topics[0] != TRANSFER_TOPIC:
        return None
    data = str(log.get("data") or "0x")[2:]
    if len(data) % 64:
        return None
    words = topics + ["0x" + data[i : i + 64] for i in range(0, len(data), 64)]
    if len(words) != 4:
        return None
    return "0x" + words[1][-40:], "0x" + words[2][-40:], int(words[3], 16)


@_checked("block")
def add_block(rows: Rows, block: dict[str, Any], receipts: dict[str, dict[str, Any]],
              tx_moves: dict[str, list[Move]] | None, rewards: Sequence[Move], native: str) -> None:
    """Add one block (with full transaction objects), its receipts by tx hash, and its trace moves."""
    height = qty(block["number"])
    assert height is not None
    ts = qty(block["timestamp"]) or 0
    txs = block.get("transactions") or []
    wds = block.get("withdrawals")
    b = rows.blocks
    b["height"].append(height)
    b["hash"].append(str(block["hash"]).lower())
    b["prev_hash"].append(str(block["parentHash"]).lower())
    b["time"].append(ts)
    b["tx_count"].append(len(txs))
    b["miner"].append(addr(block.get("miner")))
    b["gas_used"].append(qty(block.get("gasUsed")))
    b["gas_limit"].append(qty(block.get("gasLimit")))
    b["base_fee_per_gas"].append(qty(block.get("baseFeePerGas")))
    b["size"].append(qty(block.get("size")))
    b["withdrawal_count"].append(len(wds) if wds is not None else None)

    t = rows.txs
    lg = rows.logs
    for pos, tx in enumerate(txs):
        txid = str(tx["hash"]).lower()
        idx = qty(tx.get("transactionIndex"))
        idx = pos if idx is None else idx
        rc = receipts.get(txid)
        frm = addr(tx.get("from"))
        to = addr(tx.get("to"))
        value = qty(tx.get("value")) or 0
        gas_price = qty(tx.get("gasPrice"))
        status = gas_used = eff = fee = created = None
        if rc is not None:
            status = qty(rc.get("status"))
            gas_used = qty(rc.get("gasUsed"))
            eff = qty(rc.get("effectiveGasPrice"))
            if eff is None:
                eff = gas_price
            fee = gas_used * eff if gas_used is not None and eff is not None else None
            created = addr(rc.get("contractAddress"))
        inp = str(tx.get("input") or "0x")
        t["height"].append(height)
        t["tx_index"].append(idx)
        t["txid"].append(txid)
        t["time"].append(ts)
        t["from"].append(frm)
        t["to"].append(to)
        t["value"].append(value)
        t["gas"].append(qty(tx.get("gas")))
        t["gas_price"].append(gas_price)
        t["gas_used"].append(gas_used)
        t["effective_gas_price"].append(eff)
        t["fee"].append(fee)
        t["status"].append(status)
        t["created_contract"].append(created)
        t["nonce"].append(qty(tx.get("nonce")))
        t["tx_type"].append(qty(tx.get("type")) or 0)
        t["input_selector"].append(inp[:10].lower() if len(inp) >= 10 else None)

        ok = status != 0  # pre-Byzantium receipts have no status: taken as succeeded
        seq = 0
        if ok and value > 0:
            if to is not None:
                rows.transfer(height, ts, txid, idx, seq, frm, to, native, value, "call", "")
            else:
                rows.transfer(height, ts, txid, idx, seq, frm, created, native, value, "create", "")
            seq += 1
        if ok and tx_moves is not None:
            for m in tx_moves.get(txid, ()):
                rows.transfer(height, ts, txid, idx, seq, m.frm, m.to, native, m.value, m.kind, m.trace_address)
                seq += 1
        if rc is not None:
            for lo in rc.get("logs") or []:
                if lo.get("removed"):
                    continue
                li = qty(lo.get("logIndex"))
                topics = [str(x).lower() for x in (lo.get("topics") or [])] + [None, None, None, None]
                contract = addr(lo.get("address"))
                lg["height"].append(height)
                lg["txid"].append(txid)
                lg["tx_index"].append(idx)
                lg["log_index"].append(li)
                lg["address"].append(contract)
                lg["topic0"].append(topics[0])
                lg["topic1"].append(topics[1])
                lg["topic2"].append(topics[2])
                lg["topic3"].append(topics[3])
                lg["data"].append(str(lo.get("data") or "0x").lower())
                tt = token_transfer(lo)
                if tt is not None and contract is not None:
                    rows.transfer(height, ts, txid, idx, seq, tt[0], tt[1], contract, tt[2], "token", None, li)
                    seq += 1
                    rows.token_first_seen.setdefault(contract, height)
            if fee:
                rows.transfer(height, ts, txid, idx, seq, frm, None, native, fee, "fee")
                seq += 1
    for i, w in enumerate(wds or []):
        gwei = qty(w.get("amount")) or 0
        if gwei > 0:
            rows.transfer(height, ts, None, None, i, None, addr(w.get("address")), native, gwei * 10**9,
                          "withdrawal", str(qty(w.get("index"))))
    for i, m in enumerate(rewards):
        rows.transfer(height, ts, None, None, i, None, m.to, native, m.value, "reward", m.trace_address)


def _ints(v: list[Any], typ: pa.DataType) -> pa.Array:
    return pa.array(v, typ)


def _ts(v: list[int]) -> pa.Array:
    return pa.array(v, pa.int64()).cast(TS)


@_checked("block values")
def to_tables(rows: Rows, chain: str, ids: Any) -> dict[str, pa.Table]:
    """Arrow tables of the batch; ``ids(list_of_address_strings) -> numpy int64`` (AddressBook.ids, with
    -1 for null, which becomes a null id)."""
    import numpy as np

    def id_col(values: list[str | None]) -> pa.Array:
        if all(v is None for v in values):  # AddressBook.ids wants at least one address
            return pa.nulls(len(values), pa.int64())
        arr = ids(pa.array(values, pa.string()))
        return pa.array(arr, pa.int64(), mask=np.asarray(arr) < 0)

    def chain_col(n: int) -> pa.Array:
        return pa.array([chain] * n, pa.string())

    b = rows.blocks
    nb = len(b["height"])
    blocks = pa.table({
        "chain": chain_col(nb), "height": _ints(b["height"], pa.int64()), "hash": pa.array(b["hash"], pa.string()),
        "prev_hash": pa.array(b["prev_hash"], pa.string()), "time": _ts(b["time"]),
        "tx_count": _ints(b["tx_count"], pa.int32()), "miner": pa.array(b["miner"], pa.string()),
        "gas_used": _ints(b["gas_used"], pa.int64()), "gas_limit": _ints(b["gas_limit"], pa.int64()),
        "base_fee_per_gas": decimals(b["base_fee_per_gas"]),
        "size": _ints(b["size"], pa.int64()), "withdrawal_count": _ints(b["withdrawal_count"], pa.int32()),
    })
    t = rows.txs
    nt = len(t["txid"])
    txs = pa.table({
        "chain": chain_col(nt), "height": _ints(t["height"], pa.int64()), "tx_index": _ints(t["tx_index"], pa.int32()),
        "txid": pa.array(t["txid"], pa.string()), "time": _ts(t["time"]),
        "from_id": id_col(t["from"]), "to_id": id_col(t["to"]),
        "value": decimals(t["value"]), "gas": _ints(t["gas"], pa.int64()),
        "gas_price": decimals(t["gas_price"]),
        "gas_used": _ints(t["gas_used"], pa.int64()),
        "effective_gas_price": decimals(t["effective_gas_price"]),
        "fee": decimals(t["fee"]), "status": _ints(t["status"], pa.int8()),
        "created_contract_id": id_col(t["created_contract"]), "nonce": _ints(t["nonce"], pa.int64()),
        "tx_type": _ints(t["tx_type"], pa.int16()), "input_selector": pa.array(t["input_selector"], pa.string()),
    })
    r = rows.transfers
    nr = len(r["seq"])
    amt, raw = amount_cols(r["amount"])
    transfers = pa.table({
        "chain": chain_col(nr), "height": _ints(r["height"], pa.int64()), "time": _ts(r["time"]),
        "txid": pa.array(r["txid"], pa.string()), "tx_index": _ints(r["tx_index"], pa.int32()),
        "seq": _ints(r["seq"], pa.int32()), "from_id": id_col(r["from"]), "to_id": id_col(r["to"]),
        "asset": pa.array(r["asset"], pa.string()), "amount": amt, "amount_raw": raw,
        "kind": pa.array(r["kind"], pa.string()), "trace_address": pa.array(r["trace_address"], pa.string()),
        "log_index": _ints(r["log_index"], pa.int32()),
    })
    lg = rows.logs
    nl = len(lg["txid"])
    logs = pa.table({
        "chain": chain_col(nl), "height": _ints(lg["height"], pa.int64()), "txid": pa.array(lg["txid"], pa.string()),
        "tx_index": _ints(lg["tx_index"], pa.int32()), "log_index": _ints(lg["log_index"], pa.int32()),
        **{k: pa.array(lg[k], pa.string()) for k in ("address", "topic0", "topic1", "topic2", "topic3", "data")},
    })
    return {"evm_blocks": blocks, "evm_transactions": txs, "evm_transfers": transfers, "evm_logs": logs}

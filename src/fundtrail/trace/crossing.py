"""Crossings: a trace continuing in another asset (DEX swap) or on another chain (bridge); mixer pools.

Swap (same chain): in a transaction whose sender (``evm_transactions.from_id``, the trader) sends one asset
(the in-legs, fees excluded) and receives another (the out-legs), the trace continues in the received
asset: the out-legs carry ``tainted_in / amount_in`` of their amounts (pro rata, rounded down, the
assets being different). In processing order the out-legs of a swap come after its in-legs (phase 1).

Bridge (chain to chain), matched first by the bridge's own ids:
* EVM -> any: ``BridgeDeposit(depositId, sender, token, amount, destChain, destAddress)`` on the source
  chain; released on an EVM chain by ``BridgeRelease(depositId, …, srcChain = source chain, …)`` or on a
  Bitcoin chain by a transaction with OP_RETURN ``BRIDGE:OUT:<srcChain>:<depositId>``;
* Bitcoin -> EVM: a transaction with OP_RETURN ``BRIDGE:IN:<destChain>:<destAddress>`` paying the bridge
  wallet; released by ``BridgeRelease`` with ``srcChain`` = the Bitcoin chain and ``srcTx`` = that txid.
Without an id match, a release on another chain naming the source chain, of 90-100% of the deposited
amount within 3 days after the deposit, is taken with confidence ``0.6 / number of such candidates``
(the closest in time); with none, the deposit is stopped as ``unmatched_bridge``.

Mixer pools (Tornado style): ``Deposit(commitment, leafIndex, timestamp)`` and ``Withdrawal(to,
nullifierHash, relayer, fee)``. A traced deposit is an endpoint of category mixer; its candidate
withdrawals are the pool's withdrawals within 30 days after it, each with confidence ``1 / n`` (n = the
withdrawals in that window: the anonymity set a real pool gives), the ten closest in time listed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fundtrail.model.evm_abi import (
    BRIDGE_DEPOSIT,
    BRIDGE_RELEASE,
    MIXER_DEPOSIT,
    MIXER_WITHDRAWAL,
    decode,
)
from fundtrail.store import Workspace

ZERO_ADDRESS = "0x" + "0" * 40
AMOUNT_TIME_WINDOW = 3 * 86400
MIXER_WINDOW = 30 * 86400
KIND_FEE = 6


# --- swaps -------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SwapLegs:
    trader: int
    in_rows: tuple[int, ...]
    out_rows: tuple[int, ...]


def find_swaps(txid: pa.Array, src: np.ndarray, dst: np.ndarray, asset: np.ndarray, kind: np.ndarray,
               tx_sender: dict[str, int]) -> tuple[np.ndarray, dict[str, SwapLegs]]:
    """The swap transactions of a ledger (see the module docstring) and the phase of every row."""
    n = len(src)
    phase = np.zeros(n, np.int8)
    swaps: dict[str, SwapLegs] = {}
    if n == 0:
        return phase, swaps
    enc = pc.dictionary_encode(txid)
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    na = int(asset.max()) + 1
    keys = np.unique(codes * na + asset)
    per_tx = np.bincount(keys // na, minlength=len(enc.dictionary))
    cand = np.flatnonzero(per_tx >= 2)
    if len(cand) == 0:
        return phase, swaps
    rows = np.flatnonzero(np.isin(codes, cand))
    rows = rows[np.argsort(codes[rows], kind="stable")]
    names = enc.dictionary.to_pylist()
    start = 0
    while start < len(rows):
        c = codes[rows[start]]
        end = start
        while end < len(rows) and codes[rows[end]] == c:
            end += 1
        group = rows[start:end].tolist()
        start = end
        t = names[c]
        trader = tx_sender.get(t, -1)
        if trader < 0:
            continue
        ins = [r for r in group if src[r] == trader and dst[r] != trader and kind[r] != KIND_FEE]
        in_assets = {int(asset[r]) for r in ins}
        outs = [r for r in group if dst[r] == trader and src[r] != trader and int(asset[r]) not in in_assets]
        if ins and outs:
            swaps[t] = SwapLegs(int(trader), tuple(ins), tuple(outs))
            phase[outs] = 1
    return phase, swaps


def swap_phases(txid: pa.Array, src: np.ndarray, dst: np.ndarray, asset: np.ndarray, kind: np.ndarray,
                tx_sender: dict[str, int]) -> np.ndarray:
    return find_swaps(txid, src, dst, asset, kind, tx_sender)[0]


# --- bridges and mixer pools ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BridgeDeposit:
    chain: str
    txid: str
    bridge: str
    deposit_id: int
    sender: str
    token: str
    amount: int
    dest_chain: str
    dest_address: str
    time: int


@dataclass(frozen=True, slots=True)
class BridgeRelease:
    chain: str
    txid: str
    bridge: str
    deposit_id: int | None
    recipient: str | None
    token: str | None
    amount: int
    src_chain: str
    src_tx: str | None
    time: int
    kind: str = "evm"  # evm | btc


@dataclass(frozen=True, slots=True)
class Withdrawal:
    chain: str
    pool: str
    txid: str
    to: str
    relayer: str
    fee: int
    time: int


@dataclass(slots=True)
class CrossBook:
    """Every bridge and mixer-pool event of the workspace, indexed for matching."""

    deposits_by_tx: dict[tuple[str, str], list[BridgeDeposit]] = field(default_factory=dict)
    releases_by_id: dict[tuple[str, int], BridgeRelease] = field(default_factory=dict)
    releases_by_srctx: dict[tuple[str, str], BridgeRelease] = field(default_factory=dict)
    releases: list[BridgeRelease] = field(default_factory=list)
    btc_in: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # (chain, txid) -> dest
    bridges: dict[str, set[str]] = field(default_factory=dict)  # chain -> bridge contract addresses
    pools: dict[str, set[str]] = field(default_factory=dict)  # chain -> mixer pool addresses
    withdrawals: dict[tuple[str, str], list[Withdrawal]] = field(default_factory=dict)  # (chain, pool)
    btc_bridge_wallet: dict[str, set[int]] = field(default_factory=dict)  # chain -> address ids

    def match_release(self, dep: BridgeDeposit) -> tuple[BridgeRelease | None, str, float]:
        r = self.releases_by_id.get((dep.chain, dep.deposit_id))
        if r is not None:
            return r, "deposit_id", 1.0
        known = self.deposit_keys()
        cands = [r for r in self.releases if r.src_chain == dep.chain and r.kind == "evm"
                 and (r.deposit_id is None or (r.src_chain, r.deposit_id) not in known)
                 and dep.time <= r.time <= dep.time + AMOUNT_TIME_WINDOW
                 and dep.amount * 9 <= r.amount * 10 <= dep.amount * 10]
        if not cands:
            return None, "none", 0.0
        best = min(cands, key=lambda r: (r.time - dep.time, r.txid))
        return best, "amount_time", round(0.6 / len(cands), 3)

    def deposit_keys(self) -> set[tuple[str, int]]:
        """(chain, deposit id) of every deposit: a release naming one of these belongs to it, not to a guess."""
        return {(d.chain, d.deposit_id) for ds in self.deposits_by_tx.values() for d in ds}

    def candidates(self, chain: str, pool: str, time: int, limit: int = 10) -> tuple[list[Withdrawal], int]:
        """The pool's withdrawals within the window after ``time`` (the first ``limit``) and their count."""
        ws_ = [w for w in self.withdrawals.get((chain, pool), []) if time <= w.time <= time + MIXER_WINDOW]
        return sorted(ws_, key=lambda w: (w.time, w.txid))[:limit], len(ws_)


def _hexbytes(s: str | None) -> bytes:
    if not s:
        return b""
    s = s[2:] if s.startswith(("0x", "0X")) else s
    try:
        return bytes.fromhex(s)
    except ValueError:
        return b""


def _topic_int(s: str | None) -> int | None:
    b = _hexbytes(s)
    return int.from_bytes(b, "big") if b else None


def _topic_addr(s: str | None) -> str | None:
    b = _hexbytes(s)
    return "0x" + b[-20:].hex() if len(b) >= 20 else None


def build_book(ws: Workspace) -> CrossBook:
    book = CrossBook()
    con = ws.connect()
    try:
        logs = con.sql(f"""
            SELECT l.chain, l.txid, l.height, lower(l.address) AS address, lower(l.topic0) AS topic0, l.topic1,
                   l.topic2, l.data, coalesce(epoch(b.time), 0)::BIGINT AS time
            FROM evm_logs l LEFT JOIN evm_blocks b ON b.chain = l.chain AND b.height = l.height
            WHERE lower(l.topic0) IN ('{BRIDGE_DEPOSIT}', '{BRIDGE_RELEASE}', '{MIXER_DEPOSIT}', '{MIXER_WITHDRAWAL}')
            ORDER BY l.chain, l.height, l.tx_index, l.log_index""").to_arrow_table()
        # the few bridge outputs first, then only their transactions (a join against the whole
        # transactions table would hash every txid of the chain); txids stay binary (as stored) until the
        # result, which gives them as hex
        con.execute("""
            CREATE TEMP TABLE bridge_outs AS
            SELECT chain, txid, op_return FROM utxo_outputs
            WHERE op_return >= 'BRIDGE:'::BLOB AND op_return < 'BRIDGE;'::BLOB""")
        btc = con.sql("""
            WITH t AS (SELECT chain, txid, min(time) AS time FROM utxo_transactions
                       WHERE txid IN (SELECT txid FROM bridge_outs) GROUP BY chain, txid)
            SELECT o.chain, lower(hex(o.txid)) AS txid, o.op_return, coalesce(epoch(t.time), 0)::BIGINT AS time
            FROM bridge_outs o LEFT JOIN t ON t.chain = o.chain AND t.txid = o.txid""").to_arrow_table()
        # the inputs and outputs of the bridge transactions only (semi-joins on their few txids)
        con.execute("""
            CREATE TEMP TABLE bridge_ins AS
            SELECT chain, txid, address_id FROM utxo_inputs
            WHERE txid IN (SELECT txid FROM bridge_outs) AND address_id IS NOT NULL""")
        wallets = con.sql("""
            WITH b AS (SELECT DISTINCT chain, txid, op_return[1:10] AS tag FROM bridge_outs),
            bo AS (SELECT chain, txid, address_id, op_return FROM utxo_outputs
                   WHERE txid IN (SELECT txid FROM bridge_outs))
            SELECT i.chain, i.address_id FROM bridge_ins i JOIN b ON b.chain = i.chain AND b.txid = i.txid
            WHERE b.tag = 'BRIDGE:OUT'::BLOB AND i.address_id >= 0
            UNION
            SELECT o.chain, o.address_id FROM bo o JOIN b ON b.chain = o.chain AND b.txid = o.txid
            WHERE b.tag = 'BRIDGE:IN:'::BLOB AND o.op_return IS NULL AND o.address_id >= 0
              AND NOT EXISTS (SELECT 1 FROM bridge_ins i2 WHERE i2.chain = o.chain AND i2.txid = o.txid
                              AND i2.address_id = o.address_id)""").to_arrow_table()
    finally:
        con.close()
    for r in logs.to_pylist():
        t0, data = r["topic0"], _hexbytes(r["data"])
        chain, addr = r["chain"], r["address"]
        try:
            if t0 == BRIDGE_DEPOSIT:
                token, amount, dchain, daddr = decode(["address", "uint256", "string", "string"], data)
                d = BridgeDeposit(chain, r["txid"], addr, _topic_int(r["topic1"]) or 0, _topic_addr(r["topic2"]) or "",
                                  token.lower(), int(amount), dchain, daddr, int(r["time"]))
                book.deposits_by_tx.setdefault((chain, r["txid"]), []).append(d)
                book.bridges.setdefault(chain, set()).add(addr)
            elif t0 == BRIDGE_RELEASE:
                token, amount, schain, stx = decode(["address", "uint256", "string", "string"], data)
                rel = BridgeRelease(chain, r["txid"], addr, _topic_int(r["topic1"]), _topic_addr(r["topic2"]),
                                    token.lower(), int(amount), schain, stx or None, int(r["time"]))
                book.releases.append(rel)
                if rel.deposit_id is not None:
                    book.releases_by_id.setdefault((schain, rel.deposit_id), rel)
                if stx:
                    book.releases_by_srctx.setdefault((schain, stx.lower()), rel)
                book.bridges.setdefault(chain, set()).add(addr)
            elif t0 == MIXER_DEPOSIT:
                book.pools.setdefault(chain, set()).add(addr)
            elif t0 == MIXER_WITHDRAWAL:
                to, _nh, fee = decode(["address", "bytes32", "uint256"], data)
                book.withdrawals.setdefault((chain, addr), []).append(
                    Withdrawal(chain, addr, r["txid"], to.lower(), _topic_addr(r["topic1"]) or "", int(fee),
                               int(r["time"])))
                book.pools.setdefault(chain, set()).add(addr)
        except Exception:  # noqa: BLE001 - a log that does not decode is not one of ours
            continue
    for r in btc.to_pylist():
        text = (r["op_return"] or b"").decode("ascii", "replace")
        parts = text.split(":")
        if len(parts) >= 4 and parts[1] == "OUT":
            try:
                dep_id = int(parts[3])
            except ValueError:
                continue
            rel = BridgeRelease(r["chain"], r["txid"], "", dep_id, None, "BTC", 0, parts[2], None, int(r["time"]),
                                kind="btc")
            book.releases_by_id.setdefault((parts[2], dep_id), rel)
            book.releases.append(rel)
        elif len(parts) >= 4 and parts[1] == "IN":
            book.btc_in[(r["chain"], r["txid"])] = (parts[2], ":".join(parts[3:]).lower())
    for c, a in zip(wallets["chain"].to_pylist(), wallets["address_id"].to_pylist(), strict=True):
        book.btc_bridge_wallet.setdefault(c, set()).add(int(a))
    return book


_CACHE: dict[str, tuple[int, CrossBook]] = {}
_LOCK = threading.Lock()


def cross_book(ws: Workspace) -> CrossBook:
    key = str(ws.home.resolve())
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0] == ws.generation:
            return hit[1]
    book = build_book(ws)
    with _LOCK:
        _CACHE[key] = (ws.generation, book)
    return book


# address strings are resolved on demand (through the dictionary's index) for the ids a result shows, never
# held for a whole chain in memory; a small memo per workspace generation and chain keeps repeated lookups cheap
_NAMES: dict[tuple[str, str], tuple[int, dict[int, str], dict[str, int]]] = {}
MEMO_LIMIT = 50_000


def _memo(ws: Workspace, chain: str) -> tuple[dict[int, str], dict[str, int]]:
    key = (str(ws.home.resolve()), chain)
    with _LOCK:
        hit = _NAMES.get(key)
        if hit is None or hit[0] != ws.generation or len(hit[1]) > MEMO_LIMIT:
            hit = (ws.generation, {}, {})
            _NAMES[key] = hit
    return hit[1], hit[2]


def _lookup(ws: Workspace, chain: str, column: str, values: pa.Array) -> tuple[list[int], list[str]]:
    """Through the index of the address dictionary when one is built for the chain's current part list
    (store/addrindex.py: microseconds a lookup; the web UI builds it); else one DuckDB query over the
    chain's ``addresses`` files only."""
    from fundtrail.store.addrindex import index

    idx = index(ws, chain, build_missing=False)
    if idx is not None:
        if column == "address":
            got = idx.ids_of(values.to_pylist())
            return list(got.values()), list(got.keys())
        got_s = idx.strings_of(values.to_numpy(zero_copy_only=False))
        return list(got_s.keys()), list(got_s.values())
    return _scan(ws, chain, column, values)


def _scan(ws: Workspace, chain: str, column: str, values: pa.Array) -> tuple[list[int], list[str]]:
    """One DuckDB query over the chain's ``addresses`` files only (no workspace-wide views to set up)."""
    import duckdb

    paths = ws.part_paths("addresses", chain)
    if not paths:
        return [], []
    files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET threads = 2")
        con.register("wanted", pa.table({"v": values}))
        # the min/max bound lets DuckDB skip row groups by their statistics
        lo, hi = pc.min_max(values).values()
        t = con.sql(f"""SELECT a.address_id, a.address
                        FROM read_parquet([{files}], union_by_name = true) a
                        WHERE a.chain = ? AND a.{column} BETWEEN ? AND ? AND a.{column} IN (SELECT v FROM wanted)""",
                    params=[chain, lo.as_py(), hi.as_py()]).to_arrow_table()
    finally:
        con.close()
    return t["address_id"].to_pylist(), t["address"].to_pylist()


def address_ids(ws: Workspace, chain: str, addresses: list[str]) -> dict[str, int]:
    """Ids of address strings on ``chain`` (those the dictionary holds)."""
    by_id, by_text = _memo(ws, chain)
    want = sorted({a for a in addresses if a is not None})
    out = {a: by_text[a] for a in want if a in by_text}
    missing = [a for a in want if a not in out]
    if missing:
        for i, a in zip(*_lookup(ws, chain, "address", pa.array(missing, pa.string())), strict=True):
            if i is not None and a is not None:
                out.setdefault(a, int(i))
                by_text[a] = int(i)
                by_id[int(i)] = a
    return out


def address_strings(ws: Workspace, chain: str, ids: Any) -> dict[int, str]:
    """Strings of address ids on ``chain`` (ids the dictionary lacks are left out)."""
    ids = np.unique(np.asarray(ids, np.int64))
    ids = ids[ids >= 0]
    if not len(ids):
        return {}
    by_id, by_text = _memo(ws, chain)
    out = {i: by_id[i] for i in ids.tolist() if i in by_id}
    missing = [i for i in ids.tolist() if i not in out]
    if missing:
        for i, a in zip(*_lookup(ws, chain, "address_id", pa.array(missing, pa.int64())), strict=True):
            if i is not None and a is not None:
                out[int(i)] = a
                by_id[int(i)] = a
                by_text.setdefault(a, int(i))
    return out

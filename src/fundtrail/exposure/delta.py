"""The blocks a UTXO chain gained since an index version, and the forward runs continued over them.

:func:`read_delta` reads only the parts of ``utxo_transactions`` / ``utxo_outputs`` / ``utxo_inputs``
whose heights reach above the indexed height (the part footers carry the range) and keeps the rows above
it, in chain order. :func:`extend_forward` continues every forward run of the index (its
:class:`~fundtrail.exposure.utxo.Frontier`: the reached outputs still unspent) over those transactions with
the same rules as the haircut kernel (``trace/taint.py``): a transaction's tainted inputs are summed, shared
over its outputs and fee by the largest-remainder rule, at one hop more than its nearest tainted input (none
along a peel chain), stopping at services and pools and beyond ``max_hops``; outputs paid to a group's
addresses are seeds. Earlier blocks are never revisited: forward taint only flows to later transactions, so
the result equals a run over the whole chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fundtrail.exposure.utxo import MAX_PATH
from fundtrail.store import Workspace
from fundtrail.store import schema as S
from fundtrail.trace.graph import binary_ids
from fundtrail.trace.taint import PEEL_RATIO, S_NONE, split_exact


@dataclass(slots=True)
class Delta:
    """The transactions above a height, in chain order, with their outputs and inputs (CSR by tx)."""

    height: int  # the indexed height the delta starts after
    txid: np.ndarray  # (m, 32) uint8
    txhex: list[str]
    tx_height: np.ndarray
    tx_time: np.ndarray  # unix seconds
    out_ptr: np.ndarray  # [m+1]
    out_n: np.ndarray
    out_value: np.ndarray
    out_addr: np.ndarray  # -1: none
    out_opret: np.ndarray
    out_bridge: np.ndarray  # int8: 1 an OP_RETURN ``BRIDGE:IN`` (a deposit), 2 ``BRIDGE:OUT`` (a release)
    in_ptr: np.ndarray  # [m+1]
    in_prev: np.ndarray  # (k, 32) uint8: the spent output's txid (zeros: coinbase)
    in_prev_ok: np.ndarray  # bool: a previous output is named
    in_prev_n: np.ndarray
    in_value: np.ndarray  # 0 when not stored (then ``problems`` says so)
    in_addr: np.ndarray  # the spent output's address id, -1: none
    problems: list[str] = field(default_factory=list)

    @property
    def ntx(self) -> int:
        return len(self.tx_height)


def _above(ws: Workspace, table: str, chain: str, height: int, columns: list[str]) -> pa.Table:
    schema = S.schema_of(table)
    tables = []
    for p in ws.parts(table, chain):
        if p.hi is not None and p.hi <= height:
            continue
        t = pq.read_table(ws.home / p.file, columns=columns + ["height"], schema=schema)
        tables.append(t.filter(pc.greater(t["height"], height)))
    if not tables:
        return schema.empty_table().select(columns + ["height"])
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _ptr(owner: np.ndarray, m: int) -> np.ndarray:
    ptr = np.zeros(m + 1, np.int64)
    np.cumsum(np.bincount(owner, minlength=m), out=ptr[1:])
    return ptr


def read_delta(ws: Workspace, chain: str, height: int) -> Delta:
    """The rows of ``chain`` above ``height``."""
    txs = _above(ws, "utxo_transactions", chain, height, ["tx_index", "txid", "time"])
    raw, _ok = binary_ids(txs["txid"])
    tx_h = np.asarray(txs["height"].to_numpy(zero_copy_only=False), np.int64)
    tx_i = np.asarray(txs["tx_index"].fill_null(0).to_numpy(zero_copy_only=False), np.int64)
    order = np.lexsort((tx_i, tx_h))
    raw, tx_h = raw[order], tx_h[order]
    tm = txs["time"].combine_chunks()
    if pa.types.is_timestamp(tm.type):
        tm = tm.cast(pa.timestamp("s", tz="UTC")).cast(pa.int64())
    tx_time = np.asarray(tm.fill_null(0).to_numpy(zero_copy_only=False), np.int64)[order]
    m = len(raw)
    index = {raw[t].tobytes(): t for t in range(m)}
    problems: list[str] = []

    outs = _above(ws, "utxo_outputs", chain, height, ["txid", "n", "value", "address_id", "script_type", "op_return"])
    o_t, o_n, oo = _by_transaction(outs, index, f"output row(s) above height {height}", problems)
    opret = pc.fill_null(pc.or_(pc.equal(outs["script_type"], "nulldata"), pc.is_valid(outs["op_return"])), False)
    out_value = np.asarray(outs["value"].fill_null(0).to_numpy(zero_copy_only=False), np.int64)[oo]
    out_addr = np.asarray(outs["address_id"].fill_null(-1).to_numpy(zero_copy_only=False), np.int64)[oo]
    out_opret = np.asarray(opret.to_numpy(zero_copy_only=False), np.bool_)[oo]
    data = outs["op_return"].to_pylist()
    out_bridge = np.array([2 if x and x.startswith(b"BRIDGE:OUT") else 1 if x and x.startswith(b"BRIDGE:") else 0
                           for x in (data[i] for i in oo.tolist())], np.int8)

    ins = _above(ws, "utxo_inputs", chain, height, ["txid", "n", "prev_txid", "prev_n", "value", "address_id"])
    i_t, _, io = _by_transaction(ins, index, f"input row(s) above height {height}", problems)
    prev, prev_ok = binary_ids(ins["prev_txid"])
    prev_n = np.asarray(ins["prev_n"].fill_null(-1).to_numpy(zero_copy_only=False), np.int64)
    in_value = np.asarray(ins["value"].fill_null(0).to_numpy(zero_copy_only=False), np.int64)[io]
    novalue = np.asarray(ins["value"].is_null().to_numpy(zero_copy_only=False), np.bool_)[io]
    in_addr = np.asarray(ins["address_id"].fill_null(-1).to_numpy(zero_copy_only=False), np.int64)[io]
    prev, prev_ok, prev_n = prev[io], prev_ok[io] & (prev_n[io] >= 0), prev_n[io]
    if (prev_ok & novalue).any():
        problems.append(f"{int((prev_ok & novalue).sum())} input(s) above height {height} carry no value")
    return Delta(height, raw, [r.tobytes().hex() for r in raw], tx_h, tx_time, _ptr(o_t[oo], m), o_n[oo], out_value,
                 out_addr, out_opret, out_bridge, _ptr(i_t[io], m), prev, prev_ok, prev_n, in_value, in_addr, problems)


def _by_transaction(rows: pa.Table, index: dict[bytes, int], what: str, problems: list[str]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's transaction number (-1: none stored, counted in ``problems``), its ``n``, and the order of
    the matched rows by (transaction, n)."""
    raw, _ = binary_ids(rows["txid"])
    t = np.array([index.get(r.tobytes(), -1) for r in raw], np.int64)
    if (t < 0).any():
        problems.append(f"{int((t < 0).sum())} {what} name no stored transaction")
    n = np.asarray(rows["n"].to_numpy(zero_copy_only=False), np.int64)
    keep = np.flatnonzero(t >= 0)
    return t, n, keep[np.lexsort((n[keep], t[keep]))]


def peel_shape(d: Delta, t: int) -> int:
    """The continuing output (index into the delta's outputs) of ``t`` when it has a peel step's shape, else
    -1 (as ``trace.taint.peel_big``)."""
    o0, o1 = int(d.out_ptr[t]), int(d.out_ptr[t + 1])
    if o1 - o0 != 2 or int(d.in_ptr[t + 1] - d.in_ptr[t]) != 1:
        return -1
    a, b = o0, o0 + 1
    if d.out_opret[a] or d.out_opret[b] or d.out_value[a] <= 0 or d.out_value[b] <= 0:
        return -1
    big, small = (a, b) if d.out_value[a] >= d.out_value[b] else (b, a)
    if d.out_value[big] < PEEL_RATIO * d.out_value[small]:
        return -1
    pay = int(d.out_addr[small])  # the payment goes to another owner than the continuation and the coin
    if pay >= 0 and (pay == int(d.out_addr[big]) or pay == int(d.in_addr[int(d.in_ptr[t])])):
        return -1
    return big


def outpoint_keys(txid: np.ndarray, n: np.ndarray) -> np.ndarray:
    """A 64-bit key per outpoint (for a first match; equal keys are then compared in full)."""
    if not len(n):
        return np.empty(0, np.uint64)
    w = np.ascontiguousarray(txid).view("<u8").reshape(len(n), -1)
    return (w[:, 0] ^ w[:, 1] ^ w[:, 2] ^ w[:, 3]) ^ (np.asarray(n, np.uint64) * np.uint64(0x9E3779B97F4A7C15))


def spent_rows(d: Delta, fr_keys: np.ndarray, fr_txid: np.ndarray, fr_n: np.ndarray) -> dict[int, list[int]]:
    """Delta input index -> the frontier rows (of any run) it spends."""
    if not len(fr_n) or not len(d.in_prev_n):
        return {}
    qk = outpoint_keys(d.in_prev, np.maximum(d.in_prev_n, 0))
    order = np.argsort(fr_keys, kind="stable")
    sk = fr_keys[order]
    lo = np.searchsorted(sk, qk, "left")
    hi = np.searchsorted(sk, qk, "right")
    out: dict[int, list[int]] = {}
    for j in np.flatnonzero((hi > lo) & d.in_prev_ok).tolist():
        for r in order[lo[j]:hi[j]].tolist():
            if fr_n[r] == d.in_prev_n[j] and (fr_txid[r] == d.in_prev[j]).all():
                out.setdefault(j, []).append(r)
    return out


@dataclass(slots=True)
class RunSpec:
    """A forward run to continue: its group, its hop limit, its seed addresses (with ``since``) and
    txids, and whether seeds count as hits."""

    run: int
    gid: int
    max_hops: int
    members: frozenset[int]
    since: int | None
    seed_txids: frozenset[str]
    include_seeds: bool


@dataclass(slots=True)
class NewHit:
    run: int
    address_id: int
    taint: int
    hop: int
    path: list[str]


@dataclass(slots=True)
class Extended:
    hits: list[NewHit]  # per new tainted output, in chain order
    spent: np.ndarray  # frontier rows now spent
    frontier: dict[int, list[tuple[int, int, int, bool, list[str]]]]  # run -> (delta output, taint, hop, peel, path)
    followed: dict[int, set[int]]  # run -> the delta transactions it passed taint through


def extend_forward(d: Delta, runs: list[RunSpec], fr_run: np.ndarray, fr_taint: np.ndarray, fr_hop: np.ndarray,
                   fr_peel: np.ndarray, fr_path, spends: dict[int, list[int]], addr_stop: np.ndarray) -> Extended:
    """Continue ``runs`` over the delta (see the module docstring). ``fr_*``: the stored frontier rows;
    ``fr_path(row)`` gives a row's path; ``spends``: delta input -> frontier rows it spends."""
    m = d.ntx
    nout = len(d.out_value)
    # which delta output each delta input spends (-1: an older output)
    own = {d.txid[t].tobytes(): t for t in range(m)}
    in_src = np.full(len(d.in_prev_n), -1, np.int64)
    for j in np.flatnonzero(d.in_prev_ok).tolist():
        t = own.get(d.in_prev[j].tobytes())
        if t is not None:
            o = int(d.out_ptr[t]) + int(np.searchsorted(d.out_n[d.out_ptr[t]:d.out_ptr[t + 1]], d.in_prev_n[j]))
            if o < d.out_ptr[t + 1] and d.out_n[o] == d.in_prev_n[j]:
                in_src[j] = o
    spent_by = np.full(nout, -1, np.int64)
    for t in range(m):
        for j in range(int(d.in_ptr[t]), int(d.in_ptr[t + 1])):
            if in_src[j] >= 0:
                spent_by[in_src[j]] = t
    out_tx = np.repeat(np.arange(m, dtype=np.int64), np.diff(d.out_ptr))
    peel_of = [peel_shape(d, t) for t in range(m)]
    hits: list[NewHit] = []
    new_front: dict[int, list] = {}
    done_by_run: dict[int, set[int]] = {}
    spent_fr: list[int] = []
    by_run_rows: dict[int, dict[int, list[int]]] = {}
    for j, rows in spends.items():
        for r in rows:
            by_run_rows.setdefault(int(fr_run[r]), {}).setdefault(j, []).append(r)
            spent_fr.append(r)
    stop_len = len(addr_stop)
    for spec in runs:
        rid = spec.run
        taint: dict[int, int] = {}  # delta output -> taint
        hop: dict[int, int] = {}
        seed: set[int] = set()
        path: dict[int, list[str]] = {}
        followed: set[int] = set()  # delta outputs whose taint moves on when spent
        tx_done: dict[int, tuple[int, int]] = {}  # t -> (hop, best input j)
        # seeds: outputs paid to the group's addresses (from ``since``) and outputs of its seed transactions
        for t in range(m):
            o0, o1 = int(d.out_ptr[t]), int(d.out_ptr[t + 1])
            by_tx = d.txhex[t] in spec.seed_txids
            for o in range(o0, o1):
                if d.out_opret[o]:
                    continue
                a = int(d.out_addr[o])
                if by_tx or (a in spec.members and (spec.since is None or d.tx_time[t] >= spec.since)):
                    if d.out_value[o] > 0:
                        taint[o] = int(d.out_value[o])
                        hop[o] = 0
                        seed.add(o)
                        path[o] = []
                        if spent_by[o] >= 0:
                            followed.add(o)
        fr_in = by_run_rows.get(rid, {})
        for t in range(m):
            i0, i1 = int(d.in_ptr[t]), int(d.in_ptr[t + 1])
            T = 0
            h = 1 << 40
            bestv, best = -1, -1
            t_big = peel_of[t]
            any_in = False
            for j in range(i0, i1):
                src = int(in_src[j])
                if src >= 0:
                    if src not in followed:
                        continue
                    x, hp = taint[src], hop[src]
                    pl = peel_of[int(out_tx[src])] == src
                elif j in fr_in:
                    r = fr_in[j][0]
                    x, hp, pl = int(fr_taint[r]), int(fr_hop[r]), bool(fr_peel[r])
                else:
                    continue
                any_in = True
                T += x
                c = hp if (t_big >= 0 and pl) else hp + 1
                h = min(h, c)
                if x > bestv:
                    bestv, best = x, j
            if not any_in or T == 0 or h > spec.max_hops:
                continue
            tx_done[t] = (h, best)
            o0, o1 = int(d.out_ptr[t]), int(d.out_ptr[t + 1])
            v_in = int(d.in_value[i0:i1].sum())
            v_out = int(d.out_value[o0:o1].sum())
            w = [int(v) for v in d.out_value[o0:o1].tolist()] + [max(v_in - v_out, 0)]
            shares = split_exact(T, w)
            src = int(in_src[best])
            if src >= 0:
                bpath, bhop = path[src], hop[src]
            else:
                r = fr_in[best][0]
                bpath, bhop = fr_path(r), int(fr_hop[r])
            npath = ((bpath if bhop != 0 else []) + [d.txhex[t]])[-MAX_PATH:]
            for o in range(o0, o1):
                if o in seed:
                    path[o] = npath  # its creating transaction was followed: the path runs through it
                sh = shares[o - o0]
                if sh <= 0:
                    continue
                if o in taint:  # a seed already: cap at its value
                    taint[o] += min(sh, int(d.out_value[o]) - taint[o])
                    continue
                taint[o] = sh
                hop[o] = h
                path[o] = npath
                a = int(d.out_addr[o])
                k = int(addr_stop[a]) if 0 <= a < stop_len else S_NONE
                if k != S_NONE or d.out_opret[o]:
                    continue  # a service, a pool or a burn: recorded, not passed on
                if spent_by[o] >= 0:
                    followed.add(o)
        done_by_run[rid] = set(tx_done)
        front = new_front.setdefault(rid, [])
        for o in sorted(taint):
            x, hp = taint[o], hop[o]
            a = int(d.out_addr[o])
            if x > 0 and a >= 0 and (hp > 0 or spec.include_seeds):
                hits.append(NewHit(rid, a, x, hp, path[o]))
            passes = o in seed or (int(addr_stop[a]) if 0 <= a < stop_len else S_NONE) == S_NONE
            if x > 0 and passes and not d.out_opret[o] and spent_by[o] < 0:
                front.append((o, x, hp, peel_of[int(out_tx[o])] == o, path[o]))
    return Extended(hits, np.asarray(sorted(set(spent_fr)), np.int64), new_front, done_by_run)


__all__ = ["Delta", "read_delta", "extend_forward", "RunSpec", "Extended", "NewHit", "outpoint_keys", "spent_rows"]

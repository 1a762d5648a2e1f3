"""The exposure index: built from the workspace, stored as versions, loaded by the screening service.

A version is a directory ``HOME/exposure/vNNNNNN/`` (written under a temporary name, then renamed, then
named in ``CURRENT``): ``meta.json`` (heights per chain, tags digest, input digest, parameters, groups),
``exposure.parquet`` (one row per subject, direction, group and asset), ``labels.parquet`` (the resolved
attribution), ``sanctions.parquet`` (sanctions tags with their validity) and ``addresses-<chain>.npz``
(every address of the chain as a 64-bit key with its id and cluster id). Old versions are kept (``keep``)
so a verdict can be replayed on the data it was made with.

Subjects: an address in a cluster that is not a service is judged through its cluster (the wallet: the
sum over its addresses); a service's address (an exchange's deposit address) and an unclustered address
alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fundtrail.errors import NotFoundError, UsageError
from fundtrail.exposure import evm as E
from fundtrail.exposure import utxo as U
from fundtrail.exposure.npz import read_npz
from fundtrail.exposure.sources import STOLEN, Group, collect
from fundtrail.model.amount import format_units
from fundtrail.store import GLOBAL, Workspace

DIR = "exposure"
DEFAULT_MAX_HOPS = 6
DEFAULT_KEEP = 50
DIRECTIONS = ("received", "sent")
PENDING = "__pending__"  # _incident_injections: the incidents with a bridge deposit not released yet

EXPOSURE_SCHEMA = pa.schema([
    ("chain", pa.string()), ("subject", pa.string()), ("subject_id", pa.int64()), ("address_id", pa.int64()),
    ("direction", pa.string()), ("gid", pa.int32()), ("asset", pa.string()), ("decimals", pa.int32()),
    ("amount", pa.string()), ("total", pa.float64()), ("hops", pa.int32()), ("path", pa.list_(pa.string())),
])


def _root(ws: Workspace) -> Path:
    return ws.home / DIR


def address_key(address: str) -> tuple[int, int]:
    """The 128-bit key an address is looked up by (BLAKE2b-128 as two signed int64: the sorted key and a
    check word, so that two addresses sharing the first 64 bits are still told apart)."""
    k = np.frombuffer(hashlib.blake2b(address.encode(), digest_size=16).digest(), "<i8")
    return int(k[0]), int(k[1])


def input_digest(ws: Workspace) -> dict[str, Any]:
    """What an index depends on: heights and tip hashes per chain, the tags/actors/incidents/cluster parts.
    Parts are immutable, so their names identify their content."""
    ws.refresh()

    def parts(table: str) -> list[str]:
        return sorted(p.file for p in ws.parts(table)) if ws.table_chains(table) else []

    tags = hashlib.sha256(json.dumps([parts("tags"), parts("actors")]).encode()).hexdigest()[:16]
    chains = ws.chains()
    heights = {c: v.get("tip_height") for c, v in sorted(chains.items())}
    rest = json.dumps([heights, {c: v.get("tip_hash") for c, v in sorted(chains.items())}, tags,
                       parts("incidents"), parts("cluster_members")])
    return {"heights": heights, "tags_digest": tags, "digest": hashlib.sha256(rest.encode()).hexdigest()[:16]}


# --- building ---------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Acc:
    """Rows being aggregated per (subject, direction, gid, asset)."""

    rows: dict[tuple, list[Any]] = field(default_factory=dict)

    def add(self, key: tuple, address_id: int, amount: int, hops: int, path: list[str], total: float) -> None:
        r = self.rows.get(key)
        if r is None:
            self.rows[key] = [address_id, amount, hops, path, total, amount]
        else:
            r[1] += amount
            r[2] = min(r[2], hops)
            if amount > r[5]:
                r[0], r[3], r[5] = address_id, path, amount


class ClusterMap:
    """Address id -> cluster id as a dense array (-1: not clustered)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def get(self, aid: int) -> int | None:
        if 0 <= aid < len(self.array):
            c = int(self.array[aid])
            return c if c >= 0 else None
        return None

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        out = np.full(len(ids), -1, np.int64)
        ok = (ids >= 0) & (ids < len(self.array))
        out[ok] = self.array[ids[ok]]
        return out


def _cluster_map(ws: Workspace, chain: str) -> ClusterMap:
    if chain not in ws.table_chains("cluster_members"):
        return ClusterMap(np.full(0, -1, np.int64))
    t = ws.read("cluster_members", chain, columns=["address_id", "cluster_id"])
    aid = np.asarray(t["address_id"].to_numpy(zero_copy_only=False), np.int64)
    cid = np.asarray(t["cluster_id"].to_numpy(zero_copy_only=False), np.int64)
    arr = np.full(int(aid.max(initial=-1)) + 1, -1, np.int64)
    arr[aid] = cid
    return ClusterMap(arr)


def _incident_injections(ws: Workspace, groups: list[Group], cs: dict, max_hops: int) -> dict[str, list]:
    """Stolen funds that crossed a bridge: (chain, gid, release txid, tainted amount) per crossing, from the
    trace of each incident (haircut, forward)."""
    from fundtrail.incidents import get_incident
    from fundtrail.trace.service import trace

    out: dict[str, list] = {}
    for g in groups:
        if g.category != STOLEN:
            continue
        inc = get_incident(ws, g.entity)
        seeds = [s for s in inc.seeds if s.chain in cs]
        if not seeds:
            continue
        res = trace(ws, seeds, model="haircut", max_hops=max_hops, since=inc.since)
        if any(x.reason == "unmatched_bridge" for x in res.stopped):
            out.setdefault(PENDING, []).append(g.gid)  # a later release could match it (update.py)
        for c in res.bridges:
            if getattr(c, "kind", "bridge") == "bridge" and c.out_txid and c.to_chain in cs and c.to_amount > 0:
                out.setdefault(c.to_chain, []).append((g.gid, c.out_txid, int(c.to_amount), c.in_txid))
    return out


def _decimals(ws: Workspace, chain: str, assets: list[str]) -> dict[str, int]:
    dec = {a: 18 for a in assets}
    try:
        t = ws.query(f"SELECT lower(token) AS token, decimals FROM evm_tokens WHERE chain = '{chain}'")
        for tok, d in zip(t["token"].to_pylist(), t["decimals"].to_pylist(), strict=True):
            if tok in dec and d is not None:
                dec[tok] = int(d)
    except Exception:  # noqa: BLE001 - no token table: 18 decimals
        pass
    return dec


@dataclass(slots=True)
class UtxoPart:
    """What a UTXO chain contributes to a version, and what its incremental update continues from.

    ``runs``: one entry per kernel run, in emission order (gid, direction, max_hops, include_seeds,
    hop_offset, prefix); ``hits``: per (run, address) in emission order: amount, hops (offset applied),
    the taint of the address's best output and its evidence path (prefix applied); ``frontier``: per
    forward run, the reached outputs still unspent."""

    chain: str
    runs: list[dict[str, Any]]
    hits: dict[str, Any]
    frontier: dict[str, Any]
    recv: np.ndarray  # int64 per address id
    sent: np.ndarray
    cluster: np.ndarray  # per address id, -1: none
    svc: np.ndarray  # bool per cluster id: a service's cluster (not a subject)
    addr_stop: np.ndarray  # int8 per address id (trace.taint S_*)
    complete: bool = True  # every input names an output the workspace holds (no history missing)


def _hits_columns(rows: list[tuple[int, Any, int, list[str]]]) -> dict[str, Any]:
    cols: dict[str, list] = {k: [] for k in ("run", "address_id", "amount", "hops", "best", "path")}
    for run, h, hop_offset, prefix in rows:
        cols["run"].append(np.full(len(h.address_id), run, np.int64))
        cols["address_id"].append(h.address_id)
        cols["amount"].append(h.amount)
        cols["hops"].append(h.hops + hop_offset)
        cols["best"].append(h.best)
        cols["path"].extend((prefix + p) if prefix else p for p in h.paths)
    out: dict[str, Any] = {k: (np.concatenate(v) if v else np.empty(0, np.int64)) for k, v in cols.items()
                           if k != "path"}
    out["path"] = cols["path"]
    return out


def _frontier_columns(rows: list[tuple[int, U.Frontier]]) -> dict[str, Any]:
    names = ("txid", "n", "value", "taint", "hop", "address_id", "peel")
    cols: dict[str, list] = {k: [] for k in ("run",) + names}
    paths: list[list[str]] = []
    for run, f in rows:
        cols["run"].append(np.full(len(f), run, np.int64))
        for k in names:
            cols[k].append(getattr(f, k))
        paths.extend(f.path)
    out: dict[str, Any] = {k: np.concatenate(v) if v else np.empty(0, np.int64) for k, v in cols.items()}
    if not cols["txid"]:
        out["txid"] = np.zeros((0, 32), np.uint8)
        out["peel"] = np.zeros(0, np.bool_)
    out["path"] = paths
    return out


def _build_utxo(ws: Workspace, chain: str, groups: list[Group], src, inj: list, stop_kind: dict[int, bool],
                cmap: ClusterMap, max_hops: int) -> UtxoPart:
    from fundtrail.trace.graph import utxo_graph

    g_ = utxo_graph(ws, chain)
    astop = U.stop_array(g_, src.stop)
    recv, sent = U.totals(g_)
    cl = cmap.lookup(np.arange(len(recv), dtype=np.int64))
    svc = np.zeros(max(int(cl.max(initial=-1)) + 1, 1), np.bool_)
    for c in stop_kind:
        if c < len(svc):
            svc[c] = True
    by_gid = {g.gid: g for g in groups}
    runs: list[dict[str, Any]] = []
    hit_rows: list[tuple[int, Any, int, list[str]]] = []
    front_rows: list[tuple[int, U.Frontier]] = []

    def go(gid: int, seeds: np.ndarray, taint: np.ndarray, hops: int, forward: bool, include_seeds: bool = False,
           hop_offset: int = 0, prefix: list[str] | None = None, kind: str = "members") -> None:
        run = len(runs)
        runs.append({"run": run, "gid": gid, "direction": "received" if forward else "sent", "max_hops": hops,
                     "include_seeds": include_seeds, "hop_offset": hop_offset, "prefix": prefix or [],
                     "kind": kind})
        out = U.run(g_, astop, seeds, taint, hops, forward)
        hit_rows.append((run, U.hits_of(g_, out, forward, include_seeds), hop_offset, prefix or []))
        if forward:
            front_rows.append((run, U.frontier_of(g_, out)))

    for gid, ids in src.members.items():
        g = by_gid[gid]
        seeds = U.seeds_of(g_, ids, src.since.get(gid), src.seed_txids.get(gid, []))
        if not len(seeds):
            continue
        go(gid, seeds, g_.out_value[seeds], max_hops, True)
        if g.category != STOLEN:
            go(gid, seeds, g_.out_value[seeds], max_hops, False)
    for gid, txid, amount, in_txid in inj:
        t = g_.tx_number(txid)
        if t is None:
            continue
        nodes = np.arange(g_.tx_out_ptr[t], g_.tx_out_ptr[t + 1])
        nodes = nodes[~g_.out_opret[nodes] & (g_.out_addr[nodes] >= 0)]
        nodes = nodes[[astop[a] == 0 if a < len(astop) else True for a in g_.out_addr[nodes].tolist()]]
        if not len(nodes):
            continue
        w = g_.out_value[nodes]
        share = np.minimum((w * (amount / max(int(w.sum()), 1))).astype(np.int64), w)
        go(gid, nodes, share, max(max_hops - 1, 0), True, include_seeds=True, hop_offset=1,
           prefix=[in_txid, txid], kind="injection")
    missing = (g_.in_node < 0) & ~np.repeat(g_.tx_coinbase, np.diff(g_.tx_in_ptr))
    return UtxoPart(chain, runs, _hits_columns(hit_rows), _frontier_columns(front_rows),
                    np.rint(recv).astype(np.int64), np.rint(sent).astype(np.int64), cl, svc, astop,
                    not bool(missing.any()))


def aggregate_utxo(part: UtxoPart) -> pa.Table:
    """The exposure rows of a UTXO chain from its per-address hits (vectorised): an address in a cluster
    that is not a service's counts for the cluster, others alone; per (subject, direction, group) the
    amounts add up, the hops are the least, and the evidence is the address with the most (the first in
    emission order on a tie)."""
    h = part.hits
    n = len(h["run"])
    if n == 0:
        return EXPOSURE_SCHEMA.empty_table()
    runs = part.runs
    gid_of = np.array([r["gid"] for r in runs], np.int64)
    dir_of = np.array([0 if r["direction"] == "received" else 1 for r in runs], np.int64)
    aid = h["address_id"]
    gid = gid_of[h["run"]]
    d = dir_of[h["run"]]
    cl = np.full(n, -1, np.int64)
    inside = aid < len(part.cluster)
    cl[inside] = part.cluster[aid[inside]]
    is_cluster = cl >= 0
    is_cluster[is_cluster] = ~part.svc[np.minimum(cl[is_cluster], len(part.svc) - 1)] if len(part.svc) else True
    # the totals of the clusters that are subjects: their addresses only (one pass to select them)
    ncl = len(part.cluster)
    size = len(part.svc)
    wanted = np.zeros(size, np.bool_)
    wanted[cl[is_cluster]] = True
    sel = np.flatnonzero(wanted[np.maximum(part.cluster, 0)] & (part.cluster >= 0))
    ctot_r = np.bincount(part.cluster[sel], weights=part.recv[:ncl][sel], minlength=size)
    ctot_s = np.bincount(part.cluster[sel], weights=part.sent[:ncl][sel], minlength=size)
    sid = np.where(is_cluster, cl, aid)
    total = np.zeros(n, np.float64)
    m = is_cluster & (d == 0)
    total[m] = ctot_r[sid[m]]
    m = is_cluster & (d == 1)
    total[m] = ctot_s[sid[m]]
    for dd, arr in ((0, part.recv), (1, part.sent)):
        m = ~is_cluster & (d == dd) & (aid < len(arr))
        total[m] = arr[aid[m]].astype(np.float64)
    # groups: (subject kind, subject id, direction, gid); rows in emission order
    emit = np.arange(n)
    order = np.lexsort((emit, -h["amount"], gid, d, sid, ~is_cluster))
    k1, k2, k3, k4 = (~is_cluster)[order], sid[order], d[order], gid[order]
    start = np.flatnonzero(np.r_[True, (k1[1:] != k1[:-1]) | (k2[1:] != k2[:-1]) | (k3[1:] != k3[:-1]) |
                                 (k4[1:] != k4[:-1])])
    amount = np.add.reduceat(h["amount"][order], start)
    hops = np.minimum.reduceat(h["hops"][order], start)
    best = order[start]  # the largest amount, first in emission order
    first = np.minimum.reduceat(emit[order], start)  # output rows in the order subjects first appear
    o2 = np.argsort(first, kind="stable")
    best, amount, hops = best[o2], amount[o2], hops[o2]
    paths = h["path"]
    return pa.table({
        "chain": pa.array([part.chain] * len(best), pa.string()),
        "subject": pa.array(np.where(is_cluster[best], "cluster", "address").tolist(), pa.string()),
        "subject_id": pa.array(sid[best], pa.int64()), "address_id": pa.array(aid[best], pa.int64()),
        "direction": pa.array(np.where(d[best] == 0, "received", "sent").tolist(), pa.string()),
        "gid": pa.array(gid[best], pa.int32()), "asset": pa.array(["BTC"] * len(best), pa.string()),
        "decimals": pa.array(np.full(len(best), 8), pa.int32()),
        "amount": pa.array([str(int(x)) for x in amount.tolist()], pa.string()),
        "total": pa.array(total[best], pa.float64()), "hops": pa.array(hops, pa.int32()),
        "path": pa.array([paths[i] for i in best.tolist()], pa.list_(pa.string())),
    }, schema=EXPOSURE_SCHEMA)


def _build_evm(ws: Workspace, chain: str, groups: list[Group], src, inj: list, stop_kind: dict[int, bool],
               cmap: ClusterMap, max_hops: int, acc: _Acc) -> None:
    from fundtrail.trace.graph import evm_ledger

    L = evm_ledger(ws, chain)
    amts = E.amounts(L)
    tot = E.totals(L, amts)
    dec = _decimals(ws, chain, L.assets)
    ctot: dict[tuple[int, int], list[int]] = {}
    for (a, asset), v in tot.items():
        c = cmap.get(a)
        if c is not None and not stop_kind.get(c, False):
            t = ctot.setdefault((c, asset), [0, 0])
            t[0] += v[0]
            t[1] += v[1]
    by_gid = {g.gid: g for g in groups}
    injections = []
    prefix: dict[int, str] = {}
    for gid, txid, amount, in_txid in inj:
        for e in L.tx_rows(txid):
            if L.dst[e] >= 0 and src.stop.get(int(L.dst[e])) is None:
                injections.append((e, gid, amount, 1))
                prefix[e] = in_txid
                break

    def emit(h: E.EvmHits, direction: str) -> None:
        j = 0 if direction == "received" else 1
        for (aid, asset, gid), (amount, hops, _e) in h.rows.items():
            name = L.assets[asset]
            c = cmap.get(aid)
            if c is not None and not stop_kind.get(c, False):
                key = (chain, "cluster", c, direction, gid, name)
                total = float(ctot.get((c, asset), [0, 0])[j])
            else:
                key = (chain, "address", aid, direction, gid, name)
                total = float(tot.get((aid, asset), [0, 0])[j])
            path = h.paths[(aid, asset, gid)]
            if path and prefix:
                first = next((e for e in prefix if L.txid_of(e) == path[0]), None)
                if first is not None:
                    path = [prefix[first]] + path
            acc.add(key, aid, amount, hops, path, total)
        acc.rows.setdefault(("__decimals__", chain), [dec])

    members = {g: ids for g, ids in src.members.items() if ids}
    emit(E.propagate(L, members, src.since, src.stop, max_hops, injections, amts), "received")
    back = {g: ids for g, ids in members.items() if by_gid[g].category != STOLEN}
    if back:
        R = evm_ledger(ws, chain, reverse=True)
        emit(E.propagate(R, back, {}, src.stop, max_hops, None, E.amounts(R), reverse=True), "sent")


def address_keys(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """:func:`address_key` of every string of an Arrow array: an (n, 2) int64 array."""
    buf = b"".join(hashlib.blake2b(x.encode(), digest_size=16).digest() for x in arr.to_pylist())
    return np.frombuffer(buf, "<i8").reshape(-1, 2) if buf else np.zeros((0, 2), np.int64)


def _address_table(ws: Workspace, chain: str, cmap: ClusterMap) -> dict[str, np.ndarray]:
    t = ws.read("addresses", chain, columns=["address_id", "address"])
    ids = np.asarray(t["address_id"].to_numpy(zero_copy_only=False), np.int64)
    keys = address_keys(t["address"].fill_null(""))
    cl = cmap.lookup(ids)
    order = np.argsort(keys[:, 0], kind="stable")
    return {"key": keys[order, 0].copy(), "check": keys[order, 1].copy(), "id": ids[order], "cluster": cl[order]}


def _acc_table(acc: _Acc) -> pa.Table:
    """The exposure rows of an EVM chain's accumulator."""
    decimals: dict[str, dict[str, int]] = {}
    rows: dict[str, list] = {n: [] for n in EXPOSURE_SCHEMA.names}
    for key, r in acc.rows.items():
        if key[0] == "__decimals__":
            decimals[key[1]] = r[0]
    for key, r in acc.rows.items():
        if key[0] == "__decimals__":
            continue
        chain, subj, sid, direction, gid, asset = key
        d = 8 if asset == "BTC" else decimals.get(chain, {}).get(asset, 18)
        for n, v in zip(EXPOSURE_SCHEMA.names, (chain, subj, sid, r[0], direction, gid, asset, d, str(r[1]),
                                                r[4], r[2], r[3]), strict=True):
            rows[n].append(v)
    return pa.table(rows, schema=EXPOSURE_SCHEMA)


def stop_kinds(labels: pa.Table) -> dict[int, bool]:
    """Cluster id -> True for the clusters of services (their addresses are judged alone)."""
    out: dict[int, bool] = {}
    for cid, svc in zip(labels["cluster_id"].to_pylist(), labels["is_service"].to_pylist(), strict=True):
        if cid is not None and svc:
            out[int(cid)] = True
    return out


def evm_table(ws: Workspace, chain: str, groups: list[Group], src, inj: list, max_hops: int) -> pa.Table:
    """The exposure rows of an EVM chain (one pass over its ledger each way)."""
    acc = _Acc()
    _build_evm(ws, chain, groups, src, inj, stop_kinds(src.labels), _cluster_map(ws, chain), max_hops, acc)
    return _acc_table(acc)


def sources_digest(ws: Workspace) -> str:
    """What the risk groups, stops and subjects depend on besides the blocks: the tags, actors, incidents
    and cluster parts (immutable, so their names identify their content)."""
    def parts(table: str) -> list[str]:
        return sorted(p.file for p in ws.parts(table)) if ws.table_chains(table) else []

    return hashlib.sha256(json.dumps([parts(t) for t in ("tags", "actors", "incidents", "cluster_members")])
                          .encode()).hexdigest()[:16]


def tip_hashes(ws: Workspace) -> dict[str, str | None]:
    return {c: v.get("tip_hash") for c, v in sorted(ws.chains().items())}


def build_index(ws: Workspace, *, max_hops: int = DEFAULT_MAX_HOPS, keep: int = DEFAULT_KEEP,
                chains: list[str] | None = None, reason: str = "requested") -> Path:
    """Build a new version of the index from the workspace and make it current; returns its directory.
    ``reason``: why a full build (rather than an incremental update) was made, kept in the meta."""
    from fundtrail.exposure import state as ST

    t0 = time.perf_counter()
    if max_hops < 1:
        raise UsageError("max_hops: must be 1 or more")
    digest = input_digest(ws)
    sdigest = sources_digest(ws)
    tips = tip_hashes(ws)
    all_chains = ws.chains()
    chains = sorted(chains or all_chains)
    for c in chains:
        ws.require_chain(c)
    groups, srcs = collect(ws, chains)
    timings: dict[str, float] = {"sources": round(time.perf_counter() - t0, 3)}
    t1 = time.perf_counter()
    inj = _incident_injections(ws, groups, srcs, max_hops)
    pending = inj.pop(PENDING, [])
    timings["incident_traces"] = round(time.perf_counter() - t1, 3)
    tables: list[pa.Table] = []
    label_tables = []
    addr_tables: dict[str, dict[str, np.ndarray]] = {}
    parts: dict[str, UtxoPart] = {}
    for chain in chains:
        t1 = time.perf_counter()
        src = srcs[chain]
        cmap = _cluster_map(ws, chain)
        lab = src.labels
        if all_chains[chain].get("kind") == "utxo":
            part = _build_utxo(ws, chain, groups, src, inj.get(chain, []), stop_kinds(lab), cmap, max_hops)
            parts[chain] = part
            tables.append(aggregate_utxo(part))
        else:
            tables.append(evm_table(ws, chain, groups, src, inj.get(chain, []), max_hops))
        label_tables.append(lab)
        addr_tables[chain] = _address_table(ws, chain, cmap)
        timings[f"chain:{chain}"] = round(time.perf_counter() - t1, 3)
    exposure = pa.concat_tables(tables) if tables else EXPOSURE_SCHEMA.empty_table()
    sanctions = _sanctions(ws, chains)
    labels = pa.concat_tables(label_tables, promote_options="permissive") if label_tables else pa.table({})
    meta = {"built_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "heights": {c: digest["heights"].get(c) for c in chains}, "tags_digest": digest["tags_digest"],
            "digest": digest["digest"], "max_hops": max_hops, "model": "haircut",
            "groups": [_group_json(g) for g in groups], "rows": exposure.num_rows, "timings": timings,
            "kinds": {c: all_chains[c].get("kind") for c in chains},
            "tips": {c: tips.get(c) for c in chains}, "sources_digest": sdigest,
            "update": {"mode": "full", "reason": reason}}

    def write(tmp: Path) -> None:
        pq.write_table(exposure, tmp / "exposure.parquet")
        pq.write_table(labels, tmp / "labels.parquet")
        pq.write_table(sanctions, tmp / "sanctions.parquet")
        for chain, arrs in addr_tables.items():
            np.savez(tmp / f"addresses-{chain}.npz", **arrs)
        t1 = time.perf_counter()
        ST.write_state(tmp, ws, chains, all_chains, srcs, parts, inj, addr_tables, pending)
        timings["state"] = round(time.perf_counter() - t1, 3)
        timings["total"] = round(time.perf_counter() - t0, 3)

    return publish(ws, meta, write, keep)


def publish(ws: Workspace, meta: dict[str, Any], write: Any, keep: int = DEFAULT_KEEP) -> Path:
    """Write a new version atomically and make it current: ``write(tmp)`` fills a temporary directory, every
    file is made durable, then, under the index's lock (one publisher at a time across processes), the
    directory gets the next version number by one rename and ``CURRENT`` is replaced by another. A SIGKILL
    at any point leaves the previous version current; a stale temporary directory is removed by the next
    publisher."""
    import fcntl

    root = _root(ws)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        write(tmp)
        with open(root / ".publish.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                version = _next_version(root)
                meta = dict(meta, version=version)
                (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
                _durable(tmp)
                final = root / f"v{version:06d}"
                os.replace(tmp, final)
                _fsync_path(root)
                _write_current(root, final.name)
                _prune(root, keep)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _clean_stale(root)
    return final


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _durable(d: Path) -> None:
    for p in sorted(d.rglob("*")):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    for sub in [d, *(p for p in d.rglob("*") if p.is_dir())]:
        _fsync_path(sub)


def _clean_stale(root: Path) -> None:
    """Remove the temporary directories of publishers that died (their process is gone)."""
    for p in root.glob(".tmp-*"):
        try:
            pid = int(p.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except PermissionError:
            pass


def _group_json(g: Group) -> dict[str, Any]:
    d = g.to_row()
    for k in ("sanctioned_from", "sanctioned_to"):
        v = d[k]
        d[k] = v.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(v, dt.datetime) else None
    return d


def _sanctions(ws: Workspace, chains: list[str]) -> pa.Table:
    from fundtrail.exposure.sources import sanction_windows

    ts = [sanction_windows(ws, c) for c in chains]
    ts = [t for t in ts if t.num_rows]
    if not ts:
        return pa.table({"chain": pa.array([], pa.string()), "address": pa.array([], pa.string()),
                         "address_id": pa.array([], pa.int64()), "entity": pa.array([], pa.string()),
                         "source": pa.array([], pa.string()),
                         "valid_from": pa.array([], pa.timestamp("us", tz="UTC")),
                         "valid_to": pa.array([], pa.timestamp("us", tz="UTC")), "country": pa.array([], pa.string())})
    return pa.concat_tables(ts, promote_options="permissive")


def _versions(root: Path) -> list[int]:
    return sorted(int(p.name[1:]) for p in root.glob("v[0-9]*") if p.is_dir() and p.name[1:].isdigit())


def _next_version(root: Path) -> int:
    vs = _versions(root)
    return (vs[-1] + 1) if vs else 1


def _write_current(root: Path, name: str) -> None:
    tmp = root / f".CURRENT.{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(name)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, root / "CURRENT")
    _fsync_path(root)


def _prune(root: Path, keep: int) -> None:
    """Keep the newest ``keep`` versions; the incremental state (``state/``) only in the newest two."""
    vs = _versions(root)
    for v in vs[:-keep] if keep > 0 else []:
        shutil.rmtree(root / f"v{v:06d}", ignore_errors=True)
    for v in vs[:-2]:
        shutil.rmtree(root / f"v{v:06d}" / "state", ignore_errors=True)


def current_version(ws: Workspace) -> Path | None:
    p = _root(ws) / "CURRENT"
    try:
        name = p.read_text().strip()
    except FileNotFoundError:
        return None
    d = _root(ws) / name
    return d if d.is_dir() else None


def version_dir(ws: Workspace, version: int) -> Path:
    d = _root(ws) / f"v{int(version):06d}"
    if not d.is_dir():
        raise NotFoundError(f"exposure index version {version} is not kept in {_root(ws)} any more")
    return d


# --- loading ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Item:
    """One exposure of a subject: to a group, in one direction and asset."""

    direction: str
    group: Group
    asset: str
    decimals: int
    amount: int
    total: float
    hops: int
    path: tuple[str, ...]

    @property
    def kind(self) -> str:
        return "direct" if self.hops <= 1 else "indirect"

    @property
    def share(self) -> float:
        return min(1.0, float(self.amount) / self.total) if self.total > 0 else 1.0

    def amount_text(self) -> str:
        return format_units(self.amount, self.decimals)


@dataclass(frozen=True, slots=True)
class LabelRow:
    entity: str
    category: str
    country: str | None
    sanctioned: bool
    source: str | None
    confidence: float | None
    via: str | None
    is_service: bool


@dataclass(frozen=True, slots=True)
class Window:
    entity: str
    source: str | None
    valid_from: dt.datetime | None
    valid_to: dt.datetime | None

    def active(self, at: dt.datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= at) and (self.valid_to is None or at < self.valid_to)


@dataclass(frozen=True, slots=True)
class Profile:
    """Everything the index knows about one address."""

    chain: str
    address: str
    address_id: int | None
    cluster_id: int | None
    label: LabelRow | None
    windows: tuple[Window, ...]  # sanctions listings of the address (or of its cluster)
    items: tuple[Item, ...]


class ExposureIndex:
    """A loaded version: lookups by (chain, address) in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.meta: dict[str, Any] = json.loads((path / "meta.json").read_text())
        self.version: int = int(self.meta["version"])
        self.groups = [Group(gid=g["gid"], category=g["category"], entity=g["entity"], country=g["country"],
                             sanctioned=g["sanctioned"], sanctioned_from=_dt(g["sanctioned_from"]),
                             sanctioned_to=_dt(g["sanctioned_to"]), source=g["source"])
                       for g in self.meta["groups"]]
        self.loaded_at = time.time()
        self._addr: dict[str, dict[str, np.ndarray]] = {}
        for p in path.glob("addresses-*.npz"):
            self._addr[p.name[len("addresses-"):-4]] = read_npz(p)
        self._items: dict[tuple[str, str, int], list[Item]] = {}
        t = pq.read_table(path / "exposure.parquet")
        cols = {c: t[c].to_pylist() for c in t.column_names}
        for i in range(t.num_rows):
            it = Item(cols["direction"][i], self.groups[cols["gid"][i]], cols["asset"][i], cols["decimals"][i],
                      int(cols["amount"][i]), cols["total"][i], cols["hops"][i], tuple(cols["path"][i] or ()))
            self._items.setdefault((cols["chain"][i], cols["subject"][i], cols["subject_id"][i]), []).append(it)
        self._labels: dict[tuple[str, int], LabelRow] = {}
        self._label_by_addr: dict[tuple[str, str], LabelRow] = {}
        lt = pq.read_table(path / "labels.parquet")
        if lt.num_rows:
            lc = {c: lt[c].to_pylist() for c in ("chain", "address_id", "address", "entity", "category", "country",
                                                 "sanctioned", "source", "confidence", "via", "is_service")}
            for i in range(lt.num_rows):
                row = LabelRow(lc["entity"][i] or "unknown", (lc["category"][i] or "other").lower(), lc["country"][i],
                               bool(lc["sanctioned"][i]), lc["source"][i], lc["confidence"][i], lc["via"][i],
                               bool(lc["is_service"][i]))
                if lc["address_id"][i] is not None:
                    self._labels[(lc["chain"][i], int(lc["address_id"][i]))] = row
                if lc["address"][i] is not None:
                    self._label_by_addr[(lc["chain"][i], lc["address"][i])] = row
        self._win_addr: dict[tuple[str, str], list[Window]] = {}
        self._win_cluster: dict[tuple[str, int], list[Window]] = {}
        st = pq.read_table(path / "sanctions.parquet")
        for r in st.to_pylist():
            w = Window(r["entity"] or "sanctioned", r["source"], _aware(r["valid_from"]), _aware(r["valid_to"]))
            self._win_addr.setdefault((r["chain"], r["address"]), []).append(w)
            if r["address_id"] is not None:
                cid = self._cluster_of(r["chain"], None, int(r["address_id"]))
                if cid is not None:
                    self._win_cluster.setdefault((r["chain"], cid), []).append(w)

    @property
    def chains(self) -> list[str]:
        return sorted(self.meta["heights"])

    @property
    def as_of(self) -> dict[str, Any]:
        return {"heights": self.meta["heights"], "tags_digest": self.meta["tags_digest"],
                "index_version": self.version}

    def _lookup(self, chain: str, address: str) -> tuple[int | None, int | None]:
        return self.lookup_many(chain, [address])[0]

    def lookup_many(self, chain: str, addresses: list[str]) -> list[tuple[int | None, int | None]]:
        """(address id, cluster id) of each address (None, None when unknown): one sorted search for all."""
        a = self._addr.get(chain)
        if a is None or not len(a["key"]) or not addresses:
            return [(None, None)] * len(addresses)
        kc = np.frombuffer(b"".join(hashlib.blake2b(x.encode(), digest_size=16).digest() for x in addresses),
                           "<i8").reshape(-1, 2)
        keys, checks, ids, clusters = a["key"], a["check"], a["id"], a["cluster"]
        n = len(keys)
        pos = np.searchsorted(keys, kc[:, 0])
        out: list[tuple[int | None, int | None]] = []
        for j, p in enumerate(pos.tolist()):
            k, check = int(kc[j, 0]), int(kc[j, 1])
            hit: tuple[int | None, int | None] = (None, None)
            while p < n and int(keys[p]) == k:  # keys sharing the first 64 bits: the check word decides
                if int(checks[p]) == check:
                    c = int(clusters[p])
                    hit = (int(ids[p]), c if c >= 0 else None)
                    break
                p += 1
            out.append(hit)
        return out

    def known(self, chain: str, address: str) -> bool:
        """Does the workspace hold this exact address string on ``chain``?"""
        return self._lookup(chain, address)[0] is not None

    def _cluster_of(self, chain: str, address: str | None, aid: int) -> int | None:
        a = self._addr.get(chain)
        if a is None:
            return None
        hit = np.flatnonzero(a["id"] == aid)
        if not len(hit):
            return None
        c = int(a["cluster"][hit[0]])
        return c if c >= 0 else None

    def has_chain(self, chain: str) -> bool:
        return chain in self.meta["heights"]

    def profile(self, chain: str, address: str, ids: tuple[int | None, int | None] | None = None) -> Profile:
        """``ids``: the address's (id, cluster id) when already looked up (``lookup_many``)."""
        aid, cid = ids if ids is not None else self._lookup(chain, address)
        label = self._labels.get((chain, aid)) if aid is not None else self._label_by_addr.get((chain, address))
        items: list[Item] = []
        if cid is not None and not (label is not None and label.is_service):
            items = self._items.get((chain, "cluster", cid), [])
        elif aid is not None:
            items = self._items.get((chain, "address", aid), [])
        wins = list(self._win_addr.get((chain, address), []))
        if not wins and cid is not None and label is not None and label.via == "cluster":
            wins = list(self._win_cluster.get((chain, cid), []))
        return Profile(chain, address, aid, cid, label, tuple(wins), tuple(items))

    def cluster_items(self, chain: str, cid: int) -> list[Item]:
        return list(self._items.get((chain, "cluster", int(cid)), []))

    def cluster_size(self, chain: str, cid: int) -> int:
        a = self._addr.get(chain)
        return int((a["cluster"] == int(cid)).sum()) if a is not None else 0

    def entity_labels(self, name: str) -> list[tuple[str, LabelRow, int]]:
        """(chain, label, count of addresses) of an entity name (case-insensitive)."""
        n = name.lower()
        agg: dict[tuple[str, str], list] = {}
        for (chain, _aid), lab in self._labels.items():
            if lab.entity.lower() == n:
                r = agg.setdefault((chain, lab.entity), [lab, 0])
                r[1] += 1
        return [(c, v[0], v[1]) for (c, _e), v in sorted(agg.items())]

    def nbytes(self) -> int:
        return sum(v.nbytes for a in self._addr.values() for v in a.values())


def _dt(s: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")) if s else None


def _aware(v: Any) -> dt.datetime | None:
    if v is None:
        return None
    return v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v.astimezone(dt.UTC)


def load_index(ws: Workspace, version: int | None = None) -> ExposureIndex:
    """The current version (or ``version``); NotFoundError when none was built yet."""
    if version is not None:
        return ExposureIndex(version_dir(ws, version))
    d = current_version(ws)
    if d is None:
        raise NotFoundError(f"no exposure index in {ws.home}: run `fundtrail exposure build` first")
    return ExposureIndex(d)


def is_current(ws: Workspace, index: ExposureIndex | None) -> bool:
    """Does ``index`` reflect the workspace as it is now?"""
    return index is not None and index.meta.get("digest") == input_digest(ws)["digest"]


__all__ = ["build_index", "load_index", "input_digest", "ExposureIndex", "Profile", "Item", "LabelRow",
           "Window", "is_current", "current_version", "version_dir", "GLOBAL"]

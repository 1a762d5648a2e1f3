"""``fundtrail exposure build --engine spark``: the exposure index as a Spark job, with the embedded build's
rows (exposure/index.py) and the same version format.

1. **Sources, on the driver.** The risk groups and their members (sources.py), and the incidents' bridge
   crossings (one haircut trace per incident) — small, and the same calls the embedded build makes.
2. **Propagation, in tasks.** Every unit of propagation is one Spark task (``mapInArrow``), running the
   embedded kernels over the workspace's Parquet tables through its own reader: on a UTXO chain one task
   per risk group and direction (the haircut kernel from the group's outputs, utxo.py) and one per bridge
   injection, plus one for the addresses' totals; on an EVM chain one task for the chain (the ledger pass
   carries every group at once, evm.py, so it is not split). Groups are independent, so the rows are the
   embedded build's by construction. A worker keeps the chain's graph between its tasks (trace/graph.py
   caches it per workspace generation).
3. **Fold, in DataFrames** (engine/spark/exposure.py): hits to subjects (a non-service cluster, or the
   address), sums, fewest hops, the evidence of the largest hit, the subjects' totals from the workspace's
   ``cluster_members`` parts read by Spark.
4. **Write.** ``exposure.parquet`` is written by an executor (Spark's Parquet writer, one file, nothing
   collected on the driver) into the version's temporary directory; the labels, sanctions windows and the
   address lookup tables (``addresses-<chain>.npz``, the screening service's in-memory table) are built on
   the driver as the embedded build builds them; then the version is renamed into place and named in
   ``CURRENT``, as the embedded build does.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fundtrail.engine.base import EngineSpec
from fundtrail.engine.spark.exposure import HITS_DDL, fold
from fundtrail.engine.spark.jobs import map_tasks
from fundtrail.engine.spark.session import session
from fundtrail.engine.spark.write import write_parts
from fundtrail.errors import EngineError, UsageError
from fundtrail.exposure import evm as E
from fundtrail.exposure import index as X
from fundtrail.exposure import utxo as U
from fundtrail.exposure.sources import STOLEN, collect
from fundtrail.store import Workspace

_HITS = pa.schema([
    ("kind", pa.string()), ("chain", pa.string()), ("direction", pa.string()), ("gid", pa.int32()),
    ("address_id", pa.int64()), ("asset", pa.string()), ("amount", pa.string()), ("hops", pa.int32()),
    ("path", pa.list_(pa.string())), ("ord", pa.int64()), ("recv", pa.string()), ("sent", pa.string()),
])
ORD_SHIFT = 32  # ord = (job << 32) | row: the embedded build's order of emission


def _hit_batch(chain: str, direction: str, gid: int, aids: list[int], assets: list[str], amounts: list[int],
               hops: list[int], paths: list[list[str]], job: int) -> pa.RecordBatch:
    k = len(aids)
    return pa.RecordBatch.from_pydict({
        "kind": ["hit"] * k, "chain": [chain] * k, "direction": [direction] * k, "gid": [gid] * k,
        "address_id": aids, "asset": assets, "amount": [str(int(x)) for x in amounts], "hops": hops,
        "path": paths, "ord": [(job << ORD_SHIFT) | i for i in range(k)], "recv": [None] * k,
        "sent": [None] * k}, schema=_HITS)


def _total_batch(chain: str, aids: list[int], assets: list[str], recv: list[int], sent: list[int]) -> pa.RecordBatch:
    k = len(aids)
    return pa.RecordBatch.from_pydict({
        "kind": ["total"] * k, "chain": [chain] * k, "direction": [None] * k, "gid": [None] * k,
        "address_id": aids, "asset": assets, "amount": [None] * k, "hops": [None] * k, "path": [None] * k,
        "ord": [None] * k, "recv": [str(int(x)) for x in recv], "sent": [str(int(x)) for x in sent]},
        schema=_HITS)


_STOPS: dict[tuple[str, str, int], np.ndarray] = {}


def _utxo_job(home: str, plan: dict[str, Any], max_hops: int, job: tuple) -> Iterator[pa.RecordBatch]:
    from fundtrail.trace.graph import utxo_graph

    kind, chain, seq = job[0], job[1], job[2]
    p = plan[chain]
    ws = Workspace(Path(home))
    try:
        g_ = utxo_graph(ws, chain)
        skey = (plan["run"], chain, ws.generation)
        astop = _STOPS.get(skey)
        if astop is None:
            _STOPS.clear()
            astop = _STOPS[skey] = U.stop_array(g_, p["stop"])
        if kind == "totals":
            recv, sent = U.totals(g_)
            nz = np.flatnonzero((recv > 0) | (sent > 0))
            for s in range(0, len(nz), 1 << 18):
                ids = nz[s:s + (1 << 18)]
                yield _total_batch(chain, ids.tolist(), ["BTC"] * len(ids), recv[ids].astype(np.int64).tolist(),
                                   sent[ids].astype(np.int64).tolist())
            return
        if kind == "group":
            gid, direction = job[3], job[4]
            seeds = U.seeds_of(g_, p["members"][gid], p["since"].get(gid), p["seed_txids"].get(gid, []))
            if not len(seeds):
                return
            h = U.propagate(g_, astop, seeds, g_.out_value[seeds], max_hops, direction == "received")
            prefix: list[str] = []
            offset = 0
        else:  # a bridge injection of an incident's funds
            gid, txid, amount, in_txid = p["inj"][job[3]]
            direction = "received"
            t = g_.tx_number(txid)
            if t is None:
                return
            nodes = np.arange(g_.tx_out_ptr[t], g_.tx_out_ptr[t + 1])
            nodes = nodes[~g_.out_opret[nodes] & (g_.out_addr[nodes] >= 0)]
            nodes = nodes[[astop[a] == 0 if a < len(astop) else True for a in g_.out_addr[nodes].tolist()]]
            if not len(nodes):
                return
            w = g_.out_value[nodes]
            share = np.minimum((w * (amount / max(int(w.sum()), 1))).astype(np.int64), w)
            h = U.propagate(g_, astop, nodes, share, max(max_hops - 1, 0), True, include_seeds=True)
            prefix, offset = [in_txid, txid], 1
        k = len(h.address_id)
        if k:
            yield _hit_batch(chain, direction, gid, h.address_id.tolist(), ["BTC"] * k, h.amount.tolist(),
                             (h.hops + offset).astype(np.int64).tolist(), [prefix + x for x in h.paths], seq)
    finally:
        ws.close()


def _evm_job(home: str, plan: dict[str, Any], max_hops: int, job: tuple) -> Iterator[pa.RecordBatch]:
    from fundtrail.trace.graph import evm_ledger

    chain, seq = job[1], job[2]
    p = plan[chain]
    stop = p["stop"]
    ws = Workspace(Path(home))
    try:
        L = evm_ledger(ws, chain)
        amts = E.amounts(L)
        injections = []
        prefix: dict[int, str] = {}
        for gid, txid, amount, in_txid in p["inj"]:
            for e in L.tx_rows(txid):
                if L.dst[e] >= 0 and stop.get(int(L.dst[e])) is None:
                    injections.append((e, gid, amount, 1))
                    prefix[e] = in_txid
                    break
        ord_ = 0

        def rows(h: E.EvmHits, direction: str) -> pa.RecordBatch:
            nonlocal ord_
            cols: dict[str, list] = {"aid": [], "asset": [], "gid": [], "amount": [], "hops": [], "path": []}
            for (aid, asset, gid), (amount, hops, _e) in h.rows.items():
                path = h.paths[(aid, asset, gid)]
                if path and prefix:
                    first = next((e for e in prefix if L.txid_of(e) == path[0]), None)
                    if first is not None:
                        path = [prefix[first]] + path
                for c, v in zip(cols, (aid, L.assets[asset], gid, amount, hops, path), strict=True):
                    cols[c].append(v)
            k = len(cols["aid"])
            b = pa.RecordBatch.from_pydict({
                "kind": ["hit"] * k, "chain": [chain] * k, "direction": [direction] * k, "gid": cols["gid"],
                "address_id": cols["aid"], "asset": cols["asset"], "amount": [str(x) for x in cols["amount"]],
                "hops": cols["hops"], "path": cols["path"],
                "ord": [(seq << ORD_SHIFT) | (ord_ + i) for i in range(k)], "recv": [None] * k, "sent": [None] * k},
                schema=_HITS)
            ord_ += k
            return b

        members = {g: ids for g, ids in p["members"].items() if ids}
        yield rows(E.propagate(L, members, p["since"], stop, max_hops, injections, amts), "received")
        back = {g: ids for g, ids in members.items() if p["category"][g] != STOLEN}
        if back:
            R = evm_ledger(ws, chain, reverse=True)
            yield rows(E.propagate(R, back, {}, stop, max_hops, None, E.amounts(R), reverse=True), "sent")
        tot = E.totals(L, amts)
        keys = list(tot)
        yield _total_batch(chain, [a for a, _ in keys], [L.assets[s] for _, s in keys],
                           [tot[k][0] for k in keys], [tot[k][1] for k in keys])
    finally:
        ws.close()


def run_job(home: str, plan: dict[str, Any], jobs: list[tuple], max_hops: int, i: int) -> Iterator[pa.RecordBatch]:
    """The work of one Spark task: job ``i`` of the plan."""
    job = jobs[i]
    if plan[job[1]]["kind"] == "utxo":
        yield from _utxo_job(home, plan, max_hops, job)
    else:
        yield from _evm_job(home, plan, max_hops, job)


def plan_jobs(chains: list[str], kinds: dict[str, str], groups: list, srcs: dict, inj: dict) -> tuple[dict, list]:
    """The per-chain inputs the tasks need, and the jobs in the embedded build's order of emission."""
    import uuid

    cat = {g.gid: g.category for g in groups}
    plan: dict[str, Any] = {"run": uuid.uuid4().hex}
    jobs: list[tuple] = []
    for chain in chains:
        src = srcs[chain]
        plan[chain] = {"kind": kinds[chain], "members": dict(src.members), "since": dict(src.since),
                       "seed_txids": dict(src.seed_txids), "stop": dict(src.stop), "category": cat,
                       "inj": list(inj.get(chain, []))}
        if kinds[chain] == "utxo":
            for gid in src.members:
                jobs.append(("group", chain, len(jobs), gid, "received"))
                if cat[gid] != STOLEN:
                    jobs.append(("group", chain, len(jobs), gid, "sent"))
            for k in range(len(plan[chain]["inj"])):
                jobs.append(("inj", chain, len(jobs), k))
            jobs.append(("totals", chain, len(jobs)))
        else:
            jobs.append(("evm", chain, len(jobs)))
    return plan, jobs


def _services(chains: list[str], srcs: dict) -> pa.Table:
    rows: dict[str, list] = {"chain": [], "cluster_id": []}
    for chain in chains:
        lab = srcs[chain].labels
        seen = set()
        for cid, svc in zip(lab["cluster_id"].to_pylist(), lab["is_service"].to_pylist(), strict=True):
            if cid is not None and svc and cid not in seen:
                seen.add(cid)
                rows["chain"].append(chain)
                rows["cluster_id"].append(int(cid))
    return pa.table(rows, schema=pa.schema([("chain", pa.string()), ("cluster_id", pa.int64())]))


def _decimals(ws: Workspace, chains: list[str], kinds: dict[str, str]) -> pa.Table:
    out: dict[str, list] = {"chain": [], "asset": [], "decimals": []}
    for chain in chains:
        if kinds[chain] == "utxo":
            continue
        try:
            t = ws.query(f"SELECT lower(token) AS token, decimals FROM evm_tokens WHERE chain = '{chain}'")
        except Exception:  # noqa: BLE001 - no token table: 18 decimals (as the embedded build)
            continue
        for tok, d in zip(t["token"].to_pylist(), t["decimals"].to_pylist(), strict=True):
            if d is not None:
                out["chain"].append(chain)
                out["asset"].append(tok)
                out["decimals"].append(int(d))
    return pa.table(out, schema=pa.schema([("chain", pa.string()), ("asset", pa.string()),
                                           ("decimals", pa.int32())]))


def _clusters(spark: Any, ws: Workspace, chains: list[str]) -> Any:
    from pyspark.sql import functions as F

    paths = [p.resolve().as_uri() for c in chains if c in ws.table_chains("cluster_members")
             for p in ws.part_paths("cluster_members", c)]
    if not paths:
        return spark.createDataFrame([], "chain string, address_id long, cluster_id long")
    return (spark.read.parquet(*paths).select("chain", "address_id", "cluster_id")
            .where(F.col("cluster_id") >= 0))


def build_index(ws: Workspace, spec: EngineSpec, *, max_hops: int = X.DEFAULT_MAX_HOPS, keep: int = X.DEFAULT_KEEP,
                chains: list[str] | None = None, tasks: int | None = None) -> Path:
    """A new version of the exposure index computed on Spark (module docstring); made current."""
    t0 = time.perf_counter()
    if max_hops < 1:
        raise UsageError("max_hops: must be 1 or more")
    digest = X.input_digest(ws)
    all_chains = ws.chains()
    chains = sorted(chains or all_chains)
    for c in chains:
        ws.require_chain(c)
    kinds = {c: "utxo" if all_chains[c].get("kind") == "utxo" else "evm" for c in chains}
    groups, srcs = collect(ws, chains)
    timings: dict[str, float] = {"sources": round(time.perf_counter() - t0, 3)}
    t1 = time.perf_counter()
    inj = X._incident_injections(ws, groups, srcs, max_hops)
    inj.pop(X.PENDING, None)  # the incremental update's marker (update.py): a Spark build is always full
    timings["incident_traces"] = round(time.perf_counter() - t1, 3)
    plan, jobs = plan_jobs(chains, kinds, groups, srcs, inj)

    # the version is written like the embedded build's (exposure/index.py ``publish``): into a temporary
    # directory, made durable, then numbered and made current under the index's lock
    meta: dict = {}

    def write(tmp: Path) -> None:
        t1 = time.perf_counter()
        spark = session(spec)
        fn = functools.partial(run_job, str(ws.home.resolve()), plan, jobs, max_hops)
        raw = map_tasks(spark, len(jobs), fn, HITS_DDL, tasks=tasks)
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        raw = raw.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            hits = raw.where(F.col("kind") == "hit").drop("kind", "recv", "sent")
            totals = raw.where(F.col("kind") == "total").select("chain", "address_id", "asset", "recv", "sent")
            exposure = fold(hits, totals, _clusters(spark, ws, chains),
                            spark.createDataFrame(_services(chains, srcs)),
                            spark.createDataFrame(_decimals(ws, chains, kinds)))
            parts = write_parts(exposure, tmp / "spark-exposure", partitions=1)
        finally:
            raw.unpersist()
        timings["spark"] = round(time.perf_counter() - t1, 3)
        if len(parts) > 1:
            raise EngineError(f"the exposure rows came as {len(parts)} files, one was asked for")
        if parts:
            os.replace(parts[0], tmp / "exposure.parquet")
        else:  # nobody exposed: an empty table of the index's schema
            pq.write_table(X.EXPOSURE_SCHEMA.empty_table(), tmp / "exposure.parquet")
        shutil.rmtree(tmp / "spark-exposure", ignore_errors=True)
        rows = pq.read_metadata(tmp / "exposure.parquet").num_rows
        label_tables = [srcs[c].labels for c in chains]
        labels = pa.concat_tables(label_tables, promote_options="permissive") if label_tables else pa.table({})
        pq.write_table(labels, tmp / "labels.parquet")
        pq.write_table(X._sanctions(ws, chains), tmp / "sanctions.parquet")
        t1 = time.perf_counter()
        for chain in chains:
            np.savez(tmp / f"addresses-{chain}.npz", **X._address_table(ws, chain, X._cluster_map(ws, chain)))
        timings["address_tables"] = round(time.perf_counter() - t1, 3)
        timings["total"] = round(time.perf_counter() - t0, 3)
        meta.update({"built_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "heights": {c: digest["heights"].get(c) for c in chains}, "tags_digest": digest["tags_digest"],
                "digest": digest["digest"], "max_hops": max_hops, "model": "haircut",
                "groups": [X._group_json(g) for g in groups], "rows": rows, "timings": timings,
                "kinds": {c: all_chains[c].get("kind") for c in chains},
                "engine": {"name": "spark", "master": spec.master, "tasks": len(jobs)}})

    return X.publish(ws, meta, write, keep)

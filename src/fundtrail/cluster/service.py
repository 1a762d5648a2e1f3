"""``cluster``: address clustering of every chain in a workspace, with the evidence of every merge.

Bitcoin-like (UTXO) chains: the multi-input (co-spend) heuristic, skipping coinbase and multi-party
CoinJoin transactions, plus the change heuristics the run enables (off by default). Every transaction
with k distinct input addresses contributes the k-1 edges joining its smallest input address id to each
other one; the union-find records which edges joined two different clusters, and those become
``cluster_evidence`` rows (transaction, heuristic, confidence, height).

Incremental: the partition is persisted as ``cluster_members`` (every address id with its cluster id,
the smallest address id of its cluster), which is itself a complete union-find state. A later run
resumes from it and feeds only the blocks above the height clustered through (setting
``cluster:<chain>``), so newly ingested blocks extend the clusters; the result is the partition a
from-scratch run gives. A run starts from scratch when the change heuristics differ from the last run's,
when an enabled heuristic needs later spends (``fingerprint``, ``peel_chain``: their verdicts can change
as blocks arrive), when the chain was reorganised below the height clustered through, or when asked.

EVM chains: the deposit-address heuristic (cluster/deposit.py); their edges come from one aggregate
query over all transfers, so EVM chains are re-clustered from scratch on every run.

A merge of two clusters both holding at least ``alarm_size`` addresses is stored in ``cluster_alarms``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fundtrail.cluster import change as change_mod
from fundtrail.cluster import coinjoin as coinjoin_mod
from fundtrail.cluster import deposit as deposit_mod
from fundtrail.cluster.unionfind import UnionFind
from fundtrail.errors import NotFoundError, WorkspaceError
from fundtrail.progress import NullProgress, Progress
from fundtrail.store import schema as S
from fundtrail.store.workspace import Workspace

DEFAULT_ALARM_SIZE = 1_000
COSPEND_CONFIDENCE = 0.99  # a missed CoinJoin is what makes a co-spend wrong
SETTING = "cluster:{chain}"

EDGE_SCHEMA = pa.schema([
    ("txid", pa.string()), ("height", pa.int64()), ("a", pa.int64()), ("b", pa.int64()),
    ("heuristic", pa.string()), ("confidence", pa.float64()),
])


@dataclass(frozen=True, slots=True)
class ChainClusterStats:
    chain: str
    kind: str
    mode: str  # full | incremental | unchanged
    from_height: int  # exclusive
    to_height: int
    addresses: int
    clusters: int
    edges: int
    merges: int
    coinjoins: int
    change_edges: int
    deposits: int
    alarms: int
    seconds: float


@dataclass(frozen=True, slots=True)
class ClusterStats:
    chains: tuple[ChainClusterStats, ...] = field(default_factory=tuple)


def _kind(ws: Workspace, chain: str) -> str:
    state = ws.chain(chain) or {}
    if state.get("kind") in ("utxo", "evm"):
        return str(state["kind"])
    if ws.parts("utxo_inputs", chain) or ws.parts("utxo_outputs", chain):
        return "utxo"
    if ws.parts("evm_transfers", chain):
        return "evm"
    raise NotFoundError(f"chain {chain!r} has no transactions to cluster")


def _address_count(con: duckdb.DuckDBPyConnection, chain: str) -> int:
    return int(con.execute("SELECT coalesce(max(address_id), -1) + 1 FROM addresses WHERE chain = $c",
                           {"c": chain}).fetchall()[0][0])


def _tip(con: duckdb.DuckDBPyConnection, chain: str) -> tuple[int, str | None]:
    row = con.execute("SELECT height, hash FROM utxo_blocks WHERE chain = $c ORDER BY height DESC LIMIT 1",
                      {"c": chain}).fetchall()
    if row:
        return int(row[0][0]), row[0][1]
    h = con.execute("SELECT coalesce(max(height), -1) FROM utxo_transactions WHERE chain = $c",
                    {"c": chain}).fetchall()[0][0]
    return int(h), None


def _hash_at(con: duckdb.DuckDBPyConnection, chain: str, height: int) -> str | None:
    row = con.execute("SELECT hash FROM utxo_blocks WHERE chain = $c AND height = $h",
                      {"c": chain, "h": height}).fetchall()
    return row[0][0] if row else None


def cospend_edges(con: duckdb.DuckDBPyConnection, chain: str, lo: int, hi: int,
                  skip_txids: Iterable[str]) -> pa.Table:
    """The co-spend edges of blocks ``lo < height <= hi``: for each transaction (not coinbase, not in
    ``skip_txids``) with k distinct input addresses, k-1 edges from the smallest id to the others."""
    con.register("_skip", pa.table({"txid": pa.array(list(skip_txids), pa.string())}))
    try:
        return con.sql(f"""
            WITH i AS (
                SELECT DISTINCT i.txid, i.height, i.address_id AS b
                FROM utxo_inputs i
                WHERE i.chain = $chain AND i.height > $lo AND i.height <= $hi AND i.address_id >= 0
                  AND i.txid NOT IN (SELECT txid FROM _skip)
            ), t AS (
                SELECT txid, tx_index FROM utxo_transactions
                WHERE chain = $chain AND height > $lo AND height <= $hi AND NOT is_coinbase
            ), e AS (
                SELECT i.txid, i.height, t.tx_index, min(i.b) OVER (PARTITION BY i.txid) AS a, i.b
                FROM i JOIN t ON t.txid = i.txid
            )
            SELECT txid, height, a, b, 'cospend' AS heuristic, {COSPEND_CONFIDENCE} AS confidence
            FROM e WHERE a <> b ORDER BY height, tx_index, b
        """, params={"chain": chain, "lo": lo, "hi": hi}).to_arrow_table().cast(EDGE_SCHEMA)
    finally:
        con.unregister("_skip")


def _load_labels(ws: Workspace, chain: str) -> np.ndarray:
    m = ws.read("cluster_members", chain, columns=["address_id", "cluster_id"])
    if m.num_rows == 0:
        return np.empty(0, np.int64)
    ids = m["address_id"].to_numpy()
    labels = m["cluster_id"].to_numpy()
    order = np.argsort(ids, kind="stable")
    ids, labels = ids[order], labels[order]
    if ids[0] != 0 or ids[-1] != len(ids) - 1 or np.any(np.diff(ids) != 1):
        raise WorkspaceError(f"cluster_members of {chain!r} is not one row per address id 0..n-1; "
                             "run `fundtrail cluster --full`")
    return np.ascontiguousarray(labels)


def _apply(uf: UnionFind, edges: pa.Table, chain: str, next_seq: int, alarm_size: int,
           now: datetime) -> tuple[pa.Table, pa.Table]:
    """Union the edges; the evidence rows (one per merge) and the alarm rows."""
    a = edges["a"].to_numpy()
    b = edges["b"].to_numpy()
    res = uf.union(a, b, alarm_size=alarm_size)
    ev = edges.take(pa.array(res.merged))
    k = ev.num_rows
    evidence = pa.table({
        "chain": pa.repeat(pa.scalar(chain, pa.string()), k),
        "seq": pa.array(np.arange(next_seq, next_seq + k, dtype=np.int64)),
        "a_id": ev["a"], "b_id": ev["b"], "txid": ev["txid"], "heuristic": ev["heuristic"],
        "confidence": ev["confidence"], "height": ev["height"],
    })
    al = edges.take(pa.array(res.alarm_edge))
    pos = np.searchsorted(res.merged, res.alarm_edge)
    alarms = pa.table({
        "chain": pa.array([chain] * al.num_rows, pa.string()),
        "seq": pa.array(next_seq + pos.astype(np.int64)),
        "a_id": al["a"], "b_id": al["b"],
        "size_a": pa.array(res.alarm_size_a), "size_b": pa.array(res.alarm_size_b),
        "txid": al["txid"], "heuristic": al["heuristic"], "height": al["height"],
        "clustered_at": pa.array([now] * al.num_rows, pa.timestamp("s", tz="UTC")),
    })
    return S.conform(evidence, S.schema_of("cluster_evidence"), "cluster_evidence"), \
        S.conform(alarms, S.schema_of("cluster_alarms"), "cluster_alarms")


def _members(chain: str, labels: np.ndarray) -> pa.Table:
    n = len(labels)
    return pa.table({
        "chain": pa.repeat(pa.scalar(chain, pa.string()), n),
        "address_id": pa.array(np.arange(n, dtype=np.int64)),
        "cluster_id": pa.array(labels),
    })


def _cluster_count(labels: np.ndarray) -> int:
    return int(np.count_nonzero(labels == np.arange(len(labels), dtype=np.int64)))


def cluster_utxo(ws: Workspace, chain: str, *, change_heuristics: tuple[str, ...] = (),
                 alarm_size: int = DEFAULT_ALARM_SIZE, full: bool = False,
                 progress: Progress = NullProgress()) -> ChainClusterStats:
    t0 = time.monotonic()
    key = SETTING.format(chain=chain)
    state: dict[str, Any] = ws.setting(key) or {}
    con = ws.connect()
    try:
        tip, tip_hash = _tip(con, chain)
        n = _address_count(con, chain)
        reasons = []
        if not state:
            reasons.append("first run")
        elif tuple(state.get("change_heuristics", ())) != change_heuristics:
            reasons.append("change heuristics differ from the last run's")
        elif set(change_heuristics) & change_mod.NEEDS_FUTURE:
            reasons.append("an enabled heuristic needs later spends")
        elif int(state.get("height", -1)) > tip or (
                state.get("hash") is not None and _hash_at(con, chain, int(state["height"])) != state["hash"]):
            reasons.append("the chain changed below the height clustered through")
        if full:
            reasons.append("asked")
        do_full = bool(reasons)
        lo = -1 if do_full else int(state["height"])
        task = progress.task(f"cluster {chain}", total=None, unit="edges")
        task.note(f"cluster {chain}: " + (f"from scratch ({'; '.join(reasons)})" if do_full
                                          else f"incremental, blocks {lo + 1}..{tip}"))
        if not do_full and lo == tip and len(ws.parts("cluster_members", chain)) and \
                ws.row_count("cluster_members", chain) == n:
            labels = _load_labels(ws, chain)
            task.close()
            return ChainClusterStats(chain, "utxo", "unchanged", lo, tip, n, _cluster_count(labels), 0, 0,
                                     0, 0, 0, 0, time.monotonic() - t0)

        cj = coinjoin_mod.detect_range(con, chain, lo, tip)
        multi = pc.filter(cj["txid"], pc.invert(pc.is_in(cj["protocol"],
                                                          pa.array(sorted(coinjoin_mod.NOT_MULTI_PARTY)))))
        skip = multi.to_pylist()
        edges = cospend_edges(con, chain, lo, tip, skip)
        report, cedges = change_mod.detect_range(con, chain, lo, tip, skip, change_heuristics)
        if cedges.num_rows:
            edges = pa.concat_tables([edges, cedges.select(EDGE_SCHEMA.names).cast(EDGE_SCHEMA)])
        task.advance(edges.num_rows)
    finally:
        con.close()

    uf = UnionFind(n) if do_full else UnionFind.from_labels(_load_labels(ws, chain))
    uf.grow(n)
    next_seq = 0 if do_full else int(state.get("next_seq", 0))
    now = datetime.now(UTC).replace(microsecond=0)
    evidence, alarms = _apply(uf, edges, chain, next_seq, alarm_size, now)
    labels = uf.labels()
    with ws.transaction() as txn:
        txn.replace("cluster_members", chain, _members(chain, labels))
        for table, data in (("cluster_evidence", evidence), ("coinjoin_txs", cj),
                            ("change_outputs", report), ("cluster_alarms", alarms)):
            if do_full:
                txn.replace(table, chain, data if data.num_rows else None)
            else:
                txn.append(table, chain, data)
        txn.set_setting(key, {
            "height": tip, "hash": tip_hash, "change_heuristics": list(change_heuristics),
            "alarm_size": alarm_size, "next_seq": next_seq + evidence.num_rows, "kind": "utxo",
            "updated": now.isoformat(),
        })
    task.close()
    return ChainClusterStats(chain, "utxo", "full" if do_full else "incremental", lo, tip, n,
                             _cluster_count(labels), edges.num_rows, evidence.num_rows, len(multi),
                             cedges.num_rows, 0, alarms.num_rows, time.monotonic() - t0)


def cluster_evm(ws: Workspace, chain: str, *, alarm_size: int = DEFAULT_ALARM_SIZE,
                deposit_params: deposit_mod.DepositParams = deposit_mod.DepositParams(),
                progress: Progress = NullProgress()) -> ChainClusterStats:
    t0 = time.monotonic()
    task = progress.task(f"cluster {chain}", total=None, unit="edges")
    con = ws.connect()
    try:
        n = _address_count(con, chain)
        tip = int(con.execute("SELECT coalesce(max(height), -1) FROM evm_transfers WHERE chain = $c",
                              {"c": chain}).fetchall()[0][0])
        deps = deposit_mod.detect_deposits(con, chain, deposit_params)
    finally:
        con.close()
    edges = pa.table({
        "txid": deps["txid"], "height": deps["height"], "a": deps["hot_wallet_id"], "b": deps["address_id"],
        "heuristic": pa.array(["deposit"] * deps.num_rows, pa.string()), "confidence": deps["confidence"],
    }).cast(EDGE_SCHEMA)
    task.advance(edges.num_rows)
    uf = UnionFind(n)
    now = datetime.now(UTC).replace(microsecond=0)
    evidence, alarms = _apply(uf, edges, chain, 0, alarm_size, now)
    labels = uf.labels()
    with ws.transaction() as txn:
        txn.replace("cluster_members", chain, _members(chain, labels))
        txn.replace("cluster_evidence", chain, evidence if evidence.num_rows else None)
        txn.replace("deposit_addresses", chain, deps if deps.num_rows else None)
        txn.replace("cluster_alarms", chain, alarms if alarms.num_rows else None)
        txn.set_setting(SETTING.format(chain=chain), {
            "height": tip, "alarm_size": alarm_size, "next_seq": evidence.num_rows, "kind": "evm",
            "updated": now.isoformat()})
    task.close()
    return ChainClusterStats(chain, "evm", "full", -1, tip, n, _cluster_count(labels), edges.num_rows,
                             evidence.num_rows, 0, 0, deps.num_rows, alarms.num_rows, time.monotonic() - t0)


def cluster(ws: Workspace, chain: str | None = None, *, change_heuristics: Iterable[str] | str = (),
            progress: Progress = NullProgress(), alarm_size: int = DEFAULT_ALARM_SIZE,
            full: bool = False) -> ClusterStats:
    """Cluster one chain (or every chain of the workspace); see the module docstring."""
    heur = change_mod.parse_heuristics(change_heuristics)
    if chain is not None:
        chains = [chain]
        if ws.chain(chain) is None and not (ws.parts("utxo_inputs", chain) or ws.parts("evm_transfers", chain)):
            ws.require_chain(chain)
    else:
        chains = sorted(ws.chains())
    out = []
    for c in chains:
        kind = _kind(ws, c)
        if kind == "utxo":
            out.append(cluster_utxo(ws, c, change_heuristics=heur, alarm_size=alarm_size, full=full,
                                    progress=progress))
        else:
            out.append(cluster_evm(ws, c, alarm_size=alarm_size, progress=progress))
    return ClusterStats(tuple(out))

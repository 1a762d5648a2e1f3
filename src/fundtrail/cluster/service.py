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

import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from fundtrail.cluster import change as change_mod
from fundtrail.cluster import coinjoin as coinjoin_mod
from fundtrail.cluster import deposit as deposit_mod
from fundtrail.cluster import edges as edges_mod
from fundtrail.cluster.edges import cospend_batches
from fundtrail.cluster.unionfind import UnionFind
from fundtrail.errors import NotFoundError, WorkspaceError
from fundtrail.progress import NullProgress, Progress
from fundtrail.store import schema as S
from fundtrail.store.workspace import Workspace, writes

DEFAULT_ALARM_SIZE = 1_000
DEFAULT_MEMORY_LIMIT = "768MB"  # DuckDB's buffer (hash tables, temp tables; beyond it they spill to disk)
DEFAULT_THREADS = 2
DEFAULT_RANGE_ROWS = 3_500_000  # inputs per block range (one range's results are in memory at a time)
DEFAULT_WRITE_ROWS = 4_000_000  # rows per written part of cluster_members
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


def configure(con: duckdb.DuckDBPyConnection, *, memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
              threads: int | None = DEFAULT_THREADS) -> Path | None:
    """Bound DuckDB: its memory (hash tables and temp tables beyond it spill to disk, into a fresh
    directory returned for :func:`_close` to remove) and its threads."""
    spill = None
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
        spill = Path(tempfile.mkdtemp(prefix="fundtrail-duckdb-"))
        con.execute(f"SET temp_directory = '{str(spill).replace(chr(39), chr(39) * 2)}'")
        con.execute("SET preserve_insertion_order = false")  # every order that matters has an ORDER BY
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return spill


def _close(con: duckdb.DuckDBPyConnection, spill: Path | None) -> None:
    con.close()
    if spill is not None:
        shutil.rmtree(spill, ignore_errors=True)


def cospend_edges(con: duckdb.DuckDBPyConnection, chain: str, lo: int, hi: int,
                  skip_txids: Iterable[str]) -> pa.Table:
    """The co-spend edges of blocks ``lo < height <= hi`` as one table of :data:`EDGE_SCHEMA` (small
    ranges and tests; the service streams :func:`cospend_batches`)."""
    batches = list(cospend_batches(con, chain, lo, hi, skip_txids))
    ints = pa.Table.from_batches(batches, schema=_INT_EDGES) if batches else _INT_EDGES.empty_table()
    return _with_txids(con, chain, lo, hi, ints, "cospend", COSPEND_CONFIDENCE)


_INT_EDGES = pa.schema([("height", pa.int64()), ("tx_index", pa.int32()), ("a", pa.int64()), ("b", pa.int64())])


def _with_txids(con: duckdb.DuckDBPyConnection, chain: str, lo: int, hi: int, ints: pa.Table,
                heuristic: str, confidence: float) -> pa.Table:
    """Integer edges (height, tx_index, a, b) -> :data:`EDGE_SCHEMA` rows, the txids looked up in
    ``utxo_transactions`` for these rows only (blocks ``lo < height <= hi``)."""
    k = ints.num_rows
    if k == 0:
        return EDGE_SCHEMA.empty_table()
    con.register("_ev", pa.table({"i": pa.array(np.arange(k, dtype=np.int64)),
                                  "height": ints["height"].cast(pa.int64()),
                                  "tx_index": ints["tx_index"].cast(pa.int32())}))
    try:
        txid = con.sql("""
            SELECT lower(hex(t.txid)) AS txid
            FROM _ev e JOIN utxo_transactions t ON t.height = e.height AND t.tx_index = e.tx_index
            WHERE t.chain = $chain AND t.height > $lo AND t.height <= $hi ORDER BY e.i""",
                       params={"chain": chain, "lo": lo, "hi": hi}).to_arrow_table()["txid"]
    finally:
        con.unregister("_ev")
    if len(txid) != k:
        raise WorkspaceError(f"{chain}: {k - len(txid)} co-spend edge(s) name a (height, tx_index) that is "
                             "not one transaction of utxo_transactions")
    return pa.table({"txid": txid, "height": ints["height"].cast(pa.int64()), "a": ints["a"], "b": ints["b"],
                     "heuristic": pa.repeat(pa.scalar(heuristic, pa.string()), k),
                     "confidence": pa.array(np.full(k, confidence))}, schema=EDGE_SCHEMA)


def _block_ranges(con: duckdb.DuckDBPyConnection, chain: str, lo: int, hi: int,
                  range_rows: int) -> list[tuple[int, int]]:
    """Split blocks ``lo < height <= hi`` into consecutive ranges of about ``range_rows`` inputs each."""
    if hi <= lo:
        return []
    per = con.execute("SELECT height, count(*) FROM utxo_inputs WHERE chain = $c AND height > $lo "
                      "AND height <= $hi GROUP BY height ORDER BY height",
                      {"c": chain, "lo": lo, "hi": hi}).fetchnumpy()
    heights, counts = per["height"], per["count_star()"]
    out: list[tuple[int, int]] = []
    start, acc = lo, 0
    for h, c in zip(heights.tolist(), counts.tolist(), strict=True):
        acc += c
        if acc >= range_rows:
            out.append((start, h))
            start, acc = h, 0
    if start < hi:
        out.append((start, hi))
    return out


def _load_labels(ws: Workspace, chain: str) -> np.ndarray:
    m = ws.read("cluster_members", chain, columns=["address_id", "cluster_id"])
    if m.num_rows == 0:
        return np.empty(0, np.int64)
    ids = m["address_id"].to_numpy()
    labels = m["cluster_id"].to_numpy()
    del m
    order = np.argsort(ids, kind="stable")
    ids, labels = ids[order], labels[order]
    if ids[0] != 0 or ids[-1] != len(ids) - 1 or np.any(np.diff(ids) != 1):
        raise WorkspaceError(f"cluster_members of {chain!r} is not one row per address id 0..n-1; "
                             "run `fundtrail cluster --full`")
    return np.ascontiguousarray(labels)


class _Merger:
    """Feeds edge chunks (in order) to the union-find; keeps only the merging edges as fixed-width
    integer arrays (plus their txids once resolved), numbering them from ``next_seq``."""

    def __init__(self, uf: UnionFind, chain: str, next_seq: int, alarm_size: int, now: datetime) -> None:
        self.uf, self.chain, self.seq, self.alarm_size, self.now = uf, chain, next_seq, alarm_size, now
        self.edges = 0
        self.merges = 0
        self.alarm_parts: list[pa.Table] = []

    def union(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Union one chunk; (merged edge indices, alarm edge indices, alarm sizes a, b)."""
        self.edges += len(a)
        res = self.uf.union(a, b, alarm_size=self.alarm_size)
        return res.merged, res.alarm_edge, res.alarm_size_a, res.alarm_size_b

    def evidence(self, ev: pa.Table, merged_alarm_pos: np.ndarray, size_a: np.ndarray,
                 size_b: np.ndarray) -> pa.Table:
        """Evidence rows of the merging edges ``ev`` (EDGE_SCHEMA, in merge order); records the alarms
        among them (positions into ``ev``)."""
        k = ev.num_rows
        out = pa.table({
            "chain": pa.repeat(pa.scalar(self.chain, pa.string()), k),
            "seq": pa.array(np.arange(self.seq, self.seq + k, dtype=np.int64)),
            "a_id": ev["a"], "b_id": ev["b"], "txid": ev["txid"], "heuristic": ev["heuristic"],
            "confidence": ev["confidence"], "height": ev["height"],
        })
        if len(merged_alarm_pos):
            al = ev.take(pa.array(merged_alarm_pos))
            na = al.num_rows
            self.alarm_parts.append(S.conform(pa.table({
                "chain": pa.repeat(pa.scalar(self.chain, pa.string()), na),
                "seq": pa.array(self.seq + merged_alarm_pos.astype(np.int64)),
                "a_id": al["a"], "b_id": al["b"],
                "size_a": pa.array(size_a), "size_b": pa.array(size_b),
                "txid": al["txid"], "heuristic": al["heuristic"], "height": al["height"],
                "clustered_at": pa.array([self.now] * na, pa.timestamp("s", tz="UTC")),
            }), S.schema_of("cluster_alarms"), "cluster_alarms"))
        self.seq += k
        self.merges += k
        return S.conform(out, S.schema_of("cluster_evidence"), "cluster_evidence")

    def apply_table(self, edges: pa.Table) -> pa.Table:
        """Union a table of :data:`EDGE_SCHEMA` rows (txids known); its evidence rows."""
        merged, alarm_edge, sa, sb = self.union(edges["a"].to_numpy(), edges["b"].to_numpy())
        return self.evidence(edges.take(pa.array(merged)), np.searchsorted(merged, alarm_edge), sa, sb)

    def alarms(self) -> pa.Table:
        schema = S.schema_of("cluster_alarms")
        return pa.concat_tables(self.alarm_parts) if self.alarm_parts else schema.empty_table()


def _apply(uf: UnionFind, edges: pa.Table, chain: str, next_seq: int, alarm_size: int,
           now: datetime) -> tuple[pa.Table, pa.Table]:
    """Union the edges; the evidence rows (one per merge) and the alarm rows."""
    m = _Merger(uf, chain, next_seq, alarm_size, now)
    evidence = m.apply_table(edges)
    return evidence, m.alarms()


def _members(chain: str, labels: np.ndarray, lo: int = 0, hi: int | None = None) -> pa.Table:
    hi = len(labels) if hi is None else hi
    return pa.table({
        "chain": pa.repeat(pa.scalar(chain, pa.string()), hi - lo),
        "address_id": pa.array(np.arange(lo, hi, dtype=np.int64)),
        "cluster_id": pa.array(labels[lo:hi]),
    })


def _cluster_count(labels: np.ndarray) -> int:
    return int(np.count_nonzero(labels == np.arange(len(labels), dtype=np.int64)))


@writes("cluster")
def cluster_utxo(ws: Workspace, chain: str, *, change_heuristics: tuple[str, ...] = (),
                 alarm_size: int = DEFAULT_ALARM_SIZE, full: bool = False,
                 progress: Progress = NullProgress(), memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
                 threads: int | None = DEFAULT_THREADS, range_rows: int = DEFAULT_RANGE_ROWS,
                 write_rows: int = DEFAULT_WRITE_ROWS) -> ChainClusterStats:
    """Cluster one UTXO chain, walking its blocks in ranges of about ``range_rows`` inputs: per range the
    CoinJoin verdicts, the co-spend edges (streamed into the union-find as integer record batches), the
    change verdicts, and the evidence of that range's merges (txids looked up for those rows only) are
    computed and written as parts of the one transaction that commits the run. Peak memory is DuckDB's
    ``memory_limit`` plus one range's results plus 16 bytes per address."""
    t0 = time.monotonic()
    key = SETTING.format(chain=chain)
    state: dict[str, Any] = ws.setting(key) or {}
    con = ws.connect()
    spill = configure(con, memory_limit=memory_limit, threads=threads)
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

        uf = UnionFind(n) if do_full else UnionFind.from_labels(_load_labels(ws, chain))
        uf.grow(n)
        next_seq = 0 if do_full else int(state.get("next_seq", 0))
        now = datetime.now(UTC).replace(microsecond=0)
        merger = _Merger(uf, chain, next_seq, alarm_size, now)
        n_multi = 0
        cj_parts: list[pa.Table] = []
        change_edges: list[pa.Table] = []
        with ws.transaction() as txn:
            if do_full:
                for table in ("cluster_evidence", "coinjoin_txs", "change_outputs", "cluster_alarms"):
                    txn.replace(table, chain, None)
            for r_lo, r_hi in _block_ranges(con, chain, lo, tip, range_rows):
                # the range's parts, from the one eligibility function every engine runs (cluster/edges.py)
                keep: list[pa.Table] = []
                alarm_pos: list[np.ndarray] = []
                alarm_a: list[np.ndarray] = []
                alarm_b: list[np.ndarray] = []
                kept = 0
                for part in edges_mod.range_edges(con, chain, r_lo, r_hi, change_heuristics, seen_through=tip):
                    if part.kind == edges_mod.COINJOINS:
                        cj_parts.append(part.data)
                        n_multi += len(edges_mod.multi_party_txids(part.data))
                    elif part.kind == edges_mod.COSPEND:
                        # co-spend: integer batches into the union-find; txids only for the merging rows
                        batch = part.data
                        merged, alarm_edge, sa, sb = merger.union(batch.column("a").to_numpy(),
                                                                  batch.column("b").to_numpy())
                        task.advance(batch.num_rows)
                        if len(alarm_edge):
                            alarm_pos.append(kept + np.searchsorted(merged, alarm_edge))
                            alarm_a.append(sa)
                            alarm_b.append(sb)
                        if len(merged):
                            keep.append(pa.Table.from_batches([batch]).take(pa.array(merged)))
                            kept += len(merged)
                    elif part.kind == edges_mod.CHANGE_OUTPUTS:
                        if keep:  # the range's co-spend evidence, before its change verdicts
                            ints = pa.concat_tables(keep)
                            keep = []
                            ev = _with_txids(con, chain, r_lo, r_hi, ints, "cospend", COSPEND_CONFIDENCE)
                            del ints
                            txn.append("cluster_evidence", chain, merger.evidence(
                                ev, np.concatenate(alarm_pos) if alarm_pos else np.empty(0, np.int64),
                                np.concatenate(alarm_a) if alarm_a else np.empty(0, np.int64),
                                np.concatenate(alarm_b) if alarm_b else np.empty(0, np.int64)))
                            del ev
                        txn.append("change_outputs", chain, part.data)
                    elif part.data.num_rows:  # CHANGE
                        change_edges.append(part.data.select(EDGE_SCHEMA.names).cast(EDGE_SCHEMA))
            # change edges join after every co-spend edge (the order a single pass over all blocks uses)
            n_change = 0
            if change_edges:
                cedges = pa.concat_tables(change_edges)
                n_change = cedges.num_rows
                task.advance(n_change)
                txn.append("cluster_evidence", chain, merger.apply_table(cedges))
                del cedges, change_edges
            labels = uf.labels()
            del uf
            txn.replace("cluster_members", chain, None)
            for start in range(0, n, write_rows):
                txn.append("cluster_members", chain, _members(chain, labels, start, min(n, start + write_rows)))
            cj_all = pa.concat_tables(cj_parts) if cj_parts else coinjoin_mod.SCHEMA.empty_table()
            txn.append("coinjoin_txs", chain, cj_all)
            alarms = merger.alarms()
            txn.append("cluster_alarms", chain, alarms)
            txn.set_setting(key, {
                "height": tip, "hash": tip_hash, "change_heuristics": list(change_heuristics),
                "alarm_size": alarm_size, "next_seq": merger.seq, "kind": "utxo",
                "updated": now.isoformat(),
            })
    finally:
        _close(con, spill)
    task.close()
    return ChainClusterStats(chain, "utxo", "full" if do_full else "incremental", lo, tip, n,
                             _cluster_count(labels), merger.edges, merger.merges, n_multi,
                             n_change, 0, alarms.num_rows, time.monotonic() - t0)


@writes("cluster")
def cluster_evm(ws: Workspace, chain: str, *, alarm_size: int = DEFAULT_ALARM_SIZE,
                deposit_params: deposit_mod.DepositParams = deposit_mod.DepositParams(),
                progress: Progress = NullProgress(), memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
                threads: int | None = DEFAULT_THREADS) -> ChainClusterStats:
    t0 = time.monotonic()
    task = progress.task(f"cluster {chain}", total=None, unit="edges")
    con = ws.connect()
    spill = configure(con, memory_limit=memory_limit, threads=threads)
    try:
        n = _address_count(con, chain)
        tip = int(con.execute("SELECT coalesce(max(height), -1) FROM evm_transfers WHERE chain = $c",
                              {"c": chain}).fetchall()[0][0])
        deps = deposit_mod.all_deposits(con, chain, deposit_params)
    finally:
        _close(con, spill)
    edges = pa.table({
        "txid": deps["txid"], "height": deps["height"], "a": deps["hot_wallet_id"], "b": deps["address_id"],
        "heuristic": pa.array(["deposit" if r == "sweep" else f"deposit_contract:{r}"
                               for r in deps["rule"].to_pylist()], pa.string()), "confidence": deps["confidence"],
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


@writes("cluster")
def cluster(ws: Workspace, chain: str | None = None, *, change_heuristics: Iterable[str] | str = (),
            progress: Progress = NullProgress(), alarm_size: int = DEFAULT_ALARM_SIZE,
            full: bool = False, memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
            threads: int | None = DEFAULT_THREADS, range_rows: int = DEFAULT_RANGE_ROWS) -> ClusterStats:
    """Cluster one chain (or every chain of the workspace); see the module docstring. ``memory_limit`` and
    ``threads`` bound DuckDB (None: DuckDB's defaults); ``range_rows`` is the number of inputs per block
    range of a UTXO chain (the unit of work held in memory)."""
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
                                    progress=progress, memory_limit=memory_limit, threads=threads,
                                    range_rows=range_rows))
        else:
            out.append(cluster_evm(ws, c, alarm_size=alarm_size, progress=progress,
                                   memory_limit=memory_limit, threads=threads))
    return ClusterStats(tuple(out))

"""``fundtrail cluster --engine spark``: the clustering of UTXO chains as a Spark job, with the embedded
engine's results.

1. The eligible edges: :func:`fundtrail.cluster.edges.range_edges`, the function the embedded service
   runs, inside Spark tasks, one block range per task (``mapInArrow``); each task reads the workspace's
   Parquet parts through its own DuckDB connection. The ranges' CoinJoin and change verdicts come back as
   Arrow IPC blobs, one per range.
2. The partition: connected components of those edges by alternating large-star / small-star in plain
   DataFrames (engine/spark/components.py): every address id labelled with its component's smallest id,
   the cluster id the union-find gives.
3. The merge evidence: per component (``groupBy(label).applyInArrow``), the union-find kernel fed the
   component's edges in the global edge order (cluster/edges.py): the merges it records are the ones the
   embedded engine records for that component, so ``cluster_evidence`` (and its ``seq``), and the
   supercluster alarms, are the same rows.

4. The write: ``cluster_members`` and ``cluster_evidence`` (numbered by each merge's place in the global
   order: a range-partitioned sort, a row's rank in its partition plus the rows before the partition) are
   written by the executors as Parquet parts into ``HOME/staging/`` (engine/spark/write.py); one workspace
   transaction on the driver adopts them (a rename into ``tables/``) with the verdict tables and the
   alarms (small: one blob per block range, a few alarm rows), under the writer lease the run holds.

A Spark run always starts from scratch and leaves the state an embedded incremental run resumes
from. EVM chains (one aggregate query per chain) are clustered by the embedded service under either engine.
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from fundtrail.cluster import change as change_mod
from fundtrail.cluster import coinjoin as coinjoin_mod
from fundtrail.cluster import edges as edges_mod
from fundtrail.cluster import service as svc
from fundtrail.cluster.unionfind import UnionFind
from fundtrail.engine.base import EngineSpec
from fundtrail.engine.spark.components import ComponentsRun, connected_components
from fundtrail.engine.spark.jobs import group_apply, map_ranges
from fundtrail.engine.spark.session import session
from fundtrail.engine.spark.write import staging_dir, write_parts
from fundtrail.errors import NotFoundError
from fundtrail.progress import NullProgress, Progress
from fundtrail.store import schema as S
from fundtrail.store.workspace import STAGING, Workspace, writes

PARTS_DDL = ("kind string, phase int, height long, tx_index int, a long, b long, txid string, "
             "heuristic string, confidence double, blob binary")
FOREST_DDL = ("phase int, height long, tx_index int, a long, b long, txid string, heuristic string, "
              "confidence double, size_a long, size_b long")
_PARTS = pa.schema([
    ("kind", pa.string()), ("phase", pa.int32()), ("height", pa.int64()), ("tx_index", pa.int32()),
    ("a", pa.int64()), ("b", pa.int64()), ("txid", pa.string()), ("heuristic", pa.string()),
    ("confidence", pa.float64()), ("blob", pa.binary()),
])
_ORDER = [("phase", "ascending"), ("height", "ascending"), ("tx_index", "ascending"), ("b", "ascending")]


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _unipc(blob: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(blob)).read_all()


def _blob_row(kind: str, lo: int, table: pa.Table) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({
        "kind": [kind], "phase": [None], "height": [lo], "tx_index": [None], "a": [None], "b": [None],
        "txid": [None], "heuristic": [None], "confidence": [None], "blob": [_ipc(table)]}, schema=_PARTS)


def range_parts(home: str, chain: str, change_heuristics: tuple[str, ...], tip: int, memory_limit: str | None,
                lo: int, hi: int) -> Iterator[pa.RecordBatch]:
    """The work of one Spark task: :func:`edges_mod.range_edges` for blocks ``lo < height <= hi`` over
    the workspace at ``home``, as rows of :data:`PARTS_DDL`."""
    ws = Workspace(Path(home))
    con = ws.connect()
    spill = svc.configure(con, memory_limit=memory_limit, threads=1)
    try:
        for part in edges_mod.range_edges(con, chain, lo, hi, change_heuristics, seen_through=tip):
            d = part.data
            if part.kind in (edges_mod.COINJOINS, edges_mod.CHANGE_OUTPUTS):
                yield _blob_row(part.kind, lo, d if isinstance(d, pa.Table) else pa.Table.from_batches([d]))
                continue
            k = d.num_rows
            if k == 0:
                continue
            cospend = part.kind == edges_mod.COSPEND
            if isinstance(d, pa.Table):
                d = pa.RecordBatch.from_arrays([c.combine_chunks() for c in d.columns], names=d.column_names)
            yield pa.RecordBatch.from_pydict({
                "kind": pa.repeat(pa.scalar(part.kind), k),
                "phase": pa.array(np.full(k, edges_mod.PHASE[part.kind], np.int32)),
                "height": d.column("height").cast(pa.int64()),
                "tx_index": d.column("tx_index").cast(pa.int32()),
                "a": d.column("a").cast(pa.int64()), "b": d.column("b").cast(pa.int64()),
                "txid": pa.nulls(k, pa.string()) if cospend else d.column("txid").cast(pa.string()),
                "heuristic": pa.repeat(pa.scalar("cospend"), k) if cospend else d.column("heuristic"),
                "confidence": pa.array(np.full(k, svc.COSPEND_CONFIDENCE)) if cospend
                else d.column("confidence").cast(pa.float64()),
                "blob": pa.nulls(k, pa.binary())}, schema=_PARTS)
    finally:
        svc._close(con, spill)


def component_forest(alarm_size: int, table: pa.Table) -> pa.Table:
    """The merges of one component: the union-find fed its edges in the global order; with the sizes of
    the two clusters a merge joined when both had at least ``alarm_size`` addresses (else -1)."""
    cols = ["phase", "height", "tx_index", "a", "b", "txid", "heuristic", "confidence"]
    t = table.select(cols).sort_by(_ORDER)
    a, b = t["a"].to_numpy(), t["b"].to_numpy()
    ids, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    res = UnionFind(len(ids)).union(inv[:len(a)], inv[len(a):], alarm_size=alarm_size)
    out = t.take(pa.array(res.merged))
    sa = np.full(len(res.merged), -1, np.int64)
    sb = np.full(len(res.merged), -1, np.int64)
    pos = np.searchsorted(res.merged, res.alarm_edge)
    sa[pos], sb[pos] = res.alarm_size_a, res.alarm_size_b
    return out.append_column("size_a", pa.array(sa)).append_column("size_b", pa.array(sb))


@writes("cluster --engine spark")
def cluster_utxo(ws: Workspace, chain: str, spec: EngineSpec, *, change_heuristics: tuple[str, ...] = (),
                 alarm_size: int = svc.DEFAULT_ALARM_SIZE, progress: Progress = NullProgress(),
                 range_rows: int = svc.DEFAULT_RANGE_ROWS, memory_limit: str | None = svc.DEFAULT_MEMORY_LIMIT,
                 measure: bool = False, write_rows: int = svc.DEFAULT_WRITE_ROWS,
                 ) -> tuple[svc.ChainClusterStats, ComponentsRun]:
    """Cluster one UTXO chain on Spark (see the module docstring); the stats and the components' figures."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    t0 = time.monotonic()
    con = ws.connect()
    spill = svc.configure(con, memory_limit=memory_limit, threads=svc.DEFAULT_THREADS)
    try:
        tip, tip_hash = svc._tip(con, chain)
        n = svc._address_count(con, chain)
        ranges = svc._block_ranges(con, chain, -1, tip, range_rows)
    finally:
        svc._close(con, spill)
    task = progress.task(f"cluster {chain} (spark)", total=None, unit="edges")
    task.note(f"cluster {chain}: on Spark, {len(ranges)} block range(s), from scratch")
    spark = session(spec)
    fn = functools.partial(range_parts, str(ws.home.resolve()), chain, change_heuristics, tip, memory_limit)
    parts = map_ranges(spark, ranges, fn, PARTS_DDL).persist(StorageLevel.MEMORY_AND_DISK)
    staging = ws.home / STAGING
    members_dir, evidence_dir = staging_dir(staging), staging_dir(staging)
    persisted: list[Any] = [parts]
    try:
        # verdict tables (one small Arrow blob per range: CoinJoins, change verdicts) come to the driver
        blobs = parts.where(F.col("blob").isNotNull()).select("kind", "height", "blob").toArrow()
        edges = parts.where(F.col("blob").isNull()).drop("kind", "blob")
        per_phase = dict(edges.groupBy("phase").count().collect())
        n_edges = sum(per_phase.values())
        n_change = int(per_phase.get(edges_mod.PHASE[edges_mod.CHANGE], 0))
        task.advance(n_edges)
        labels_df, run = connected_components(spark, edges, measure=measure)
        labels_df = labels_df.persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(labels_df)
        # cluster_members: every address id, its label (itself when on no edge), written by the executors
        members = (spark.range(n).withColumnRenamed("id", "address_id")
                   .join(labels_df.withColumnRenamed("id", "address_id"), "address_id", "left")
                   .select(F.lit(chain).alias("chain"), "address_id",
                           F.coalesce("label", "address_id").alias("cluster_id")))
        member_files = write_parts(members.repartitionByRange(max(1, -(-n // write_rows)), "address_id")
                                   .sortWithinPartitions("address_id"), members_dir)
        moved = int(labels_df.where(F.col("id") != F.col("label")).count())
        # the merges of each component in the global order, numbered by their place in it
        keyed = edges.join(labels_df.withColumnRenamed("id", "a"), "a")
        forest = group_apply(keyed, "label", functools.partial(component_forest, alarm_size), FOREST_DDL)
        forest = _with_txid_df(spark, ws, chain, forest).orderBy("phase", "height", "tx_index", "b")
        forest = forest.withColumn("_m", F.monotonically_increasing_id()).withColumn(
            "_p", F.spark_partition_id()).persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(forest)
        offsets, start, n_merges = {}, 0, 0
        for p, cnt, first in sorted(forest.groupBy("_p").agg(F.count("*"), F.min("_m")).collect()):
            offsets[int(p)] = (start, int(first))
            start += int(cnt)
        n_merges = start
        off = spark.createDataFrame([(p, o, f) for p, (o, f) in offsets.items()] or [(0, 0, 0)],
                                    "_p int, _o long, _f long")
        forest = forest.join(F.broadcast(off), "_p").withColumn("seq", F.col("_m") - F.col("_f") + F.col("_o"))
        evidence = forest.select(F.lit(chain).alias("chain"), "seq", F.col("a").alias("a_id"),
                                 F.col("b").alias("b_id"), "txid", "heuristic", "confidence", "height")
        evidence_files = write_parts(evidence, evidence_dir)
        alarm_rows = (forest.where(F.col("size_a") >= 0)
                      .select("seq", "a", "b", "size_a", "size_b", "txid", "heuristic", "height").toArrow())
    except BaseException:
        for d in (members_dir, evidence_dir):
            shutil.rmtree(d, ignore_errors=True)
        raise
    finally:
        for df in persisted:
            df.unpersist()

    blobs = blobs.sort_by([("height", "ascending")])
    kinds = blobs["kind"].to_pylist()
    tables = [_unipc(x) for x in blobs["blob"].to_pylist()]
    cj_all = pa.concat_tables([t for k, t in zip(kinds, tables, strict=True) if k == edges_mod.COINJOINS]) \
        if edges_mod.COINJOINS in kinds else coinjoin_mod.SCHEMA.empty_table()
    reports = [t for k, t in zip(kinds, tables, strict=True) if k == edges_mod.CHANGE_OUTPUTS]
    n_multi = len(edges_mod.multi_party_txids(cj_all))
    now = datetime.now(UTC).replace(microsecond=0)
    alarm_rows = alarm_rows.sort_by([("seq", "ascending")])
    k = alarm_rows.num_rows
    alarms = S.conform(pa.table({
        "chain": pa.repeat(pa.scalar(chain, pa.string()), k), "seq": alarm_rows["seq"], "a_id": alarm_rows["a"],
        "b_id": alarm_rows["b"], "size_a": alarm_rows["size_a"], "size_b": alarm_rows["size_b"],
        "txid": alarm_rows["txid"], "heuristic": alarm_rows["heuristic"], "height": alarm_rows["height"],
        "clustered_at": pa.array([now] * k, pa.timestamp("s", tz="UTC"))}), S.schema_of("cluster_alarms"),
        "cluster_alarms")
    key = svc.SETTING.format(chain=chain)
    try:
        with ws.transaction() as txn:
            txn.replace("cluster_evidence", chain, None)
            for f in evidence_files:
                txn.adopt("cluster_evidence", chain, f)
            txn.replace("change_outputs", chain, None)
            for r in reports:
                txn.append("change_outputs", chain, r)
            txn.replace("coinjoin_txs", chain, None)
            txn.append("coinjoin_txs", chain, cj_all)
            txn.replace("cluster_alarms", chain, None)
            txn.append("cluster_alarms", chain, alarms)
            txn.replace("cluster_members", chain, None)
            for f in member_files:
                txn.adopt("cluster_members", chain, f)
            txn.set_setting(key, {
                "height": tip, "hash": tip_hash, "change_heuristics": list(change_heuristics),
                "alarm_size": alarm_size, "next_seq": n_merges, "kind": "utxo", "updated": now.isoformat(),
                "engine": "spark"})
    finally:
        for d in (members_dir, evidence_dir):
            shutil.rmtree(d, ignore_errors=True)
    task.close()
    return svc.ChainClusterStats(chain, "utxo", "full", -1, tip, n, n - moved, int(n_edges), n_merges, n_multi,
                                 n_change, 0, alarms.num_rows, time.monotonic() - t0), run


def _with_txid_df(spark: Any, ws: Workspace, chain: str, forest: Any) -> Any:
    """The forest with the txid of every co-spend merge (looked up in ``utxo_transactions`` by height and
    transaction index, as the embedded service does); change merges carry theirs."""
    from pyspark.sql import functions as F

    paths = [p.resolve().as_uri() for p in ws.part_paths("utxo_transactions", chain)]
    cos = forest.where(F.col("phase") == edges_mod.PHASE[edges_mod.COSPEND]).drop("txid")
    if paths:
        tx = (spark.read.parquet(*paths).where(F.col("chain") == chain)
              .select("height", "tx_index", F.lower(F.hex("txid")).alias("txid")))
        cos = cos.join(tx, ["height", "tx_index"], "left")
    else:
        cos = cos.withColumn("txid", F.lit(None).cast("string"))
    return cos.unionByName(forest.where(F.col("phase") != edges_mod.PHASE[edges_mod.COSPEND]))


@writes("cluster --engine spark")
def cluster(ws: Workspace, chain: str | None, spec: EngineSpec, *, change_heuristics: Iterable[str] | str = (),
            progress: Progress = NullProgress(), alarm_size: int = svc.DEFAULT_ALARM_SIZE,
            range_rows: int = svc.DEFAULT_RANGE_ROWS) -> svc.ClusterStats:
    """Cluster one chain (or every chain): UTXO chains on Spark, EVM chains embedded (module docstring)."""
    heur = change_mod.parse_heuristics(change_heuristics)
    if chain is not None:
        if ws.chain(chain) is None and not (ws.parts("utxo_inputs", chain) or ws.parts("evm_transfers", chain)):
            ws.require_chain(chain)
        chains = [chain]
    else:
        chains = sorted(ws.chains())
    if not chains:
        raise NotFoundError("the workspace has no chain to cluster")
    out = []
    for c in chains:
        if svc._kind(ws, c) == "utxo":
            out.append(cluster_utxo(ws, c, spec, change_heuristics=heur, alarm_size=alarm_size,
                                    progress=progress, range_rows=range_rows)[0])
        else:
            out.append(svc.cluster_evm(ws, c, alarm_size=alarm_size, progress=progress))
    return svc.ClusterStats(tuple(out))

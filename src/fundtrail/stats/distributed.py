"""``fundtrail stats --engine spark``: the statistics with their traces and sums on Spark, the embedded
engine's figures.

* **Traces:** every (incident, model) trace is one Spark task (``mapInArrow``) running the trace service
  over the workspace through its own reader; the results come back to the driver (a trace's result is its
  endpoints and holdings, small), which turns them into facts exactly as the embedded run does.
* **Sums:** the grouped totals and the flows by month are integer sums over a DataFrame of the facts
  (amounts as DECIMAL(38, 0), wei included; USD in cents), grouped by measure, model, the ``--by`` keys and
  asset; the driver orders them as :func:`fundtrail.stats.aggregate.rows_of` does.
* Timing percentiles and the shares stay on the driver: they need every cash-out fact of a group at once,
  and the facts are part of the result anyway.

The traces are the work (one per incident and model): Spark runs them side by side on its executors.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from fundtrail.engine.base import EngineSpec
from fundtrail.engine.spark.jobs import map_tasks
from fundtrail.engine.spark.session import session
from fundtrail.errors import NotFoundError
from fundtrail.model.trace import Seed, TraceResult
from fundtrail.prices.book import PriceBook
from fundtrail.stats import service as svc
from fundtrail.stats.aggregate import Sums, rows_of
from fundtrail.stats.model import Fact, GroupRow
from fundtrail.store import Workspace

TRACE_DDL = "item long, result binary"
AMOUNT = "decimal(38,0)"


def trace_task(home: str, jobs: list[tuple], max_hops: int, prices: PriceBook | None, tracer: Any,
               i: int) -> Iterator[pa.RecordBatch]:
    """The work of one Spark task: trace job ``i`` (seeds, since, model); its result (or the NotFoundError
    that stopped it) pickled."""
    seeds, since, model = jobs[i]
    ws = Workspace(Path(home))
    try:
        if tracer is None:
            from fundtrail.trace.service import trace as tracer
        book = prices if prices is not None else PriceBook.load(ws)
        try:
            out: Any = tracer(ws, seeds, model=model, max_hops=max_hops, since=since, prices=book)
        except NotFoundError as e:
            out = e
    finally:
        ws.close()
    yield pa.RecordBatch.from_pydict({"item": [i], "result": [pickle.dumps(out)]},
                                     schema=pa.schema([("item", pa.int64()), ("result", pa.binary())]))


def spark_traces(spec: EngineSpec, ws: Workspace, jobs: Sequence[tuple[list[Seed], datetime | None]],
                 models: Sequence[str], max_hops: int, prices: PriceBook | None, tracer: Any
                 ) -> Iterator[tuple[list[TraceResult], NotFoundError | None]]:
    """The :data:`~fundtrail.stats.service.TraceRunner` of the Spark engine: every trace a task."""
    flat = [(seeds, since, m) for seeds, since in jobs for m in models]
    if not flat:
        return
    spark = session(spec)
    tracer = None if tracer is _default_tracer() else tracer
    fn = functools.partial(trace_task, str(ws.home.resolve()), flat, max_hops, prices, tracer)
    got = map_tasks(spark, len(flat), fn, TRACE_DDL).toArrow()
    results = dict(zip(got["item"].to_pylist(), got["result"].to_pylist(), strict=True))
    k = 0
    for _ in jobs:
        out: list[TraceResult] = []
        err: NotFoundError | None = None
        for _m in models:
            r = pickle.loads(results[k])  # noqa: S301 - written by this run's own tasks
            k += 1
            if err is not None:
                continue
            if isinstance(r, NotFoundError):
                err = r
            else:
                out.append(r)
        yield out, err


def _default_tracer() -> Any:
    from fundtrail.trace.service import trace

    return trace


FACT_DDL_KEYS = "measure string, model string, chain string, asset string, symbol string, decimals int, " \
                "amount string, usd_cents long, ord long"


def spark_group(spec: EngineSpec, facts: Sequence[Fact], by: Sequence[str]) -> tuple[GroupRow, ...]:
    """:func:`fundtrail.stats.aggregate.group` as sums over a Spark DataFrame of the facts."""
    from pyspark.sql import functions as F

    by = tuple(by)
    spark = session(spec)
    keys = [f"k{i}" for i in range(len(by))]
    schema = FACT_DDL_KEYS + "".join(f", {k} string" for k in keys)
    rows = [(f.measure, f.model, f.chain, f.asset, f.symbol, f.decimals, str(f.amount), f.usd_cents, i,
             *(f.key(k) for k in by)) for i, f in enumerate(facts)]
    df = spark.createDataFrame(rows, schema).withColumn("amount", F.col("amount").cast(AMOUNT))
    g = ["measure", "model", *keys]
    per = (df.groupBy(*g, "chain", "asset")
           .agg(F.sum("amount").cast("string").alias("amount"),
                F.sum("usd_cents").alias("cents"),
                F.max(F.col("usd_cents").isNotNull().cast("int")).alias("priced"),
                F.sum(F.when(F.col("usd_cents").isNull(), F.col("amount")).otherwise(F.lit(0).cast(AMOUNT)))
                .cast("string").alias("unpriced"),
                F.min("ord").alias("first"))
           .orderBy("first").collect())
    counts_rows = df.groupBy(*g).count().collect()
    # an asset's symbol and decimals: its first fact with a symbol, else its first fact
    meta_rows = (df.groupBy("chain", "asset")
                 .agg(F.min_by(F.struct("symbol", "decimals"),
                               F.struct(F.col("symbol").isNull() | (F.col("symbol") == ""), F.col("ord")))
                      .alias("m")).collect())
    amounts: dict[tuple, dict[tuple[str, str], list[int]]] = {}
    for r in per:
        key = (r["measure"], r["model"], tuple(r[k] for k in keys))
        amounts.setdefault(key, {})[(r["chain"], r["asset"])] = [
            int(r["amount"]), int(r["cents"] or 0), int(r["priced"] or 0), int(r["unpriced"])]
    meta = {(r["chain"], r["asset"]): (r["m"]["symbol"], r["m"]["decimals"]) for r in meta_rows}
    counts = {(r["measure"], r["model"], tuple(r[k] for k in keys)): int(r["count"]) for r in counts_rows}
    s: Sums = (amounts, meta, counts)
    return rows_of(s, by)


def compute_stats(ws: Workspace, *, spec: EngineSpec, **kwargs: Any) -> Any:
    """:func:`fundtrail.stats.service.compute_stats` with its traces and sums on Spark."""
    return svc.compute_stats(ws, runner=functools.partial(spark_traces, spec),
                             grouper=functools.partial(spark_group, spec), **kwargs)

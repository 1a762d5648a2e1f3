"""The shapes of work a service hands the Spark engine: a range function mapped over block ranges, a task
function mapped over the job's own items, a group function applied per key. All take plain functions,
pickled to the executors (which need fundtrail installed and the workspace on a path they all reach)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from fundtrail.engine.base import GroupFn, RangeFn, TaskFn


def map_ranges(spark: Any, ranges: Sequence[tuple[int, int]], fn: RangeFn, ddl: str) -> Any:
    """A DataFrame of ``ddl`` rows: ``fn(lo, hi)`` for every block range, one range per task."""
    rows = [(i, int(lo), int(hi)) for i, (lo, hi) in enumerate(ranges)]
    src = spark.createDataFrame(rows or [(0, 0, 0)], "seq long, lo long, hi long")
    if not rows:
        src = src.limit(0)
    src = src.repartition(max(1, len(rows)), "seq")

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            for lo, hi in zip(b.column("lo").to_pylist(), b.column("hi").to_pylist(), strict=True):
                yield from fn(int(lo), int(hi))

    return src.mapInArrow(run, ddl)


def group_apply(df: Any, key: str, fn: GroupFn, ddl: str) -> Any:
    """A DataFrame of ``ddl`` rows: ``fn`` over the rows of each ``key`` value (one Arrow table each)."""
    def run(table: pa.Table) -> pa.Table:  # a plain function with hints: how PySpark picks the Table API
        return fn(table)

    return df.groupBy(key).applyInArrow(run, ddl)


def map_tasks(spark: Any, count: int, fn: TaskFn, ddl: str, *, tasks: int | None = None) -> Any:
    """A DataFrame of ``ddl`` rows: ``fn(i)`` for every item ``0 <= i < count`` (the job's own units of
    work: a risk group's propagation, an incident's trace), spread over ``tasks`` tasks (default: one
    item per task)."""
    rows = [(i,) for i in range(count)]
    src = spark.createDataFrame(rows or [(0,)], "item long")
    if not rows:
        src = src.limit(0)
    src = src.repartition(max(1, min(count, tasks or count)), "item")

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            for i in b.column("item").to_pylist():
                yield from fn(int(i))

    return src.mapInArrow(run, ddl)

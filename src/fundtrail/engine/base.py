"""What a job asks of an engine, and how the edges (CLI, API) name one.

A service that runs a heavy job takes an :class:`EngineSpec` (``embedded`` unless asked) and hands the
engine its kernels as plain functions, so the engine never imports a service:

* a **range function** (:data:`RangeFn`): ``fn(lo, hi) -> Iterator[pa.RecordBatch]``, the job's work for
  blocks ``lo < height <= hi`` over the workspace. The embedded engine calls it range after range in
  process; the Spark engine runs it inside its tasks, one range per task (``mapInArrow``), so both engines
  compute the same rows by construction (clustering: cluster/edges.py);
* a **task function** (:data:`TaskFn`): ``fn(i) -> Iterator[pa.RecordBatch]``, item ``i`` of the job's own
  units of work (exposure: one risk group's propagation; statistics: one incident's trace under one model);
* a **group function** (:data:`GroupFn`): ``fn(table) -> pa.Table``, applied to all rows sharing a key
  (clustering: the union-find over one component's edges, which yields its merge evidence);
* **connected components** of an integer edge list, labelling every id with the smallest id of its
  component (embedded: the union-find kernel; Spark: alternating large-star / small-star over DataFrames,
  engine/spark/components.py).

Results are written where they are computed (engine/spark/write.py: Parquet parts the workspace's
transaction adopts), not collected on the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from fundtrail.errors import UsageError

ENGINES = ("embedded", "spark")
DEFAULT_MASTER = "local[*]"

RangeFn = Callable[[int, int], Iterator[pa.RecordBatch]]
GroupFn = Callable[[pa.Table], pa.Table]
TaskFn = Callable[[int], Iterator[pa.RecordBatch]]


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """Which engine runs a job; for Spark, its master URL and extra Spark settings (``k=v``)."""

    name: str = "embedded"
    master: str = DEFAULT_MASTER
    conf: tuple[tuple[str, str], ...] = ()

    @property
    def distributed(self) -> bool:
        return self.name != "embedded"


def engine_spec(name: str = "embedded", master: str | None = None,
                conf: Iterable[str] = ()) -> EngineSpec:
    """An :class:`EngineSpec` from command-line values; ``conf`` items are ``key=value``."""
    name = (name or "embedded").strip().lower()
    if name not in ENGINES:
        raise UsageError(f"--engine: unknown engine {name!r} (one of {', '.join(ENGINES)})")
    pairs = []
    for item in conf:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise UsageError(f"--spark-conf: {item!r} is not key=value")
        pairs.append((k.strip(), v.strip()))
    if pairs and name != "spark":
        raise UsageError("--spark-conf is only for --engine spark")
    return EngineSpec(name, master or DEFAULT_MASTER, tuple(pairs))

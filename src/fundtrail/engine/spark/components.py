"""Connected components of an integer edge list in plain Spark DataFrames: alternating large-star and
small-star (Kiveris, Lattanzi, Mirrokni, Rastogi, Vassilvitskii, "Connected Components in MapReduce and
Beyond", SoCC 2014). No GraphFrames, no jar.

Edges are kept oriented child -> parent with parent < child. *Large-star* links every node's larger
neighbours to the smallest id of its closed neighbourhood; *small-star* links a node and its smaller
neighbours to the smallest of them. Both keep the components; they stop when every edge points at a root
(every child has one parent and no parent is anyone's child): the graph is then one star per component, centred on its smallest id, so
the label of an id is its component's smallest id, the cluster id the union-find gives.

Every round's output is a local checkpoint (the plan would otherwise double each round), and every
``checkpoint_every`` rounds a reliable one (in the checkpoint directory). A giant component (an exchange's
millions of addresses) becomes one star with a high in-degree: the joins on a node's id then meet one very
large key, which Spark's adaptive execution splits (``spark.sql.adaptive.skewJoin.enabled``); with
``measure=True`` every round records its edges, the largest star and the largest shuffle partition, so the
skew can be read rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fundtrail.engine.spark.session import checkpoint_dir


@dataclass(frozen=True, slots=True)
class RoundFigures:
    round: int
    edges: int  # edges after the round's large-star and small-star
    largest_star: int  # most children of one parent after the round
    largest_partition: int  # rows of the largest partition of the round's output


@dataclass(frozen=True, slots=True)
class ComponentsRun:
    rounds: int
    figures: tuple[RoundFigures, ...]  # one per round when measured, else empty


def _large_star(e: Any) -> Any:
    from pyspark.sql import functions as F

    both = e.unionByName(e.select(F.col("v").alias("u"), F.col("u").alias("v")))
    m = both.groupBy("u").agg(F.least(F.min("v"), F.col("u")).alias("m"))
    return (both.join(m, "u").where(F.col("v") > F.col("u"))
            .select(F.col("v").alias("u"), F.col("m").alias("v")).distinct())


def _small_star(e: Any) -> Any:
    from pyspark.sql import functions as F

    m = e.groupBy("u").agg(F.min("v").alias("m"))
    leaves = e.join(m, "u").where(F.col("v") != F.col("m")).select(F.col("v").alias("u"), F.col("m").alias("v"))
    return leaves.unionByName(m.select("u", F.col("m").alias("v"))).distinct()


def _figures(e: Any, rnd: int) -> RoundFigures:
    from pyspark.sql import functions as F

    edges = e.count()
    star = e.groupBy("v").count().agg(F.max("count")).first()[0] or 0
    part = e.groupBy(F.spark_partition_id().alias("p")).count().agg(F.max("count")).first()[0] or 0
    return RoundFigures(rnd, int(edges), int(star), int(part))


def connected_components(spark: Any, edges: Any, *, checkpoint_every: int = 3, measure: bool = False,
                         max_rounds: int = 256) -> tuple[Any, ComponentsRun]:
    """``edges`` (columns ``a``, ``b``: ids) -> a DataFrame (``id``, ``label``) for every id on an edge,
    ``label`` the smallest id of its component, and the run's figures."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from fundtrail.errors import EngineError

    checkpoint_dir(spark)
    e = (edges.select(F.col("a").cast("long").alias("a"), F.col("b").cast("long").alias("b"))
         .where(F.col("a") != F.col("b"))
         .select(F.greatest("a", "b").alias("u"), F.least("a", "b").alias("v")).distinct())
    e = e.persist(StorageLevel.MEMORY_AND_DISK)
    figures: list[RoundFigures] = []
    rnd = 0
    while True:
        parents = e.select(F.col("v").alias("u")).distinct()
        if e.join(parents, "u", "left_semi").isEmpty() and \
                e.groupBy("u").count().where(F.col("count") > 1).isEmpty():
            break  # every id has one parent, a root: one star per component
        rnd += 1
        if rnd > max_rounds:
            raise EngineError(f"connected components did not converge in {max_rounds} rounds")
        nxt = _small_star(_large_star(e))
        # every round cuts the plan (a local checkpoint in the executors' block stores: the plan would
        # otherwise double with every round); every few rounds a reliable checkpoint survives a lost executor
        nxt = nxt.checkpoint(eager=True) if rnd % checkpoint_every == 0 else nxt.localCheckpoint(eager=True)
        if measure:
            figures.append(_figures(nxt, rnd))
        e.unpersist()
        e = nxt
    labels = e.select(F.col("u").alias("id"), F.col("v").alias("label")).unionByName(
        e.select(F.col("v").alias("id"), F.col("v").alias("label")).distinct())
    return labels, ComponentsRun(rnd, tuple(figures))

"""The exposure index's fold in plain Spark DataFrames: hits of every risk group (one row per address,
group, direction and asset, as the propagation tasks emit them) become one row per *subject*, direction,
group and asset, with the subject's totals.

Rules (the embedded build's, exposure/index.py):

* the subject of an address is its cluster when it is clustered and the cluster is not a service, else the
  address itself;
* per subject: the amounts add up, the hops are the fewest, the evidence (``address_id`` and ``path``) is
  the hit carrying the most, ties to the hit emitted first (``ord``);
* ``total`` is what the subject received (direction ``received``) or sent (``sent``) over the chain: the
  address's own totals, or the sum over its cluster's addresses;
* ``decimals``: 8 for ``BTC``, the token's decimals where ``evm_tokens`` has them, else 18.

Inputs are DataFrames, so this module knows no workspace and no service: ``hits`` (chain, direction, gid,
address_id, asset, amount decimal(38,0), hops, path, ord), ``totals`` (chain, address_id, asset, recv,
sent: decimal(38,0)), ``clusters`` (chain, address_id, cluster_id), ``services`` (chain, cluster_id) and
``decimals`` (chain, asset, decimals).
"""

from __future__ import annotations

from typing import Any

HITS_DDL = ("kind string, chain string, direction string, gid int, address_id long, asset string, "
            "amount string, hops int, path array<string>, ord long, recv string, sent string")
AMOUNT = "decimal(38,0)"


def fold(hits: Any, totals: Any, clusters: Any, services: Any, decimals: Any) -> Any:
    """One row per (chain, subject, subject_id, direction, gid, asset) in the index's column order."""
    from pyspark.sql import functions as F

    svc = services.select("chain", "cluster_id", F.lit(True).alias("_svc"))

    def subjects(df: Any) -> Any:
        d = (df.join(clusters, ["chain", "address_id"], "left").join(svc, ["chain", "cluster_id"], "left"))
        as_cluster = F.col("cluster_id").isNotNull() & F.col("_svc").isNull()
        return (d.withColumn("subject", F.when(as_cluster, F.lit("cluster")).otherwise(F.lit("address")))
                .withColumn("subject_id", F.when(as_cluster, F.col("cluster_id")).otherwise(F.col("address_id")))
                .drop("_svc"))

    t = subjects(totals.select("chain", "address_id", "asset", F.col("recv").cast(AMOUNT).alias("recv"),
                               F.col("sent").cast(AMOUNT).alias("sent")))
    addr_tot = (t.where(F.col("subject") == "address")
                .select("chain", "subject", "subject_id", "asset", "recv", "sent"))
    clus_tot = (t.where(F.col("subject") == "cluster").groupBy("chain", "subject", "subject_id", "asset")
                .agg(F.sum("recv").alias("recv"), F.sum("sent").alias("sent")))
    tot = addr_tot.unionByName(clus_tot)

    h = subjects(hits.withColumn("amount", F.col("amount").cast(AMOUNT)))
    key = ["chain", "subject", "subject_id", "direction", "gid", "asset"]
    best = F.struct(F.col("amount"), (-F.col("ord")).alias("first"))
    agg = h.groupBy(*key).agg(
        F.sum("amount").alias("amount"), F.min("hops").alias("hops"),
        F.max_by(F.struct("address_id", "path"), best).alias("_best"))
    out = (agg.join(tot, ["chain", "subject", "subject_id", "asset"], "left")
           .join(decimals, ["chain", "asset"], "left")
           .withColumn("total", F.coalesce(F.when(F.col("direction") == "received", F.col("recv"))
                                           .otherwise(F.col("sent")).cast("double"), F.lit(0.0)))
           .withColumn("decimals", F.when(F.col("asset") == "BTC", F.lit(8))
                       .otherwise(F.coalesce(F.col("decimals"), F.lit(18))).cast("int")))
    return out.select(
        "chain", "subject", F.col("subject_id").cast("long"), F.col("_best.address_id").alias("address_id"),
        "direction", F.col("gid").cast("int"), "asset", "decimals", F.col("amount").cast("string").alias("amount"),
        "total", F.col("hops").cast("int"), F.col("_best.path").alias("path"))

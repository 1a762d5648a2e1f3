"""A Spark session from an :class:`~fundtrail.engine.base.EngineSpec`, and where it checkpoints."""

from __future__ import annotations

import tempfile
from typing import Any

from fundtrail.engine.base import EngineSpec
from fundtrail.errors import EngineError

DEFAULTS: dict[str, str] = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.adaptive.enabled": "true",  # adaptive plans split skewed join partitions (giant clusters)
    "spark.sql.adaptive.skewJoin.enabled": "true",
}


def session(spec: EngineSpec, app_name: str = "fundtrail") -> Any:
    """The active Spark session for ``spec`` (created if none runs): ``spec.master`` and ``spec.conf``
    on top of :data:`DEFAULTS`. A session already running (spark-submit, tests) is reused, with those of
    ``spec.conf`` that can change at run time set on it."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as e:  # the extra is not installed
        raise EngineError("--engine spark needs PySpark 4: pip install 'fundtrail[spark]' "
                          "(and Java 17 on the PATH or in JAVA_HOME)") from e
    active = SparkSession.getActiveSession()
    if active is not None:
        for k, v in spec.conf:
            if active.conf.isModifiable(k):
                active.conf.set(k, v)
        return active
    builder = SparkSession.builder.master(spec.master).appName(app_name)
    for k, v in {**DEFAULTS, **dict(spec.conf)}.items():
        builder = builder.config(k, v)
    try:
        return builder.getOrCreate()
    except Exception as e:  # the JVM did not start, or the master is unreachable
        raise EngineError(f"Spark session on {spec.master!r} did not start: {e}") from e


def checkpoint_dir(spark: Any) -> str:
    """The session's checkpoint directory; a fresh local one when none is set (on a cluster, set
    ``spark.checkpoint.dir`` to a directory every executor reaches, e.g. on HDFS)."""
    sc = spark.sparkContext
    current = sc.getCheckpointDir()
    if current:
        return str(current)
    conf = spark.conf.get("spark.checkpoint.dir", None)
    path = conf or tempfile.mkdtemp(prefix="fundtrail-spark-checkpoint-")
    sc.setCheckpointDir(path)
    return str(sc.getCheckpointDir() or path)

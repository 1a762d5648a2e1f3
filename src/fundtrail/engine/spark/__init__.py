"""The Spark engine: a session from an :class:`~fundtrail.engine.base.EngineSpec`, range functions mapped
over block ranges, connected components in plain DataFrames, group functions per key. PySpark is an extra
(``pip install 'fundtrail[spark]'``); nothing here needs a jar beyond Spark's own."""

"""The engine seam: where a heavy job runs, in process (``embedded``, the default) or on Apache Spark.

Both engines read and write the same workspace (Parquet parts and their manifest); a job is the same
function either way, and only its distribution changes. See docs/engine.md.
"""

"""Writing a DataFrame's rows where the executors are: Parquet parts through Spark's own writer, nothing
collected on the driver.

:func:`write_parts` writes into a fresh staging directory (of the workspace's filesystem, so that the
driver's transaction can adopt every part with a rename, :meth:`~fundtrail.store.workspace.Transaction.adopt`);
the caller holds the workspace's writer lease for the whole run, so a staging directory a dead run left
behind is an orphan the next writer deletes. On a cluster the directory must be on storage every executor
and the driver reach at the same path (the workspace's NFS or shared mount)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any


def staging_dir(root: Path) -> Path:
    """A fresh, not yet existing directory under ``root`` for one writer's parts."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root / f"spark-{uuid.uuid4().hex}"


def write_parts(df: Any, target: Path, *, compression: str = "zstd", partitions: int | None = None) -> list[Path]:
    """Write ``df`` as Parquet parts into the new directory ``target`` (``partitions`` files when given,
    else one per partition of ``df``); the part files, in name order. On failure ``target`` is removed."""
    if partitions is not None:
        df = df.repartition(partitions)
    try:
        df.write.mode("errorifexists").option("compression", compression).parquet(target.resolve().as_uri())
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return sorted(p for p in target.glob("part-*.parquet") if p.is_file())

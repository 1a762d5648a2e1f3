"""The SQL sandbox: what a connection that runs user SQL (``fundtrail query``) may do.

Once the workspace's views exist, the connection is locked down:

- no file or network access outside the workspace's tables (``enable_external_access = false``, with only
  ``HOME/tables/`` and the query's own spill directory allowed): ``read_csv('/etc/passwd')``,
  ``read_text``, ``ATTACH``, ``COPY``, ``INSTALL``/``LOAD`` of extensions all fail;
- bounded: ``memory_limit`` and ``threads`` (DuckDB settings), a statement timeout (the statement is
  interrupted) and a cap on the rows a result may have (it is streamed, not materialised, past the cap);
- ``lock_configuration = true`` last, so no ``SET``/``RESET``/``PRAGMA`` can undo any of the above.

Only SELECT and EXPLAIN statements are accepted. ``allow_files`` (``fundtrail query --allow-files``) keeps
DuckDB's file access for a person querying their own machine; the limits still apply.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from fundtrail.errors import QueryLimitError, UsageError


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """Bounds of one user query. ``memory_limit`` is a DuckDB size ("2GB"); ``timeout`` seconds (None:
    none); ``max_rows`` of the result (None: none); ``threads`` DuckDB worker threads."""

    timeout: float | None = 60.0
    memory_limit: str = "2GB"
    threads: int = 2
    max_rows: int | None = 1_000_000
    temp_limit: str = "4GB"  # disk a query may spill to


def lock_down(con: duckdb.DuckDBPyConnection, home: Path, limits: QueryLimits, *, allow_files: bool,
              spill: Path) -> None:
    """Apply the sandbox to ``con`` (whose views are already made); see the module docstring."""
    con.execute(f"SET memory_limit = '{_size(limits.memory_limit)}'")
    con.execute(f"SET threads = {int(limits.threads)}")
    con.execute(f"SET temp_directory = '{_lit(str(spill))}'")
    con.execute(f"SET max_temp_directory_size = '{_size(limits.temp_limit)}'")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    if not allow_files:
        tables = str((home / "tables").resolve()) + "/"
        con.execute(f"SET allowed_directories = ['{_lit(tables)}', '{_lit(str(spill.resolve()) + '/')}']")
        con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _lit(s: str) -> str:
    return s.replace("'", "''")


def _size(s: str) -> str:
    t = s.strip()
    if not t or not all(c.isalnum() or c in ". " for c in t):
        raise UsageError(f"memory size {s!r}: give a number and a unit, e.g. 2GB or 512MB")
    return t


def run(con: duckdb.DuckDBPyConnection, sql: str, limits: QueryLimits) -> pa.Table:
    """Run read-only ``sql`` on a locked-down connection within ``limits``."""
    for st in con.extract_statements(sql):
        if st.type not in (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN):
            raise UsageError(f"query is read-only: {st.type.name} statements are not allowed")
    timer: threading.Timer | None = None
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        con.interrupt()

    if limits.timeout is not None:
        timer = threading.Timer(limits.timeout, stop)
        timer.daemon = True
        timer.start()
    try:
        rel = con.sql(sql)
        if rel is None:
            return pa.table({})
        reader = rel.to_arrow_reader(64 * 1024)
        batches: list[pa.RecordBatch] = []
        rows = 0
        for batch in reader:
            rows += batch.num_rows
            if limits.max_rows is not None and rows > limits.max_rows:
                raise QueryLimitError(f"query result has more than {limits.max_rows:,} rows: add a LIMIT or "
                                      "aggregate (or raise --max-rows)")
            batches.append(batch)
        return pa.Table.from_batches(batches, schema=reader.schema)
    except duckdb.InterruptException:
        if timed_out.is_set():
            raise QueryLimitError(f"query stopped after {limits.timeout:g} s (statement timeout; "
                                  "--timeout SECONDS to change)") from None
        raise
    except duckdb.OutOfMemoryException as e:
        raise QueryLimitError(f"query needs more than its memory limit ({limits.memory_limit}; "
                              f"--memory-limit to change): {_first_line(e)}") from None
    except duckdb.PermissionException as e:
        raise QueryLimitError(f"query refused: {_first_line(e)} (user SQL may read the workspace's tables "
                              "only; `fundtrail query --allow-files` lifts this on your own machine)") from None
    except duckdb.InvalidInputException as e:
        if "configuration has been locked" in str(e):
            raise QueryLimitError(f"query refused: {_first_line(e)} (settings are locked for user SQL)") from None
        raise UsageError(f"query failed: {e}") from e
    except duckdb.Error as e:
        if timed_out.is_set():
            raise QueryLimitError(f"query stopped after {limits.timeout:g} s (statement timeout; "
                                  "--timeout SECONDS to change)") from None
        raise UsageError(f"query failed: {e}") from e
    finally:
        if timer is not None:
            timer.cancel()


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def spill_dir(home: Path) -> Path:
    """A fresh private directory for one query's spill files (removed by :func:`remove_spill`)."""
    try:
        base = home / "tmp"
        base.mkdir(mode=0o700, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="query-", dir=base))
    except OSError:  # a read-only or full workspace can still be queried
        return Path(tempfile.mkdtemp(prefix="fundtrail-query-"))


def remove_spill(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

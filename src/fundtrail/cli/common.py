"""What every command shares: the workspace option, output rendering, progress, error translation."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fundtrail.progress import Task
from fundtrail.safetext import SafeConsole, SafeFormatter, csv_cell
from fundtrail.store import Workspace

# every console prints data as plain text: no markup, no emoji codes, terminal controls stripped
# (fundtrail.safetext); trusted styling goes through rich.text.Text
console = SafeConsole()
if not console.is_terminal and "COLUMNS" not in os.environ:
    console = SafeConsole(width=140)  # piped output: no terminal width to fit, don't fold tables at 80
err_console = SafeConsole(stderr=True)

HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", envvar="FUNDTRAIL_HOME", help="Workspace directory (default ./.fundtrail).",
                 show_default=False),
]


WaitOpt = Annotated[
    float,
    typer.Option("--wait", min=0, metavar="SECONDS",
                 help="If another fundtrail process is writing the workspace, wait up to this long for it "
                      "(default 0: stop at once, naming it).", show_default=False),
]


def workspace(home: Path | None, *, wait: float = 0.0) -> Workspace:
    """The workspace of a command. A writing command passes its ``--wait``: the services it calls take the
    workspace's writer lease and wait that long for another writer, saying whom they wait for."""
    def told(holder: Any) -> None:
        who = holder.describe() if holder is not None else "a process that has not described itself yet"
        err_console.print(f"waiting for another writer of the workspace to finish: {who}", highlight=False)
    return Workspace(home, wait=wait, on_wait=told)


def render_table(table: pa.Table, fmt: str = "table", title: str | None = None) -> None:
    """Print an Arrow table as a rich table, JSON lines or CSV."""
    if fmt == "json":
        for row in table.to_pylist():
            sys.stdout.write(json.dumps(row, default=str) + "\n")
    elif fmt == "csv":
        buf = pa.BufferOutputStream()
        pacsv.write_csv(neutralise_formulas(table), buf)
        sys.stdout.write(buf.getvalue().to_pybytes().decode())
    else:
        t = Table(title=title, show_lines=False)
        for name in table.column_names:
            t.add_column(name, overflow="fold")
        for row in table.to_pylist():
            t.add_row(*["" if v is None else str(v) for v in row.values()])
        console.print(t)


def neutralise_formulas(table: pa.Table) -> pa.Table:
    """``table`` with every string cell passed through :func:`fundtrail.safetext.csv_cell` (spreadsheet
    formulas neutralised); numeric columns are left as they are."""
    cols = []
    for col in table.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = pa.array([csv_cell(v) for v in col.to_pylist()], col.type)
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


# --- progress: a bar on a terminal, log lines otherwise ---------------------------------------------

def _rate(v: float, dt: float) -> str:
    """A rate with the digits it needs: 0.04 MB/s is not "0.0 MB/s"."""
    r = v / dt
    return f"{r:,.0f}" if r >= 100 else f"{r:,.1f}" if r >= 1 else f"{r:.2g}"


class _RichTask:
    def __init__(self, progress: Progress, task_id: Any, unit: str) -> None:
        self._p = progress
        self._id = task_id
        self._unit = unit
        self._start = time.monotonic()
        self._sums: dict[str, float] = {}
        self._n = 0.0

    def advance(self, n: float = 1, **figures: float) -> None:
        self._n += n
        for k, v in figures.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        dt = max(time.monotonic() - self._start, 1e-9)
        rates = [f"{_rate(self._n, dt)} {self._unit}/s"] + [f"{_rate(v, dt)} {k}/s" for k, v in self._sums.items()
                                                            if v > 0]
        self._p.update(self._id, advance=n, figures="  ".join(rates))

    def note(self, message: str) -> None:
        self._p.console.print(message)

    def close(self) -> None:
        self._p.stop_task(self._id)


class _LogTask:
    """Log lines every 5 s and one at the end; a line is never printed twice (the end line is skipped
    when the last periodic line already said the same count; ``seen`` is shared by the tasks of one
    command, so a task run again with the same outcome does not repeat it). Rates are taken at the last
    advance, not at close time, and over the time the task has run."""

    def __init__(self, description: str, total: float | None, unit: str, seen: set[tuple]) -> None:
        self._d, self._total, self._unit = description, total, unit
        self._start = self._last = self._at = time.monotonic()
        self._n = 0.0
        self._sums: dict[str, float] = {}
        self._seen = seen
        self._closed = False

    def advance(self, n: float = 1, **figures: float) -> None:
        self._n += n
        for k, v in figures.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        now = self._at = time.monotonic()
        if now - self._last >= 5:
            self._last = now
            self._line()

    def _line(self) -> None:
        key = (self._d, self._n, self._total)
        if key in self._seen:
            return
        self._seen.add(key)
        dt = max(self._at - self._start, 1e-9)
        of = f"/{self._total:,.0f}" if self._total else ""
        rates = ", ".join(f"{_rate(v, dt)} {k}/s" for k, v in self._sums.items() if v > 0)
        speed = f" ({_rate(self._n, dt)} {self._unit}/s" + (f", {rates}" if rates else "") + ")" if self._n else ""
        err_console.print(f"{self._d}: {self._n:,.0f}{of} {self._unit}{speed}", highlight=False)

    def note(self, message: str) -> None:
        if ("note", message) not in self._seen:
            self._seen.add(("note", message))
            err_console.print(message, highlight=False)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._line()


class CliProgress:
    """The CLI's ``Progress``: use as a context manager around the service call."""

    def __init__(self) -> None:
        self._tty = err_console.is_terminal
        self._rich: Progress | None = None
        self._seen: set[tuple] = set()
        self._bars: dict[str, Any] = {}

    def __enter__(self) -> CliProgress:
        if self._tty:
            self._rich = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,.0f}"),
                                  TextColumn("{task.fields[figures]}"), TimeElapsedColumn(), console=err_console,
                                  transient=False)
            self._rich.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()

    def task(self, description: str, total: float | None = None, unit: str = "") -> Task:
        if self._rich is not None:
            if description in self._bars:  # the same task again (trace per model): one bar, restarted
                task_id = self._bars[description]
                self._rich.reset(task_id, total=total, figures="")
            else:
                task_id = self._bars[description] = self._rich.add_task(description, total=total, figures="")
            return _RichTask(self._rich, task_id, unit)
        return _LogTask(description, total, unit, self._seen)


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler])


# --- the service's own database (keys, users, policy, watches, alerts, audit) --------------------------
DbOpt = typer.Option(None, "--db", envvar="FUNDTRAIL_DB",
                     help="Service database URL (default: an SQLite file in the workspace; as for serve).")


def service_store(home: Any, db: str | None) -> Any:
    """The service database of the workspace at ``home`` (``--db`` URL, or the workspace's SQLite file)."""
    from fundtrail.service.store import open_store

    return open_store(db, workspace(home).home)

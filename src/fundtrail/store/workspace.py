"""The workspace: a directory of Parquet parts and one manifest that says which parts are committed.

Layout::

    HOME/
      manifest.json            committed state: chains (tip, network, …) and the parts of every table
      tables/TABLE/CHAIN/*.parquet
      files/GROUP/CHAIN/*      other committed files (e.g. the Bitcoin ingester's on-disk indexes)
      lock                     the writer lease (flock) and a line saying who holds it (store/lease.py)
      readers/*                reader pins: the generation each open reader reads (store/pins.py)

Crash safety comes from the order of writes. A :class:`Transaction` writes new Parquet parts under fresh
names, then replaces ``manifest.json`` atomically (write, fsync, rename). Readers only ever see parts the
manifest lists, so a crash at any moment leaves either the old committed state or the new one; parts
written by a transaction that never committed are orphans and are deleted when the next writer starts.

The part list of a table grows by one entry per ingest batch (tens of thousands on mainnet). So that a commit
does not rewrite all of it, full runs of ``SEAL`` entries are moved into immutable *segments*
(``manifest.d/*.json``, a JSON list of entries each) that ``manifest.json`` names under ``sealed``; only the
open tail of each list stays inline. A table's parts are its segments' entries in order, then the tail. A
segment is written, like a part, before the manifest that names it, and never changed afterwards; an edit
that reaches into sealed entries (a rollback, a replace) keeps the untouched leading segments and puts the
rest back into the tail, to be sealed again.

Layout addition::

      manifest.d/*.json        sealed segments of part lists (immutable; named by manifest.json)
      staging/*/               Parquet parts a distributed engine's executors wrote for the run holding
                               the lease; its transaction adopts them (Transaction.adopt: a rename into
                               tables/), and the next writer deletes what a dead run left

Concurrency. One writer at a time holds the *writer lease* (:meth:`Workspace.writer`, an OS lock released
when its holder exits, however it exits) for the whole of its read-decide-write run; every commit also
checks that the manifest on disk is still the generation the writer started from, so even a writer that
lost its lease (its lock file deleted under it) cannot commit over a newer state. Readers take no lock and
are never blocked: they read the last committed manifest, and files that later commits replace are kept
(listed under ``trash`` in the manifest) until no open reader's pin (store/pins.py) needs them.

Privacy and hostile co-users: directories are created 0700 and files 0600 whatever the umask; the manifest
is written through a uniquely named temporary file created exclusively (``O_EXCL``), so a symlink planted at
a predictable name is never followed.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import ctypes.util
import errno
import functools
import json
import os
import shutil
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fundtrail.errors import ConflictError, NotFoundError, UsageError, WorkspaceError, WriteFailedError
from fundtrail.model.chain import check_chain_key
from fundtrail.store import lease as L
from fundtrail.store import pins as P
from fundtrail.store import sandbox as SB
from fundtrail.store import schema as S
from fundtrail.store.sandbox import QueryLimits

MANIFEST = "manifest.json"
SEGMENTS = "manifest.d"
STAGING = "staging"  # parts a distributed engine writes, adopted into tables by the run's transaction
SEAL = 128  # entries per sealed segment of a part list
FANOUT = 16  # merge_tail: this many trailing parts of one level become one part of the next level...
MERGE_BYTES = 8 << 20  # ...when together they hold at most this much (small parts only)
GLOBAL = "_"  # the chain key of tables that are not per chain (tags, incidents, prices)


def _column_range(path: Path, column: str) -> tuple[int | None, int | None]:
    """(min, max) of an integer column of a Parquet part from its footer; (None, None) when a row group
    lacks statistics (the part is then read)."""
    md = pq.ParquetFile(path).metadata
    if column not in md.schema.names:
        return None, None
    col = md.schema.names.index(column)
    lo: int | None = None
    hi: int | None = None
    for g in range(md.num_row_groups):
        st = md.row_group(g).column(col).statistics
        if st is None or not st.has_min_max:
            return None, None
        lo = int(st.min) if lo is None else min(lo, int(st.min))
        hi = int(st.max) if hi is None else max(hi, int(st.max))
    return lo, hi


def default_home() -> Path:
    return Path(os.environ.get("FUNDTRAIL_HOME") or ".fundtrail")


@dataclass(frozen=True, slots=True)
class Part:
    file: str  # relative to HOME
    rows: int
    lo: int | None  # lowest height in the part (tables with a height column)
    hi: int | None
    level: int = 0  # 0 as written; k + 1 when merged from parts of level k (merge_tail, compact)


def _libc(name: str, argtypes: list[Any]) -> Any:
    """A C library function, or None where this platform's libc lacks it."""
    try:
        fn = getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True), name)
        fn.argtypes = argtypes
        return fn
    except (OSError, AttributeError):
        return None


_SYNCFS = _libc("syncfs", [ctypes.c_int])


def _make_durable(home: Path, paths: list[Path]) -> None:
    """Every file written by a transaction on disk before its manifest: one ``syncfs`` of the workspace's
    file system (one journal commit for all parts) where Linux has it, else an fsync per file."""
    if not paths:
        return
    if _SYNCFS is not None:
        fd = os.open(home, os.O_RDONLY)
        try:
            if _SYNCFS(fd) == 0:
                return
        finally:
            os.close(fd)
    for p in paths:
        with open(p, "rb+") as fh:
            os.fsync(fh.fileno())
    for d in {p.parent for p in paths}:
        _fsync_dir(d)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mkdirs(home: Path, path: Path) -> None:
    """Create ``path`` (under ``home``) and its missing parents, each 0700 whatever the umask."""
    missing = []
    p = path
    while p != home and not p.is_dir():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=0o700)


_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO, errno.EACCES, errno.EPERM, errno.EFBIG}


class Workspace:
    """A workspace directory. Reading needs no lock; writing goes through :meth:`writer` (the lease for a
    whole run) and :meth:`transaction` (one atomic commit)."""

    # defaults for views that share another Workspace's state without running __init__ (trace/asof.py)
    wait: float | None = 0.0
    on_wait: Callable[[L.Holder | None], None] | None = None
    _lease: L.WriterLease | None = None
    _lease_thread: int | None = None
    _lease_depth = 0

    def __init__(self, home: Path | str | None = None, *, wait: float | None = 0.0,
                 on_wait: Callable[[L.Holder | None], None] | None = None) -> None:
        """``wait`` and ``on_wait``: the defaults of :meth:`writer` for this object (how long a writing
        service run through it waits for another writer, and whom it tells)."""
        self.home = Path(home) if home is not None else default_home()
        self.wait = wait
        self.on_wait = on_wait
        if not self.home.is_dir():
            self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # a reader of a read-only workspace needs none of this
            (self.home / "tables").mkdir(mode=0o700, exist_ok=True)
        self._segments: dict[str, list[dict[str, Any]]] = {}  # immutable, so cached by name
        self._pin = P.ReaderPin(self.home)
        self._closer = weakref.finalize(self, self._pin.close)
        self._manifest = self._load()
        self._pin.set(self.generation)
        self._orphans_collected = False
        self._lease: L.WriterLease | None = None
        self._lease_thread: int | None = None
        self._lease_depth = 0

    def close(self) -> None:
        """Give up this reader's pin (see store/pins.py); done on garbage collection too."""
        closer = getattr(self, "_closer", None)
        if closer is not None:
            closer()

    # --- reading -----------------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        p = self.home / MANIFEST
        if not p.exists():
            return {"version": 1, "generation": 0, "chains": {}, "tables": {}, "settings": {}}
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise WorkspaceError(f"{p}: manifest is not valid JSON ({e})") from e

    def refresh(self) -> None:
        """Read the newest committed manifest (what this object reads from now on)."""
        self._manifest = self._load()
        self._pin.set(self.generation)
        live = {n for t in self._manifest.get("sealed", {}).values() for ns in t.values() for n in ns}
        for n in [n for n in self._segments if n not in live]:
            del self._segments[n]

    def _segment(self, name: str) -> list[dict[str, Any]]:
        seg = self._segments.get(name)
        if seg is None:
            p = self.home / name
            try:
                seg = json.loads(p.read_text())
            except FileNotFoundError:
                raise WorkspaceError(f"{p}: a part-list segment named by the manifest is missing") from None
            except json.JSONDecodeError as e:
                raise WorkspaceError(f"{p}: part-list segment is not valid JSON ({e})") from e
            self._segments[name] = seg
        return seg

    def _entries(self, m: dict[str, Any], table: str, chain: str) -> list[dict[str, Any]]:
        """The part entries of ``table``/``chain`` in manifest ``m``: sealed segments in order, then the tail.
        The dicts are shared with the segment cache: never mutate them."""
        out: list[dict[str, Any]] = []
        for name in m.get("sealed", {}).get(table, {}).get(chain, []):
            out.extend(self._segment(name))
        out.extend(m["tables"].get(table, {}).get(chain, []))
        return out

    @property
    def generation(self) -> int:
        return int(self._manifest["generation"])

    def chains(self) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self._manifest["chains"])

    def chain(self, name: str) -> dict[str, Any] | None:
        c = self._manifest["chains"].get(name)
        return copy.deepcopy(c) if c is not None else None

    def require_chain(self, name: str) -> dict[str, Any]:
        c = self.chain(name)
        if c is None:
            known = ", ".join(sorted(self._manifest["chains"])) or "none yet"
            raise NotFoundError(f"chain {name!r} is not in the workspace {self.home} (chains: {known})")
        return c

    def setting(self, key: str, default: Any = None) -> Any:
        return copy.deepcopy(self._manifest.get("settings", {}).get(key, default))

    def parts(self, table: str, chain: str | None = None) -> list[Part]:
        keys = [chain] if chain is not None else self.table_chains(table)
        return [Part(**p) for k in keys for p in self._entries(self._manifest, table, k)]

    def table_chains(self, table: str) -> list[str]:
        """The chain keys (``GLOBAL`` for global tables) under which ``table`` has parts."""
        m = self._manifest
        keys = set(m["tables"].get(table, {})) | set(m.get("sealed", {}).get(table, {}))
        return sorted(k for k in keys if self._entries(m, table, k))

    def files(self, group: str, chain: str) -> list[dict[str, Any]]:
        """The committed entries of a file group (see :meth:`Transaction.set_files`)."""
        return copy.deepcopy(self._manifest.get("files", {}).get(group, {}).get(chain, []))

    def trashed(self) -> set[str]:
        """Files (relative to HOME) that commits replaced but that are kept while an open reader may still
        read them (see store/pins.py); deleted by a later writer once no reader needs them."""
        return {f for e in self._manifest.get("trash") or [] for f in e["files"]}

    def part_paths(self, table: str, chain: str | None = None) -> list[Path]:
        return [self.home / p.file for p in self.parts(table, chain)]

    def row_count(self, table: str, chain: str | None = None) -> int:
        return sum(p.rows for p in self.parts(table, chain))

    def read(self, table: str, chain: str | None = None, columns: list[str] | None = None,
             filter: Any = None) -> pa.Table:
        """All committed rows of a table (of one chain, or all), as one Arrow table."""
        schema = S.schema_of(table)
        paths = self.part_paths(table, chain)
        if not paths:
            empty = schema.empty_table()
            return empty.select(columns) if columns else empty
        tables = [pq.read_table(p, columns=columns, filters=filter, schema=schema) for p in paths]
        return pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with a view per committed table and the contract's views."""
        from fundtrail.store.views import install_views

        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        for table in S.TABLES:
            paths = [str(p) for p in self.part_paths(table)]
            if paths:
                files = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
                con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{files}], union_by_name=true)")
            else:
                con.register(f"__empty_{table}", S.schema_of(table).empty_table())
                con.execute(f"CREATE VIEW {table} AS SELECT * FROM __empty_{table}")
        install_views(con)
        return con

    def query(self, sql: str) -> pa.Table:
        """Run read-only SQL over the workspace's tables and views."""
        con = self.connect()
        try:
            for st in con.extract_statements(sql):
                if st.type not in (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN):
                    raise UsageError(f"query is read-only: {st.type.name} statements are not allowed")
            rel = con.sql(sql)
            return rel.to_arrow_table() if rel is not None else pa.table({})
        except duckdb.Error as e:
            raise UsageError(f"query failed: {e}") from e
        finally:
            con.close()

    def user_query(self, sql: str, *, allow_files: bool = False, limits: QueryLimits | None = None) -> pa.Table:
        """Run a person's read-only SQL in the sandbox (store/sandbox.py): the workspace's tables and
        views only (unless ``allow_files``), within ``limits`` (time, memory, threads, result rows)."""
        limits = limits or QueryLimits()
        spill = SB.spill_dir(self.home)
        try:
            con = self.connect()
            try:
                SB.lock_down(con, self.home, limits, allow_files=allow_files, spill=spill)
                return SB.run(con, sql, limits)
            finally:
                con.close()
        finally:
            SB.remove_spill(spill)

    # --- writing -----------------------------------------------------------------------------------
    def holds_writer(self) -> bool:
        """Whether this thread holds the writer lease through this object."""
        return self._lease is not None and self._lease_thread == threading.get_ident()

    @contextlib.contextmanager
    def writer(self, *, wait: float | None | str = "default", purpose: str = "",
               on_wait: Callable[[L.Holder | None], None] | None = None) -> Iterator[L.WriterLease]:
        """The writer lease for a whole read-decide-write run (see store/lease.py).

        Every service that writes runs inside one: it takes the lease, then reads the state it decides on
        (this object is refreshed to the newest committed manifest), commits any number of
        :meth:`transaction`\\ s, and gives the lease back on exit. Re-entrant within one thread, so a
        command can take it (with ``wait``) around a service that takes it again.

        ``wait``: seconds to wait while another writer holds it (0: fail at once with :class:`LockedError`
        naming the holder; None: as long as it takes). ``purpose`` is shown to writers that find the
        workspace busy; ``on_wait(holder)`` is called once if this call has to wait. Readers are never
        blocked by a writer. ``wait`` and ``on_wait`` default to the ones this object was made with.
        """
        if self.holds_writer():
            self._lease_depth += 1
            try:
                yield self._lease  # type: ignore[misc]
            finally:
                self._lease_depth -= 1
            return
        lease = L.acquire(self.home, wait=self.wait if wait == "default" else wait,  # type: ignore[arg-type]
                          purpose=purpose, on_wait=on_wait or self.on_wait)
        self._lease, self._lease_thread, self._lease_depth = lease, threading.get_ident(), 1
        try:
            self.refresh()
            if not self._orphans_collected:  # what a crashed writer left; a failed transaction cleans up itself
                self._collect_orphans()
                self._orphans_collected = True
            self._empty_trash(self._manifest)
            yield lease
        finally:
            current = self._lease or lease  # writer_paused() may have taken a new one meanwhile
            self._lease, self._lease_thread, self._lease_depth = None, None, 0
            current.release()
            lease.release()

    @contextlib.contextmanager
    def writer_paused(self, *, on_wait: Callable[[L.Holder | None], None] | None = None) -> Iterator[None]:
        """Give the held writer lease back for a while (a ``--follow`` run waiting for new blocks), then
        take it again, waiting as long as it takes, and read the newest committed state. A caller that
        keeps state derived from the workspace compares :attr:`generation` before and after."""
        if not self.holds_writer():
            yield
            return
        old, depth = self._lease, self._lease_depth
        assert old is not None
        self._lease, self._lease_thread, self._lease_depth = None, None, 0
        old.release()
        yield  # an exception here (Ctrl-C while sleeping) ends the run: the lease is not taken again
        lease = L.acquire(self.home, wait=None, purpose=old.holder.purpose, on_wait=on_wait or self.on_wait)
        self._lease, self._lease_thread, self._lease_depth = lease, threading.get_ident(), depth
        self.refresh()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One atomic commit: commits on normal exit, leaves the workspace untouched on error.

        Inside :meth:`writer` the transaction starts from the state the run has read. Outside one, it takes
        the lease for the commit only, and starts from the state this object last read: if another writer
        committed since, nothing is committed and :class:`ConflictError` says so (take the lease first)."""
        base = self._manifest
        with self.writer(purpose="commit") if not self.holds_writer() else contextlib.nullcontext():
            if self._manifest is not base and self.generation != int(base["generation"]):
                raise ConflictError(f"{self.home}: the workspace changed since this command read it (generation "
                                    f"{base['generation']} -> {self.generation}); nothing was committed: run "
                                    "it again (writers take the workspace's writer lease first)")
            txn = Transaction(self, copy.deepcopy(self._manifest))
            try:
                yield txn
                txn._commit()
            except OSError as e:
                txn._abort()
                if e.errno in _WRITE_ERRNOS:
                    raise WriteFailedError(
                        f"{self.home}: cannot write the workspace ({e.strerror}{': ' + str(e.filename) if e.filename else ''}"
                        f"); nothing of this change was committed: the workspace is still at its last committed "
                        f"state (generation {self.generation}). Free space or make it writable and run again"
                    ) from e
                raise
            except BaseException:
                txn._abort()
                raise
            self.refresh()

    def _empty_trash(self, m: dict[str, Any]) -> None:
        """Delete the trashed files no open reader needs any more (see store/pins.py)."""
        trash = m.get("trash") or []
        if not trash:
            return
        pinned = P.oldest_pinned(self.home, skip=self._pin.name)
        for entry in trash:
            if pinned is None or (pinned != P.UNKNOWN and entry["gen"] <= pinned):
                for f in entry["files"]:
                    with contextlib.suppress(OSError):
                        (self.home / f).unlink()

    def _prune_trash(self, m: dict[str, Any]) -> None:
        """Drop from ``m``'s trash list the entries whose files no reader can need any more (deleting them)."""
        trash = m.get("trash") or []
        if not trash:
            return
        pinned = P.oldest_pinned(self.home, skip=self._pin.name)
        keep = []
        for entry in trash:
            if pinned is None or (pinned != P.UNKNOWN and entry["gen"] <= pinned):
                for f in entry["files"]:
                    with contextlib.suppress(OSError):
                        (self.home / f).unlink()
            else:
                keep.append(entry)
        m["trash"] = keep

    def _collect_orphans(self) -> None:
        m = self._manifest
        listed = {p["file"] for t in m["tables"].values() for ps in t.values() for p in ps}
        segments = {n for t in m.get("sealed", {}).values() for ns in t.values() for n in ns}
        for n in segments:
            listed.update(p["file"] for p in self._segment(n))
        trashed = {f for e in m.get("trash") or [] for f in e["files"]}
        listed |= trashed
        sroot = self.home / SEGMENTS
        if sroot.exists():
            for f in sroot.iterdir():
                rel = f"{SEGMENTS}/{f.name}"
                if f.is_file() and rel not in segments and rel not in trashed:
                    f.unlink(missing_ok=True)
        root = self.home / "tables"
        for f in root.rglob("*.parquet"):
            if str(f.relative_to(self.home)) not in listed:
                f.unlink(missing_ok=True)
        for f in root.rglob("*.tmp"):
            f.unlink(missing_ok=True)
        for f in self.home.glob(f"{MANIFEST}.*.tmp"):
            f.unlink(missing_ok=True)
        sroot = self.home / STAGING  # a distributed writer's parts not adopted (its run died): orphans
        if sroot.exists():
            for f in sroot.iterdir():
                shutil.rmtree(f, ignore_errors=True) if f.is_dir() else f.unlink(missing_ok=True)
        froot = self.home / "files"
        if froot.exists():
            listed = {f for g in self._manifest.get("files", {}).values() for es in g.values() for e in es
                      for f in _entry_files(e)} | trashed
            for f in froot.rglob("*"):
                if f.is_file() and str(f.relative_to(self.home)) not in listed:
                    f.unlink(missing_ok=True)


def writes(purpose: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a service function whose first argument is the :class:`Workspace` it writes: the whole
    call runs under the writer lease (:meth:`Workspace.writer`; re-entrant, so a caller may already hold
    it, e.g. a command that waits for it with ``--wait``)."""
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def inner(ws: Workspace, *args: Any, **kwargs: Any) -> Any:
            with ws.writer(purpose=purpose):
                return fn(ws, *args, **kwargs)
        return inner
    return deco


def _entry_files(entry: dict[str, Any]) -> list[str]:
    """The files a file-group entry refers to: the values of its keys named ``file`` or ``*_file``."""
    return [v for k, v in entry.items() if (k == "file" or k.endswith("_file")) and v]


class Transaction:
    """Changes to a workspace that become visible together, at commit."""

    def __init__(self, ws: Workspace, manifest: dict[str, Any]) -> None:
        self.ws = ws
        self.m = manifest
        self._written: list[Path] = []
        self._dropped: list[str] = []
        self._group_written: dict[tuple[str, str], list[str]] = {}
        self._tmp: list[Path] = []  # temporary names of files being written (removed on abort)
        self._committed = False

    # chains and settings
    def chain(self, name: str) -> dict[str, Any] | None:
        return self.m["chains"].get(name)

    def set_chain(self, name: str, **state: Any) -> None:
        self.m["chains"].setdefault(name, {}).update(state)

    def set_setting(self, key: str, value: Any) -> None:
        self.m.setdefault("settings", {})[key] = value

    def parts(self, table: str, chain: str) -> list[Part]:
        return [Part(**p) for p in self._entries(table, chain)]

    # part lists (sealed segments + open tail; see the module docstring)
    def _entries(self, table: str, chain: str) -> list[dict[str, Any]]:
        return self.ws._entries(self.m, table, chain)

    def _set_entries(self, table: str, chain: str, entries: list[dict[str, Any]]) -> None:
        """Make ``entries`` the part list: sealed segments that ``entries`` still starts with are kept
        as they are, the rest of the list becomes the open tail (sealed again at commit)."""
        sealed = self.m.setdefault("sealed", {}).setdefault(table, {}).get(chain, [])
        keep: list[str] = []
        pos = 0
        for name in sealed:
            seg = self.ws._segment(name)
            if entries[pos:pos + len(seg)] != seg:
                break
            keep.append(name)
            pos += len(seg)
        self._dropped.extend(n for n in sealed[len(keep):])
        self.m["sealed"][table][chain] = keep
        self.m["tables"].setdefault(table, {})[chain] = [dict(e) for e in entries[pos:]]

    def _seal(self) -> None:
        """Move full runs of ``SEAL`` tail entries into new segment files (written before the manifest)."""
        for table, chains in self.m["tables"].items():
            for chain, tail in chains.items():
                if len(tail) < SEAL:
                    continue
                names = self.m.setdefault("sealed", {}).setdefault(table, {}).setdefault(chain, [])
                while len(tail) >= SEAL:
                    rel = f"{SEGMENTS}/{uuid.uuid4().hex}.json"
                    path = self.ws.home / rel
                    _mkdirs(self.ws.home, path.parent)
                    tmp = path.with_name(path.name + ".tmp")
                    self._tmp.append(tmp)
                    _write_new(tmp, json.dumps(tail[:SEAL], separators=(",", ":")).encode())
                    os.replace(tmp, path)
                    self._written.append(path)
                    self.ws._segments[rel] = tail[:SEAL]
                    names.append(rel)
                    tail = tail[SEAL:]
                chains[chain] = tail

    # parts
    def _new_part(self, table: str, chain: str) -> tuple[Path, Path, Path]:
        """A fresh part name: (path relative to HOME, its path, the temporary path it is written to)."""
        rel = Path("tables") / table / check_chain_key(chain) / f"{uuid.uuid4().hex}.parquet"
        path = self.ws.home / rel
        _mkdirs(self.ws.home, path.parent)
        tmp = path.with_suffix(".tmp")
        self._tmp.append(tmp)
        return rel, path, tmp

    def append(self, table: str, chain: str, data: pa.Table, *, compression: str = "zstd",
               compression_level: int | None = None, use_dictionary: bool | list[str] = True,
               write_statistics: bool | list[str] = True,
               column_encoding: dict[str, str] | None = None) -> Part | None:
        """Write ``data`` as a new part of ``table`` for ``chain`` (``GLOBAL`` for global tables).

        The keyword options go to the Parquet writer (e.g. a cheap codec level, dictionary encoding and
        statistics only for the columns where they pay, a column's encoding such as DELTA_BINARY_PACKED for
        ascending ids; the defaults are pyarrow's with zstd)."""
        if data.num_rows == 0:
            return None
        schema = S.schema_of(table)
        data = S.conform(data, schema, table)
        lo = hi = None
        if "height" in data.column_names:
            mm = pc.min_max(data["height"]).as_py()
            lo, hi = mm["min"], mm["max"]
        rel, path, tmp = self._new_part(table, chain)
        pq.write_table(data, tmp, compression=compression, compression_level=compression_level,
                       use_dictionary=use_dictionary, write_statistics=write_statistics, row_group_size=1 << 20,
                       column_encoding=column_encoding)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)  # made durable at commit, before the manifest names it
        self._written.append(path)
        part = Part(str(rel), data.num_rows, lo, hi)
        self.m["tables"].setdefault(table, {}).setdefault(chain, []).append(
            {"file": part.file, "rows": part.rows, "lo": lo, "hi": hi})
        return part

    def adopt(self, table: str, chain: str, file: Path) -> Part | None:
        """Make a Parquet file written elsewhere (a distributed engine's writer, into a staging directory
        of this workspace's filesystem) a new part of ``table`` for ``chain``: its schema must be the
        table's (names and types; nothing is cast), its rows and height range come from its footer, and it
        is moved (renamed) into place, committed with the transaction like a part :meth:`append` wrote."""
        meta = pq.read_metadata(file)
        if meta.num_rows == 0:
            file.unlink(missing_ok=True)
            return None
        schema = S.schema_of(table)
        got = meta.schema.to_arrow_schema()
        want = [(f.name, f.type) for f in schema]
        have = [(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type) for f in got]
        if have != want:
            raise WorkspaceError(f"{file}: its schema does not match table {table!r}: "
                             f"{', '.join(f'{n} {t}' for n, t in have)} (wanted "
                             f"{', '.join(f'{n} {t}' for n, t in want)})")
        lo = hi = None
        if "height" in schema.names:
            col = schema.names.index("height")
            for g in range(meta.num_row_groups):
                st = meta.row_group(g).column(col).statistics
                if st is None or not st.has_min_max:
                    lo = hi = None
                    break
                lo = st.min if lo is None else min(lo, st.min)
                hi = st.max if hi is None else max(hi, st.max)
        rel, path, _tmp = self._new_part(table, chain)
        os.chmod(file, 0o600)
        os.replace(file, path)  # same filesystem: a rename; made durable at commit
        self._written.append(path)
        part = Part(str(rel), meta.num_rows, lo, hi)
        self.m["tables"].setdefault(table, {}).setdefault(chain, []).append(
            {"file": part.file, "rows": part.rows, "lo": lo, "hi": hi})
        return part

    # other files (committed with the tables, by the same manifest)
    def files(self, group: str, chain: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.m.get("files", {}).get(group, {}).get(chain, []))

    def write_file(self, group: str, chain: str, write: Any, suffix: str = ".bin") -> str:
        """Write a new file with ``write(path)``, fsync it, and return its path relative to HOME. It is part
        of the workspace only once an entry of :meth:`set_files` names it and the transaction commits."""
        rel = Path("files") / group / check_chain_key(chain) / f"{uuid.uuid4().hex}{suffix}"
        path = self.ws.home / rel
        _mkdirs(self.ws.home, path.parent)
        tmp = path.with_name(path.name + ".tmp")
        self._tmp.append(tmp)
        write(tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)  # made durable at commit, before the manifest names it
        self._written.append(path)
        self._group_written.setdefault((group, chain), []).append(str(rel))
        return str(rel)

    def set_files(self, group: str, chain: str, entries: list[dict[str, Any]]) -> None:
        """Make ``entries`` (JSON-able dicts; keys ``file`` / ``*_file`` name files) the group's committed
        list; files the old list named and the new one does not are deleted after the commit."""
        old = {f for e in self.m.get("files", {}).get(group, {}).get(chain, []) for f in _entry_files(e)}
        old |= set(self._group_written.get((group, chain), []))  # written here, then replaced (merged)
        new = {f for e in entries for f in _entry_files(e)}
        self._dropped.extend(sorted(old - new))
        self.m.setdefault("files", {}).setdefault(group, {})[chain] = copy.deepcopy(entries)

    def replace(self, table: str, chain: str, data: pa.Table | None) -> None:
        """Replace every part of ``table`` for ``chain`` by ``data`` (or by nothing)."""
        for p in self._entries(table, chain):
            self._dropped.append(p["file"])
        self._set_entries(table, chain, [])
        if data is not None:
            self.append(table, chain, data)

    def truncate_above(self, table: str, chain: str, height: int) -> int:
        """Remove the rows of ``table`` for ``chain`` whose height is above ``height``; returns rows removed."""
        removed = 0
        kept: list[dict[str, Any]] = []
        rewrite: list[Path] = []
        for p in self._entries(table, chain):
            if p["hi"] is None or p["hi"] <= height:
                kept.append(p)
            elif p["lo"] > height:
                removed += p["rows"]
                self._dropped.append(p["file"])
            else:
                rewrite.append(self.ws.home / p["file"])
                self._dropped.append(p["file"])
        self._set_entries(table, chain, kept)
        for path in rewrite:
            t = pq.read_table(path, schema=S.schema_of(table))
            keep = t.filter(pc.less_equal(t["height"], height))
            removed += t.num_rows - keep.num_rows
            self.append(table, chain, keep)
        return removed

    def truncate_column_above(self, table: str, chain: str, column: str, value: int) -> int:
        """Remove the rows of ``table`` for ``chain`` whose ``column`` is above ``value`` (address ids above
        a reorganisation's mark, tokens first seen above the fork); a part is read only when its footer
        statistics say it may hold such rows. Null values are kept. Returns the rows removed."""
        removed = 0
        kept: list[dict[str, Any]] = []
        rewrite: list[Path] = []
        for p in self._entries(table, chain):
            path = self.ws.home / p["file"]
            lo, hi = _column_range(path, column)
            if hi is not None and hi <= value:
                kept.append(p)
            elif lo is not None and lo > value:
                removed += p["rows"]
                self._dropped.append(p["file"])
            else:
                rewrite.append(path)
                self._dropped.append(p["file"])
        self._set_entries(table, chain, kept)
        for path in rewrite:
            t = pq.read_table(path, schema=S.schema_of(table))
            keep = t.filter(pc.fill_null(pc.less_equal(t[column], value), True))
            removed += t.num_rows - keep.num_rows
            self.append(table, chain, keep)
        return removed

    def merge_tail(self, table: str, chain: str, *, fanout: int | None = None,
                   max_bytes: int | None = None, **write_options: Any) -> int:
        """Tiered merging of the newest *small* parts, so that a table written one part per commit (an ingest
        following the tip, an EVM ingest of a few blocks per batch) keeps few files.

        While the last ``fanout`` parts all have the same level and hold at most ``max_bytes`` together,
        they are rewritten, in order, as one part of the next level. A table keeps at most ``fanout - 1``
        parts per level; rows and their order are unchanged. The size cap keeps the cost of rewriting small
        next to the cost of ingesting: the parts of a bulk ingest (a few MB each per 32 MB batch) are left
        alone, and :meth:`compact` merges those when asked. Returns how many parts were merged.
        ``write_options`` go to the Parquet writer as in :meth:`append`."""
        fanout = FANOUT if fanout is None else fanout
        max_bytes = MERGE_BYTES if max_bytes is None else max_bytes
        if fanout < 2:
            return 0
        merged = 0
        while True:
            entries = self._entries(table, chain)
            tail = entries[-fanout:]
            if len(tail) < fanout:
                break
            level = tail[-1].get("level", 0)
            if any(e.get("level", 0) != level for e in tail) or sum(
                    (self.ws.home / e["file"]).stat().st_size for e in tail) > max_bytes:
                break
            entry = self._merge(table, chain, tail, level + 1, write_options)
            self._set_entries(table, chain, entries[:-fanout] + [entry])
            merged += fanout
        return merged

    def compact(self, table: str, chain: str, *, target_bytes: int = 512 << 20, **write_options: Any) -> int:
        """Merge runs of consecutive parts into parts of up to ``target_bytes`` (on disk, before merging),
        in order; parts already that large are kept. Returns how many parts were merged away."""
        entries = self._entries(table, chain)
        sizes = [(self.ws.home / e["file"]).stat().st_size for e in entries]
        out: list[dict[str, Any]] = []
        group: list[dict[str, Any]] = []
        size = 0
        merged = 0

        def close() -> None:
            nonlocal merged
            if len(group) > 1:
                out.append(self._merge(table, chain, group, max(e.get("level", 0) for e in group) + 1,
                                       write_options))
                merged += len(group) - 1
            else:
                out.extend(group)

        for e, n in zip(entries, sizes, strict=True):
            if group and size + n > target_bytes:
                close()
                group, size = [], 0
            group.append(e)
            size += n
        close()
        if merged:
            self._set_entries(table, chain, out)
        return merged

    def _merge(self, table: str, chain: str, group: list[dict[str, Any]], level: int,
               write_options: dict[str, Any]) -> dict[str, Any]:
        """Write the rows of ``group`` (in order) as one new part; the old parts are dropped at commit.
        Parts are read one at a time; parts under 2^14 rows are gathered into row groups of ~2^17 rows."""
        schema = S.schema_of(table)
        rel, path, tmp = self._new_part(table, chain)
        opts = {"compression": "zstd", **write_options}
        pending: list[pa.Table] = []  # small parts, gathered (copied) into one row group
        rows = 0
        with pq.ParquetWriter(tmp, schema, **opts) as w:
            for e in group:
                t = pq.read_table(self.ws.home / e["file"], schema=schema, use_threads=False)
                if t.num_rows >= 1 << 14:  # large enough to be row groups of its own: written as is
                    if pending:
                        w.write_table(pa.concat_tables(pending), row_group_size=1 << 20)
                        pending, rows = [], 0
                    w.write_table(t, row_group_size=1 << 20)
                    continue
                pending.append(t)
                rows += t.num_rows
                if rows >= 1 << 17:
                    w.write_table(pa.concat_tables(pending), row_group_size=1 << 20)
                    pending, rows = [], 0
            if pending:
                w.write_table(pa.concat_tables(pending), row_group_size=1 << 20)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        self._written.append(path)
        self._dropped.extend(e["file"] for e in group)
        los = [e["lo"] for e in group if e["lo"] is not None]
        his = [e["hi"] for e in group if e["hi"] is not None]
        return {"file": str(rel), "rows": sum(e["rows"] for e in group), "lo": min(los) if los else None,
                "hi": max(his) if his else None, "level": level}

    # commit / abort
    def _commit(self) -> None:
        home = self.ws.home
        base = int(self.m.get("generation", 0))
        on_disk = self.ws._load()
        if int(on_disk.get("generation", 0)) != base:  # only a writer that lost its lease can get here
            raise ConflictError(f"{home}: another writer committed generation {on_disk.get('generation')} "
                                f"after this one started from generation {base}; nothing was committed")
        self._seal()
        _make_durable(home, self._written)
        self.ws._prune_trash(self.m)
        self.m["generation"] = base + 1
        if self._dropped:
            self.m.setdefault("trash", []).append({"gen": base + 1, "files": sorted(set(self._dropped))})
        data = json.dumps(self.m, sort_keys=True, separators=(",", ":")).encode()  # C encoder: fast
        fd, tmp_name = tempfile.mkstemp(prefix=f"{MANIFEST}.", suffix=".tmp", dir=home)  # O_EXCL, 0600
        tmp = Path(tmp_name)
        self._tmp.append(tmp)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, home / MANIFEST)
        self._committed = True  # from here on nothing may undo the commit
        self._tmp.remove(tmp)
        with contextlib.suppress(Exception):
            _fsync_dir(home)
            self.ws._empty_trash(self.m)

    def _abort(self) -> None:
        if self._committed:
            return
        for p in [*self._written, *self._tmp]:
            with contextlib.suppress(OSError):
                p.unlink(missing_ok=True)


def _write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file at ``path`` (0600; never through an existing file or symlink)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)

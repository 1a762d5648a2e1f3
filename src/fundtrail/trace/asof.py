"""The workspace as it stood at pinned block heights and a tag time: the one place "as of" is applied.

``as_of(ws, heights, tags_at)`` returns a read-only :class:`AsOfWorkspace`. Everything a trace or a report
reads goes through ``Workspace.connect`` / ``read`` / ``chain``, so the graph builders (trace/graph.py),
the bridge and swap book (trace/crossing.py), the labels (trace/stops.py via attribution's
``resolve_labels``) and the report's transaction look-ups all see the same pinned view:

* **heights** (``{chain: H}``, or one ``H`` for every chain): rows of every per-chain table that has a
  ``height`` column (blocks, transactions, outputs, inputs, transfers, logs, CoinJoin and change
  verdicts, deposit addresses, cluster evidence) are kept only up to ``H``; ``tokens`` up to their
  ``first_height``. An output spent above ``H`` is unspent in the view. The chain's tip is ``H`` and the
  hash of the block at ``H``.
* **clusters**: when a chain was clustered above ``H``, ``cluster_members`` is rebuilt from the
  ``cluster_evidence`` edges at heights up to ``H`` (a union-find over those edges; each cluster's id is
  its smallest address id, as clustering gives it). Co-spend clustering is incremental in chain order, so
  this is the partition a run at ``H`` gives; EVM deposit-address clusters are re-detected from scratch by
  each run, so their as-of partition keeps the deposit edges first seen up to ``H`` (documented in
  docs/evidence.md).
* **tags_at** (a time): ``tags`` is rebuilt, per dataset, from the ``tag_observations`` imported at or
  before that time (attribution's ``history.rebuild``: the validity intervals as they were then), and the
  labels are resolved *at* that time. A snapshot that a later import replaced (same dataset and snapshot
  date) is gone from the workspace: :func:`tag_pins` gives per-dataset digests so a caller can tell.

The view's ``generation`` is the workspace's generation together with the pins, so the per-generation
caches of graphs and books never hand a pinned view the live graph (or the other way round).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fundtrail.errors import UsageError, WorkspaceError
from fundtrail.store import GLOBAL, Workspace
from fundtrail.store import schema as S

BIG = (1 << 62)
# per-chain tables filtered by a column holding a block height
HEIGHT_COLUMN: dict[str, str] = {"tokens": "first_height"}


def _height_tables() -> dict[str, str]:
    out = dict(HEIGHT_COLUMN)
    for name, schema in S.SCHEMAS.items():
        if "height" in schema.names and "chain" in schema.names and name not in out:
            out[name] = "height"
    return out


def parse_time(value: Any, what: str = "--tags-as-of") -> dt.datetime | None:
    """A time (datetime, date, ISO text, unix seconds) as an aware UTC datetime at second precision."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(int(value), dt.UTC)
    if isinstance(value, dt.datetime):
        d = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return d.astimezone(dt.UTC).replace(microsecond=0)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    try:
        return parse_time(dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00")), what)
    except ValueError:
        raise UsageError(f"{what} {value!r} is not a date (YYYY-MM-DD) or an ISO time") from None


def parse_heights(value: Any) -> tuple[dict[str, int], int | None]:
    """``--as-of-height``: an int (every chain), ``CHAIN=H`` text, or a list / mapping of those.
    Returns (per chain, default for the chains not named)."""
    if value is None:
        return {}, None
    items: list[Any]
    if isinstance(value, Mapping):
        items = [f"{k}={v}" for k, v in value.items()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        items = [value]
    per: dict[str, int] = {}
    default: int | None = None
    for it in items:
        text = str(it).strip()
        chain, _, h = text.rpartition("=")
        try:
            height = int(h)
        except ValueError:
            raise UsageError(f"--as-of-height {text!r}: give a block height H or CHAIN=H") from None
        if height < 0:
            raise UsageError(f"--as-of-height {text!r}: a height is 0 or more")
        if chain:
            per[chain.strip()] = height
        else:
            default = height
    return per, default


class AsOfWorkspace(Workspace):
    """A read-only view of ``base`` at pinned heights and a tag time (see the module docstring)."""

    def __init__(self, base: Workspace, heights: Mapping[str, int], default_height: int | None,
                 tags_at: dt.datetime | None) -> None:  # noqa: D107 - shares the base's state, creates nothing
        self.base = base
        self.home = base.home
        self._segments = base._segments
        self._manifest = base._manifest
        self._orphans_collected = True
        self.heights = dict(heights)
        self.default_height = default_height
        self.tags_at = tags_at
        self._tags: pa.Table | None = None
        self._members: dict[str, pa.Table] = {}
        self._hash_at: dict[str, str | None] = {}

    # --- what the pins are ------------------------------------------------------------------------
    def height_of(self, chain: str) -> int | None:
        """The pinned height of ``chain`` (None: not pinned)."""
        return self.heights.get(chain, self.default_height)

    @property
    def pins(self) -> dict[str, Any]:
        return {"heights": dict(sorted(self.heights.items())), "default_height": self.default_height,
                "tags_at": self.tags_at.isoformat().replace("+00:00", "Z") if self.tags_at else None}

    @property
    def generation(self) -> Any:  # type: ignore[override]
        return (self.base.generation, json.dumps(self.pins, sort_keys=True))

    def refresh(self) -> None:
        self.base.refresh()
        self._manifest = self.base._manifest
        self._tags = None
        self._members.clear()
        self._hash_at.clear()

    def transaction(self) -> Any:  # type: ignore[override]
        raise WorkspaceError(f"{self.home}: an as-of view of the workspace is read-only")

    # --- chains ------------------------------------------------------------------------------------
    def _pin_state(self, name: str, state: dict[str, Any]) -> dict[str, Any]:
        h = self.height_of(name)
        tip = state.get("tip_height")
        if h is None or tip is None or h >= tip:
            return state
        if name not in self._hash_at:
            table = "evm_blocks" if state.get("kind") == "evm" else "utxo_blocks"
            t = self.base.read(table, name, columns=["height", "hash"], filter=pc.field("height") == h)
            self._hash_at[name] = t["hash"][0].as_py() if t.num_rows else None
        return {**state, "tip_height": h, "tip_hash": self._hash_at[name]}

    def chains(self) -> dict[str, dict[str, Any]]:
        return {k: self._pin_state(k, v) for k, v in self.base.chains().items()}

    def chain(self, name: str) -> dict[str, Any] | None:
        c = self.base.chain(name)
        return self._pin_state(name, c) if c is not None else None

    # --- rows ------------------------------------------------------------------------------------------
    def _height_sql(self, column: str) -> str | None:
        """A SQL condition keeping the rows at or below each chain's pinned height (None: nothing pinned)."""
        if not self.heights and self.default_height is None:
            return None
        cases = " ".join(f"WHEN '{c.replace(chr(39), chr(39) * 2)}' THEN {int(h)}"
                         for c, h in sorted(self.heights.items()))
        other = int(self.default_height) if self.default_height is not None else BIG
        bound = f"CASE chain {cases} ELSE {other} END" if cases else str(other)
        return f"({column} IS NULL OR {column} <= {bound})"

    def read(self, table: str, chain: str | None = None, columns: list[str] | None = None,
             filter: Any = None) -> pa.Table:
        if table == "tags" and self.tags_at is not None:
            t = self.as_of_tags()
            if chain is not None and chain != GLOBAL and not chain.startswith("ds="):
                t = t.filter(pc.equal(t["chain"], chain))
            elif chain is not None and chain.startswith("ds="):
                from fundtrail.attribution.history import part_key

                keep = [part_key(d or "") == chain for d in t["dataset"].to_pylist()]
                t = t.filter(pa.array(keep, pa.bool_()))
            return _finish(t, columns, filter)
        if table == "tag_observations" and self.tags_at is not None:
            t = self.base.read(table, chain)
            return _finish(t.filter(_known_at(t, self.tags_at)), columns, filter)
        if table == "cluster_members":
            chains = [chain] if chain is not None else self.base.table_chains(table)
            parts = [self.as_of_members(c) for c in chains]
            t = pa.concat_tables(parts) if parts else S.schema_of(table).empty_table()
            return _finish(t, columns, filter)
        col = _height_tables().get(table)
        if col is None:
            return self.base.read(table, chain, columns, filter)
        need = None if columns is None or col in columns else [*columns, col, "chain"]
        t = self.base.read(table, chain, need or columns, filter)
        h_cond = self._height_sql(col)
        if h_cond is not None and t.num_rows:
            con = duckdb.connect()
            try:
                con.register("t", t)
                t = con.sql(f"SELECT * FROM t WHERE {h_cond}").to_arrow_table()
            finally:
                con.close()
        return t.select(columns) if columns else t

    def connect(self) -> duckdb.DuckDBPyConnection:
        from fundtrail.store.views import install_views

        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        heights = _height_tables()
        rebuild = [c for c in self.base.table_chains("cluster_members") if self._rebuilds_members(c)]
        for table in S.TABLES:
            if table in ("tags", "tag_observations") and self.tags_at is not None:
                con.register(f"__asof_{table}", self.read(table))
                con.execute(f"CREATE VIEW {table} AS SELECT * FROM __asof_{table}")
                continue
            if table == "cluster_members" and rebuild:
                # chains clustered above their pin: rebuilt in memory; the others read as stored
                con.register("__asof_members", pa.concat_tables([self.as_of_members(c) for c in rebuild]))
                kept = [str(p) for c in self.base.table_chains(table) if c not in rebuild
                        for p in self.part_paths(table, c)]
                files = ", ".join("'" + p.replace("'", "''") + "'" for p in kept)
                stored = f"SELECT * FROM read_parquet([{files}], union_by_name=true) UNION ALL BY NAME " if kept else ""
                con.execute(f"CREATE VIEW {table} AS {stored}SELECT * FROM __asof_members")
                continue
            paths = [str(p) for p in self.part_paths(table)]
            if not paths:
                con.register(f"__empty_{table}", S.schema_of(table).empty_table())
                con.execute(f"CREATE VIEW {table} AS SELECT * FROM __empty_{table}")
                continue
            files = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
            cond = self._height_sql(heights[table]) if table in heights else None
            where = f" WHERE {cond}" if cond else ""
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{files}], union_by_name=true){where}")
        install_views(con)
        return con

    # --- derived tables --------------------------------------------------------------------------------
    def as_of_tags(self) -> pa.Table:
        """``tags`` as the workspace held it at ``tags_at``: datasets untouched since then as stored, the
        others rebuilt from the observations imported by then."""
        if self._tags is not None:
            return self._tags
        from fundtrail.attribution import history

        stored = self.base.read("tags")
        if self.tags_at is None:
            self._tags = stored
            return stored
        obs = self.base.read("tag_observations")
        known = _known_at(obs, self.tags_at)
        late = obs.filter(pc.invert(known))
        changed = sorted(set(late["dataset"].to_pylist()))
        if not changed:
            self._tags = stored
            return stored
        keep = stored.filter(pc.invert(pc.is_in(stored["dataset"], value_set=pa.array(changed, pa.string()))))
        rebuilt = [keep]
        early = obs.filter(known)
        con = history.connect()
        try:
            for ds in changed:
                o = early.filter(pc.equal(early["dataset"], ds))
                if o.num_rows:
                    rebuilt.append(history.rebuild(o, con))
        finally:
            con.close()
        self._tags = pa.concat_tables(rebuilt)
        return self._tags

    def _rebuilds_members(self, chain: str) -> bool:
        """Whether ``chain`` was clustered above its pinned height (its partition is then rebuilt)."""
        h = self.height_of(chain)
        done = (self.base.setting(f"cluster:{chain}") or {}).get("height")
        return h is not None and (done is None or done > h)

    def as_of_members(self, chain: str) -> pa.Table:
        """``cluster_members`` of ``chain`` at its pinned height (see the module docstring)."""
        hit = self._members.get(chain)
        if hit is not None:
            return hit
        stored = self.base.read("cluster_members", chain)
        h = self.height_of(chain)
        if h is None or stored.num_rows == 0 or not self._rebuilds_members(chain):
            self._members[chain] = stored
            return stored
        ev = self.base.read("cluster_evidence", chain, columns=["a_id", "b_id", "height"])
        ev = ev.filter(pc.less_equal(pc.fill_null(ev["height"], 0), h))
        from fundtrail.cluster.unionfind import UnionFind

        ids = np.asarray(stored["address_id"].to_numpy(zero_copy_only=False), np.int64)
        n = int(ids.max()) + 1 if len(ids) else 0
        uf = UnionFind(n)
        if ev.num_rows:
            uf.union(np.asarray(ev["a_id"].to_numpy(zero_copy_only=False), np.int64),
                     np.asarray(ev["b_id"].to_numpy(zero_copy_only=False), np.int64))
        labels = uf.labels()
        t = pa.table({"chain": pa.array([chain] * len(ids), pa.string()), "address_id": pa.array(ids, pa.int64()),
                      "cluster_id": pa.array(labels[ids] if len(ids) else np.zeros(0, np.int64), pa.int64())})
        self._members[chain] = t
        return t


def _known_at(obs: pa.Table, when: dt.datetime) -> pa.ChunkedArray:
    """Observation rows imported at or before ``when`` (rows without an import time count as known)."""
    if obs.num_rows == 0:
        return pa.chunked_array([pa.array([], pa.bool_())])
    at = pa.scalar(when, S.TS)
    return pc.fill_null(pc.less_equal(obs["imported_at"], at), True)


def _finish(t: pa.Table, columns: list[str] | None, filter: Any) -> pa.Table:
    if filter is not None and t.num_rows:
        import pyarrow.dataset as ds

        t = ds.dataset(t).to_table(filter=filter)
    return t.select(columns) if columns else t


def as_of(ws: Workspace, heights: Any = None, tags_at: Any = None) -> Workspace:
    """``ws`` itself when nothing is pinned, else the pinned view. ``heights``: see :func:`parse_heights`;
    ``tags_at``: see :func:`parse_time`. A view of a view pins from the underlying workspace."""
    per, default = parse_heights(heights)
    when = parse_time(tags_at)
    if not per and default is None and when is None:
        return ws
    if isinstance(ws, AsOfWorkspace):
        merged = {**ws.heights, **per}
        return AsOfWorkspace(ws.base, merged, default if default is not None else ws.default_height,
                             when if when is not None else ws.tags_at)
    return AsOfWorkspace(ws, per, default, when)


def tags_time(ws: Workspace) -> dt.datetime | None:
    """The time labels are resolved at: the view's tag time, or None (now) for a plain workspace."""
    return getattr(ws, "tags_at", None)


def tag_pins(ws: Workspace) -> list[dict[str, Any]]:
    """Per tag dataset the workspace (or view) holds: snapshots, rows, source files, last import time, and
    a SHA-256 over its observation rows in a canonical order (what replay compares)."""
    obs = ws.read("tag_observations")
    if obs.num_rows == 0:
        return []
    cols = ["dataset", "as_of", "chain", "address", "asset", "entity", "label", "category", "country",
            "confidence", "valid_from", "valid_to", "source", "file", "imported_at"]
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("o", obs.select(cols))
        rows = con.sql("""SELECT * FROM o ORDER BY dataset, as_of, chain, address, asset NULLS FIRST, entity NULLS
                          FIRST, label NULLS FIRST, category NULLS FIRST, file, imported_at""").fetchall()
    finally:
        con.close()
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        d = dict(zip(cols, r, strict=True))
        ds = d["dataset"] or "(none)"
        e = out.setdefault(ds, {"dataset": ds, "rows": 0, "snapshots": set(), "files": set(),
                                "imported_at": None, "_h": hashlib.sha256()})
        e["rows"] += 1
        e["snapshots"].add(_iso(d["as_of"]))
        if d["file"]:
            e["files"].add(d["file"])
        if d["imported_at"] is not None and (e["imported_at"] is None or d["imported_at"] > e["imported_at"]):
            e["imported_at"] = d["imported_at"]
        e["_h"].update(json.dumps([_iso(v) if isinstance(v, dt.datetime) else v for v in r], default=str,
                                  separators=(",", ":")).encode() + b"\n")
    return [{"dataset": e["dataset"], "rows": e["rows"], "snapshots": sorted(s for s in e["snapshots"] if s),
             "files": sorted(e["files"]), "imported_at": _iso(e["imported_at"]),
             "rows_sha256": e["_h"].hexdigest()} for e in (out[k] for k in sorted(out))]


def _iso(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


__all__ = ["AsOfWorkspace", "as_of", "parse_heights", "parse_time", "tag_pins", "tags_time"]

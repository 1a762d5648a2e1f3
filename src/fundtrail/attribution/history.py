"""Tag history: every imported snapshot is kept (``tag_observations``); ``tags`` is rebuilt from them.

A *dataset* is one list that is published again and again (``ofac:sdn``, ``ofac:asset:XBT``,
``graphsense:ofac``, ``etherscan:etherscan_combinedAccountLabels`` …); a *snapshot* is what it held on one
date (``as_of``). A tag is identified within its dataset by (chain, address, asset, entity, label,
category). For every run of consecutive snapshots that hold a tag, ``tags`` has one row:

* ``valid_from``: for a run that starts at the dataset's first snapshot, the listing date the source gives
  (null when it gives none: "since before we looked"); for a later run, the source's listing date when
  it falls after the previous snapshot, else the date of the snapshot it first appeared in;
* ``valid_to``: the date of the first snapshot after the run that no longer holds it (delisted), or the
  source's own end date, or null (still listed).

Because the result depends only on the set of snapshots, importing them in any order gives the same
table, and importing a snapshot again changes nothing (it replaces its own earlier copy).
"""

from __future__ import annotations

import re

import duckdb
import pyarrow as pa

from fundtrail.attribution.records import TAG_SCHEMA
from fundtrail.store import schema as S

KEY = ("chain", "address", "asset", "entity", "label", "category")


def part_key(dataset: str) -> str:
    """The workspace part key (folder) of a dataset's rows in ``tags`` and ``tag_observations``."""
    return "ds=" + re.sub(r"[^A-Za-z0-9._=-]+", "_", dataset)


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def dedupe(obs: pa.Table, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """One row per (key, as_of): the first in file order."""
    if obs.num_rows == 0:
        return obs
    own = con is None
    con = con or connect()
    try:
        con.register("o", obs)
        keys = ", ".join(KEY)
        t = con.sql(f"""SELECT * FROM o QUALIFY row_number() OVER (PARTITION BY {keys}, as_of
                         ORDER BY file, line NULLS LAST) = 1""").to_arrow_table()
        con.unregister("o")
    finally:
        if own:
            con.close()
    return S.conform(t, TAG_SCHEMA, "tags")


def rebuild(obs: pa.Table, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """The ``tags`` rows (with validity intervals) of one dataset's observations."""
    if obs.num_rows == 0:
        return TAG_SCHEMA.empty_table()
    keys = ", ".join(KEY)
    own = con is None
    con = con or connect()
    try:
        con.register("obs", obs)
        t = con.sql(f"""
            WITH o AS (
                SELECT *, dense_rank() OVER (ORDER BY as_of) AS si FROM obs
                QUALIFY row_number() OVER (PARTITION BY {keys}, as_of ORDER BY file, line NULLS LAST) = 1
            ), snaps AS (SELECT DISTINCT si, as_of AS snap FROM o),
            n AS (SELECT max(si) AS n FROM snaps),
            g AS (SELECT *, si - row_number() OVER (PARTITION BY {keys} ORDER BY si) AS grp FROM o),
            isl AS (
                SELECT *, min(si) OVER w AS s0, max(si) OVER w AS s1, min(valid_from) OVER w AS listed,
                       row_number() OVER (PARTITION BY {keys}, grp ORDER BY si DESC) AS rn
                FROM g WINDOW w AS (PARTITION BY {keys}, grp)
            )
            SELECT isl.* EXCLUDE (valid_from, valid_to, si, grp, s0, s1, listed, rn),
                   CASE WHEN isl.s0 = 1 THEN isl.listed
                        WHEN isl.listed IS NOT NULL AND isl.listed > prev.snap THEN isl.listed
                        ELSE first.snap END AS valid_from,
                   CASE WHEN isl.s1 = n.n THEN isl.valid_to ELSE nxt.snap END AS valid_to
            FROM isl CROSS JOIN n
            JOIN snaps first ON first.si = isl.s0
            LEFT JOIN snaps prev ON prev.si = isl.s0 - 1
            LEFT JOIN snaps nxt ON nxt.si = isl.s1 + 1
            WHERE isl.rn = 1
            ORDER BY chain, address, asset, entity, label, category, valid_from NULLS FIRST
        """).to_arrow_table()
        con.unregister("obs")
    finally:
        if own:
            con.close()
    return S.conform(t, TAG_SCHEMA, "tags")

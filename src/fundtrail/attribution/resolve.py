"""Resolving tags into one attribution per address (and per cluster), at a point in time.

Winner rule (deterministic, documented in docs/attribution.md): among the tags valid at ``at``, the one
of the highest trust tier wins (trust.py: authoritative, owner, curated, user), then the highest
confidence (capped by the tier on import); ties go to the more recent tag (``valid_from``, else its snapshot date
``as_of``), then to the source name, label, entity and category in alphabetical order, so the result never
depends on import order.

An address's own tags come first (``via = 'address'``). An address without its own tag takes its
cluster's winner (``via = 'cluster'``), chosen by the same rule among the tags of all the cluster's
addresses that may label a cluster: ``is_cluster_definer`` true (GraphSense tags default to false, as in
GraphSense; OFAC, FBI, Etherscan and CSV tags to true). Clusters come from the ``cluster_members`` table
(issue 5) when it has rows for the chain; otherwise attribution is address-level only.

Actors (ActorPack) enrich tags: a tag's ``actor`` (or an OFAC entry's website, matched to an actor's
``uri``) gives the canonical entity name, a category where the tag's own says only ``other`` or
``sanctioned`` (Garantex: an exchange that is sanctioned), and the country where the tag has none and the
actor has exactly one jurisdiction. ``sanctioned`` is true when any valid tag of a binding tier
(authoritative or the workspace owner's own) of the address (or of its cluster, for cluster-definer tags)
says so, whichever tag wins; ``sanctioned_review`` when a curated or another user's tag says so (a reason
to review). Every resolved row names the tier, dataset, version and importer of its winning tag.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from fundtrail.attribution import taxonomy as T
from fundtrail.attribution import trust as TR
from fundtrail.attribution.records import now, ts
from fundtrail.store import Workspace
from fundtrail.store import schema as S

RESOLVED_SCHEMA = pa.schema([
    ("chain", pa.string()), ("address_id", pa.int64()), ("address", pa.string()), ("cluster_id", pa.int64()),
    ("entity", pa.string()), ("label", pa.string()), ("category", pa.string()), ("country", pa.string()),
    ("confidence", pa.float64()), ("source", pa.string()), ("via", pa.string()), ("sanctioned", pa.bool_()),
    ("is_service", pa.bool_()),
    # extras
    ("actor", pa.string()), ("program", pa.string()), ("tag_count", pa.int64()),
    ("valid_from", pa.timestamp("s", tz="UTC")), ("valid_to", pa.timestamp("s", tz="UTC")),
    # issue 23: where the winning attribution comes from (trust tier, dataset, its version and date, who
    # imported it) and whether a non-binding dataset (curated or another user's) lists the address as
    # sanctioned: a reason to review, not a verdict
    ("tier", pa.string()), ("dataset", pa.string()), ("version", pa.int64()),
    ("as_of", pa.timestamp("s", tz="UTC")), ("importer", pa.string()), ("sanctioned_review", pa.bool_()),
])

_ORDER = "trank DESC, confidence DESC NULLS LAST, recency DESC NULLS LAST, source, label, entity, category"
_BINDING = "(" + ", ".join(f"'{t}'" for t in TR.BINDING) + ")"
#: a tag binds (its ``sanctioned`` is a verdict) when its tier is binding; legacy rows (no tier) too
BINDS = f"(tier IS NULL OR tier IN {_BINDING})"


def connect(ws: Workspace) -> duckdb.DuckDBPyConnection:
    """``ws.connect()`` whose ``tags`` and ``actors`` views have every column of the current schema: parts
    written before a column existed (a workspace of an older fundtrail: no ``tier``, ``dataset`` of actors
    …) read it as null, so legacy rows resolve as the owner's (trust.LEGACY_RANK)."""
    con = ws.connect()
    for table in ("tags", "actors"):
        have = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
        missing = [f for f in S.schema_of(table) if f.name not in have]
        if missing:
            con.execute(f"ALTER VIEW {table} RENAME TO {table}_stored")
            extra = ", ".join(f"NULL::{_SQL_TYPE.get(str(f.type), 'VARCHAR')} AS {f.name}" for f in missing)
            con.execute(f"CREATE VIEW {table} AS SELECT *, {extra} FROM {table}_stored")
    return con


_SQL_TYPE = {"string": "VARCHAR", "int64": "BIGINT", "bool": "BOOLEAN", "double": "DOUBLE",
             "timestamp[s, tz=UTC]": "TIMESTAMPTZ"}


def _at(at: dt.datetime | dt.date | str | None) -> dt.datetime:
    return ts(at) if at is not None else now()  # type: ignore[return-value]


def enriched_sql(chain_filter: str = "t.chain = $chain", *, all_rows: bool = False) -> str:
    """SQL of the tags valid at $at, enriched from the actors (one row per tag).

    A tag is valid at $at when its own interval holds $at and it is not superseded: a copy of a
    publication (the SDN list in any format) in a lower tier stops counting once a higher tier holds a
    version of the same publication at least as new (the newest version governs; a lower tier's copy can
    never delist the higher tier's rows, which live in their own dataset). With ``all_rows`` every tag
    of the filter comes back, with ``valid_now`` telling which are valid.

    Actors are kept per dataset; per id the definition of the highest tier wins (then the dataset name),
    and a tag takes its actor's label, category and country only from a definition of at least its own
    tier (or of its own dataset): another user's ActorPack cannot rename an authoritative tag's actor.
    """
    rank_t = TR.tier_sql("t.tier")
    return f"""
        WITH ar AS (
            SELECT *, {TR.tier_sql("tier")} AS arank FROM actors
        ), ak AS (
            SELECT actor AS k, actor, label, category, countries, dataset, arank FROM ar
            UNION ALL
            SELECT unnest(aliases) AS k, actor, label, category, countries, dataset, arank FROM ar
        ), akey AS (
            SELECT * FROM ak QUALIFY row_number() OVER (PARTITION BY k ORDER BY (k = actor) DESC, arank DESC,
                                                        dataset NULLS FIRST, actor) = 1
        ), adom AS (
            SELECT regexp_extract(lower(uri), '^(?:[a-z]+://)?(?:www\\.)?([^/:?#]+)', 1) AS dom, actor, label,
                   category, countries, dataset, arank
            FROM ar WHERE uri IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY dom ORDER BY arank DESC, dataset NULLS FIRST, actor) = 1
        ), snap AS (
            SELECT dataset, publication, {TR.tier_sql("tier")} AS srank, max(as_of) AS s
            FROM tag_snapshots
            WHERE NOT coalesce(superseded, false) AND as_of <= $at AND publication IS NOT NULL
            GROUP BY ALL
        ), t0 AS (
            SELECT t.*, {rank_t} AS trank, coalesce(t.valid_from, t.as_of) AS recency,
                   CASE WHEN t.source = 'OFAC SDN' AND t.uri IS NOT NULL
                        THEN regexp_extract(lower(t.uri), '^(?:[a-z]+://)?(?:www\\.)?([^/:?#]+)', 1) END AS dom,
                   (t.valid_from IS NULL OR t.valid_from <= $at) AND (t.valid_to IS NULL OR t.valid_to > $at)
                   AND NOT EXISTS (
                       SELECT 1 FROM snap h
                       WHERE t.publication IS NOT NULL AND h.publication = t.publication AND h.srank > {rank_t}
                         AND h.s >= coalesce((SELECT max(o.s) FROM snap o WHERE o.dataset = t.dataset),
                                             TIMESTAMPTZ '0001-01-01 00:00:00+00')
                   ) AS valid_now
            FROM tags t
            WHERE {chain_filter}
        ), t AS (
            SELECT * FROM t0 {"" if all_rows else "WHERE valid_now"}
        )
        , j0 AS (
            SELECT t.*, coalesce(
                       CASE WHEN ka.arank >= t.trank OR ka.dataset = t.dataset THEN ka.actor END,
                       CASE WHEN da.arank >= t.trank OR da.dataset = t.dataset THEN da.actor END,
                       max(CASE WHEN da.arank >= t.trank THEN da.actor END) OVER ent) AS a_actor,
                   coalesce(CASE WHEN ka.arank >= t.trank OR ka.dataset = t.dataset THEN ka.dataset END,
                            CASE WHEN da.arank >= t.trank OR da.dataset = t.dataset THEN da.dataset END,
                            max(CASE WHEN da.arank >= t.trank THEN da.dataset END) OVER ent) AS a_dataset
            FROM t
            LEFT JOIN akey ka ON ka.k = t.actor
            LEFT JOIN adom da ON da.dom = t.dom
            WINDOW ent AS (PARTITION BY CASE WHEN t.source = 'OFAC SDN' THEN t.entity END)
        ), j AS (
            SELECT j0.* EXCLUDE (a_actor, a_dataset), a.actor AS a_actor, a.label AS a_label,
                   a.category AS a_category, a.countries AS a_countries
            FROM j0 LEFT JOIN actors a ON a.actor = j0.a_actor AND a.dataset IS NOT DISTINCT FROM j0.a_dataset
        )
        SELECT j.* EXCLUDE (entity, category, country, actor, a_actor, a_label, a_category, a_countries, dom),
               coalesce(a_actor, j.actor) AS actor,
               CASE WHEN j.source = 'OFAC SDN' THEN j.entity ELSE coalesce(a_label, j.entity) END AS entity,
               CASE WHEN j.category IN ('other', 'sanctioned') AND a_category IS NOT NULL
                         AND a_category NOT IN ('other', 'sanctioned') THEN a_category
                    ELSE j.category END AS category,
               coalesce(j.country, CASE WHEN len(a_countries) = 1 THEN a_countries[1] END) AS country,
               j.category AS tag_category
        FROM j
    """


def resolve_labels(ws: Workspace, chain: str, at: dt.datetime | dt.date | str | None = None) -> pa.Table:
    """One row per address of ``chain`` carrying an attribution, directly or through its cluster, valid at
    ``at`` (default: now). Columns: see RESOLVED_SCHEMA (the contract's first thirteen, then extras).
    ``address_id`` is null for tagged addresses the workspace has not seen on the chain."""
    when = _at(at)
    con = connect(ws)
    try:
        has_clusters = con.execute("SELECT count(*) FROM cluster_members WHERE chain = $chain",
                                   {"chain": chain}).fetchone()[0] > 0
        services = ", ".join(f"'{c}'" for c in sorted(T.SERVICE_CATEGORIES))
        con.execute(f"CREATE TEMP TABLE e AS {enriched_sql()}", {"chain": chain, "at": when})
        con.execute("""
            CREATE TEMP TABLE ea AS
            SELECT e.*, a.address_id FROM e LEFT JOIN addresses a ON a.chain = e.chain AND a.address = e.address
        """)
        if has_clusters:
            con.execute("""CREATE TEMP TABLE cm AS SELECT address_id, cluster_id FROM cluster_members
                           WHERE chain = $chain""", {"chain": chain})
        else:
            con.execute("CREATE TEMP TABLE cm (address_id BIGINT, cluster_id BIGINT)")
        sql = f"""
            WITH d AS (
                SELECT ea.*, cm.cluster_id,
                       count(*) OVER (PARTITION BY ea.address) AS tag_count,
                       bool_or(coalesce(ea.sanctioned, false) AND {BINDS}) OVER (PARTITION BY ea.address)
                           AS any_sanctioned,
                       bool_or(coalesce(ea.sanctioned, false) AND NOT {BINDS}) OVER (PARTITION BY ea.address)
                           AS any_review
                FROM ea LEFT JOIN cm ON cm.address_id = ea.address_id
            ), direct AS (
                SELECT * FROM d QUALIFY row_number() OVER (PARTITION BY address ORDER BY {_ORDER}) = 1
            ), cdef AS (
                SELECT * FROM d WHERE cluster_id IS NOT NULL AND coalesce(is_cluster_definer, true)
            ), cwin AS (
                SELECT *, count(*) OVER (PARTITION BY cluster_id) AS ctag_count,
                       bool_or(coalesce(sanctioned, false) AND {BINDS}) OVER (PARTITION BY cluster_id)
                           AS c_sanctioned,
                       bool_or(coalesce(sanctioned, false) AND NOT {BINDS}) OVER (PARTITION BY cluster_id)
                           AS c_review
                FROM cdef
                QUALIFY row_number() OVER (PARTITION BY cluster_id ORDER BY {_ORDER}) = 1
            ), out_direct AS (
                SELECT d.chain, d.address_id, d.address, d.cluster_id, d.entity, d.label, d.category, d.country,
                       d.confidence, d.source, 'address' AS via,
                       d.any_sanctioned OR coalesce(c.c_sanctioned, false) AS sanctioned,
                       d.actor, d.program, d.tag_count, d.valid_from, d.valid_to, d.tier, d.dataset, d.version,
                       d.as_of, d.importer, d.any_review OR coalesce(c.c_review, false) AS sanctioned_review
                FROM direct d LEFT JOIN cwin c ON c.cluster_id = d.cluster_id
            ), out_cluster AS (
                SELECT c.chain, m.address_id, a.address, c.cluster_id, c.entity, c.label, c.category, c.country,
                       c.confidence, c.source, 'cluster' AS via, c.c_sanctioned AS sanctioned,
                       c.actor, c.program, c.ctag_count AS tag_count, c.valid_from, c.valid_to, c.tier, c.dataset,
                       c.version, c.as_of, c.importer, c.c_review AS sanctioned_review
                FROM cwin c
                JOIN cm m ON m.cluster_id = c.cluster_id
                JOIN addresses a ON a.chain = c.chain AND a.address_id = m.address_id
                WHERE a.address NOT IN (SELECT address FROM direct)
            )
            SELECT chain, address_id, address, cluster_id, entity, label, category, country, confidence, source,
                   via, sanctioned, category IN ({services}) AS is_service, actor, program, tag_count,
                   valid_from, valid_to, tier, dataset, version, as_of, importer, sanctioned_review
            FROM (SELECT * FROM out_direct UNION ALL SELECT * FROM out_cluster)
            ORDER BY address_id NULLS LAST, address
        """
        t = con.sql(sql).to_arrow_table()
    finally:
        con.close()
    return t.cast(RESOLVED_SCHEMA)


def address_tags(ws: Workspace, address: str, *, chain: str | None = None,
                 at: dt.datetime | dt.date | str | None = None, history: bool = True) -> pa.Table:
    """Every tag of ``address`` (all chains unless ``chain``), enriched, with the rank each has in the
    winner rule (1 = wins); with ``history`` also the tags not valid at ``at`` (``valid_now`` false)."""
    when = _at(at)
    a = address.strip()
    con = connect(ws)
    try:
        filt = "(t.address = $addr OR t.address = lower($addr))" + (" AND t.chain = $chain" if chain else "")
        params = {"addr": a, "at": when} | ({"chain": chain} if chain else {})
        rows = con.sql(f"""SELECT *, CASE WHEN valid_now THEN row_number() OVER (
                                   PARTITION BY chain, valid_now ORDER BY {_ORDER}) END AS rank
                           FROM ({enriched_sql(filt, all_rows=True)})
                           ORDER BY valid_now DESC, chain, rank NULLS LAST, dataset, valid_from NULLS FIRST""",
                       params=params).to_arrow_table()
        if not history:
            return rows.filter(pc.equal(rows["valid_now"], True))
        return rows
    finally:
        con.close()


def cluster_tags(ws: Workspace, address: str, chain: str, at: dt.datetime | dt.date | str | None = None) -> pa.Table:
    """The tags (valid at ``at``) of the other addresses in ``address``'s cluster, with their cluster rank."""
    when = _at(at)
    con = connect(ws)
    try:
        row = con.execute("""SELECT m.cluster_id FROM cluster_members m JOIN addresses a
                             ON a.chain = m.chain AND a.address_id = m.address_id
                             WHERE m.chain = $chain AND (a.address = $addr OR a.address = lower($addr))""",
                          {"chain": chain, "addr": address.strip()}).fetchone()
        if row is None:
            return pa.table({})
        cid = row[0]
        filt = ("t.chain = $chain AND t.address IN (SELECT a.address FROM cluster_members m JOIN addresses a "
                "ON a.chain = m.chain AND a.address_id = m.address_id WHERE m.chain = $chain AND "
                f"m.cluster_id = {int(cid)})")
        return con.sql(f"""SELECT {int(cid)} AS cluster_id, *, row_number() OVER (ORDER BY
                               coalesce(is_cluster_definer, true) DESC, {_ORDER}) AS rank
                           FROM ({enriched_sql(filt)})""", params={"chain": chain, "at": when}).to_arrow_table()
    finally:
        con.close()


def search(ws: Workspace, text: str, *, limit: int = 100) -> pa.Table:
    """Tags whose label, entity, actor, program or category contains ``text`` (case-insensitive)."""
    return ws.query(f"""
        SELECT chain, address, label, category, entity, country, program, source, confidence, valid_from,
               valid_to
        FROM tags
        WHERE label ILIKE '%' || {_lit(text)} || '%' OR entity ILIKE '%' || {_lit(text)} || '%'
           OR actor ILIKE '%' || {_lit(text)} || '%' OR program ILIKE '%' || {_lit(text)} || '%'
           OR category ILIKE {_lit(text)} OR address = {_lit(text)}
        ORDER BY confidence DESC, entity, chain, address
        LIMIT {int(limit)}
    """)


def sanctioned_at(ws: Workspace, address: str, at: dt.datetime | dt.date | str) -> tuple[bool, pa.Table]:
    """Was ``address`` on a binding sanctions list on ``at``? (answer, the sanctions tags of the address, all
    dates and datasets, with ``tier``, ``dataset``, ``binding`` and ``valid_now``).

    Binding: authoritative lists and the workspace owner's own (trust.BINDING). A curated or another
    user's list saying so is in the rows (``binding`` false): a reason to review, not the answer."""
    t = address_tags(ws, address, at=at)
    if t.num_rows == 0:
        return False, t
    con = duckdb.connect()
    try:
        con.register("t", t)
        rows = con.sql(f"""SELECT chain, address, entity, program, source, dataset, tier, version, as_of,
                                  importer, {BINDS} AS binding, valid_from, valid_to, valid_now
                           FROM t WHERE sanctioned
                           ORDER BY valid_now DESC, binding DESC, dataset, valid_from""").to_arrow_table()
    finally:
        con.close()
    yes = any(v and b for v, b in zip(rows["valid_now"].to_pylist(), rows["binding"].to_pylist(), strict=True))
    return yes, rows


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"

"""Change-address heuristics: which output of a payment returns to the payer.

Each heuristic names at most one output per transaction, with a fixed confidence, and is reported per
transaction (table ``change_outputs``) whether or not it is used for clustering. Clustering with change
edges is off by default and switched on per run (``--change-heuristics one_time,address_type`` or
``all``): an investigator compares what-if clusterings. When several enabled heuristics fire on one
transaction they must agree on the output, or the transaction contributes no change edge.

The heuristics run as SQL over the stored tables (DuckDB), one query each, on the transactions that are
not coinbase, not multi-party CoinJoins, have at least two payment outputs with addresses, and pay no
output back to one of their input addresses (that case is visible self-change and needs no guess).

* ``one_time``: exactly one output address appears on the chain for the first time in this transaction
  (the wallet's fresh change address); the others were seen before. Past-only.
* ``address_type``: every input has the same script type and exactly one output has it too.
* ``round_amount``: exactly one output is not a round amount (multiple of 0.001 BTC) while another is:
  payments are round in BTC, change is what is left.
* ``optimal_change``: with two or more inputs of known value, exactly one output is smaller than every
  input (otherwise an input would have been unnecessary).
* ``fingerprint``: exactly one output is spent by a transaction with the same wallet fingerprint
  (version, whether locktime is set) as this one, and another output is spent by a different one.
  Needs the spending transactions (future blocks).
* ``peel_chain``: a 1-input 2-output transaction whose larger output (at least 3x the other) is spent by
  a 1-input 2-output transaction of the same shape: the peel-chain remainder. Needs the spending
  transaction.

docs/heuristics.md says what each assumes and where it fails.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import pyarrow as pa

from fundtrail.errors import UsageError
from fundtrail.store.schema import txid_array

HEURISTICS: dict[str, float] = {  # name -> confidence of its verdict
    "one_time": 0.6,
    "address_type": 0.55,
    "round_amount": 0.5,
    "optimal_change": 0.5,
    "fingerprint": 0.4,
    "peel_chain": 0.7,
}
NEEDS_FUTURE = frozenset({"fingerprint", "peel_chain"})  # verdicts that depend on later spends
ROUND = 100_000  # 0.001 BTC

SCHEMA = pa.schema([
    ("chain", pa.string()), ("txid", pa.string()), ("height", pa.int64()), ("n", pa.int32()),
    ("address_id", pa.int64()), ("heuristic", pa.string()), ("confidence", pa.float64()),
    ("used", pa.bool_()),
])


def parse_heuristics(spec: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"all"``, ``"none"``, a comma-separated string or names -> the canonical tuple (sorted)."""
    if spec is None:
        return ()
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if names in (["all"],):
        return tuple(sorted(HEURISTICS))
    if names in ([], ["none"]):
        return ()
    unknown = [n for n in names if n not in HEURISTICS]
    if unknown:
        raise UsageError(f"unknown change heuristic(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(HEURISTICS))}, all, none")
    return tuple(sorted(set(names)))


def _prepare(con: duckdb.DuckDBPyConnection, chain: str, lo: int, hi: int) -> None:
    """Temp tables: cx (candidate transactions), po (their payment outputs), pi (their inputs)."""
    c = chain.replace("'", "''")
    rng = f"chain = '{c}' AND height > {int(lo)} AND height <= {int(hi)}"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _tx AS
        SELECT txid, height, tx_index, version, locktime FROM utxo_transactions
        WHERE {rng} AND NOT is_coinbase AND output_count >= 2 AND txid NOT IN (SELECT txid FROM _cj)""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _po_all AS
        SELECT txid, height, n, value, address_id, script_type FROM utxo_outputs
        WHERE {rng} AND address_id >= 0 AND coalesce(script_type, '') <> 'op_return'
          AND txid IN (SELECT txid FROM _tx)""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pi AS
        SELECT txid, n, value, address_id, script_type FROM utxo_inputs
        WHERE {rng} AND txid IN (SELECT txid FROM _tx)""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE cx AS
        SELECT t.* FROM _tx t
        WHERE t.txid IN (SELECT txid FROM _po_all GROUP BY txid HAVING count(*) >= 2)
          AND t.txid IN (SELECT txid FROM pi WHERE address_id >= 0)
          AND t.txid NOT IN (SELECT o.txid FROM _po_all o
                             JOIN pi ON pi.txid = o.txid AND pi.address_id = o.address_id)""")
    con.execute("CREATE OR REPLACE TEMP TABLE po AS SELECT * FROM _po_all WHERE txid IN (SELECT txid FROM cx)")


_ONLY_ONE = "QUALIFY sum(CASE WHEN hit THEN 1 ELSE 0 END) OVER (PARTITION BY txid) = 1 AND hit"

_SQL: dict[str, str] = {
    "address_type": f"""
        SELECT txid, n FROM (
            SELECT po.txid, po.n, po.script_type = it.t AS hit
            FROM po JOIN (SELECT txid, min(script_type) AS t FROM pi GROUP BY txid
                          HAVING count(DISTINCT script_type) = 1 AND count(script_type) = count(*)) it
                 ON it.txid = po.txid)
        {_ONLY_ONE}""",
    "round_amount": f"""
        SELECT txid, n FROM (SELECT txid, n, value % {ROUND} <> 0 AS hit FROM po)
        {_ONLY_ONE}""",
    "optimal_change": f"""
        SELECT txid, n FROM (
            SELECT po.txid, po.n, po.value < mi.v AS hit
            FROM po JOIN (SELECT txid, min(value) AS v FROM pi GROUP BY txid
                          HAVING count(*) >= 2 AND count(value) = count(*)) mi ON mi.txid = po.txid)
        {_ONLY_ONE}""",
    "one_time": f"""
        SELECT txid, n FROM (
            SELECT po.txid, po.n, fs.k = cx.height * 1000000 + cx.tx_index
                   AND count(*) OVER (PARTITION BY po.txid, po.address_id) = 1 AS hit
            FROM po JOIN cx ON cx.txid = po.txid
            JOIN (SELECT o.address_id, min(o.height * 1000000 + t.tx_index) AS k
                  FROM utxo_outputs o JOIN utxo_transactions t ON t.chain = o.chain AND t.txid = o.txid
                  WHERE o.chain = $chain AND o.height <= $hi
                    AND o.address_id IN (SELECT address_id FROM po)
                  GROUP BY o.address_id) fs ON fs.address_id = po.address_id)
        {_ONLY_ONE}""",
    "fingerprint": """
        SELECT txid, n FROM (
            SELECT po.txid, po.n,
                   s.version = cx.version AND (s.locktime > 0) = (cx.locktime > 0) AS hit
            FROM po JOIN cx ON cx.txid = po.txid
            JOIN utxo_inputs si ON si.chain = $chain AND si.prev_txid = po.txid AND si.prev_n = po.n
                 AND si.height > $lo AND si.height <= $hi
            JOIN utxo_transactions s ON s.chain = $chain AND s.txid = si.txid AND s.height > $lo
                 AND s.height <= $hi)
        QUALIFY sum(CASE WHEN hit THEN 1 ELSE 0 END) OVER (PARTITION BY txid) = 1
            AND sum(CASE WHEN hit THEN 0 ELSE 1 END) OVER (PARTITION BY txid) >= 1 AND hit""",
    "peel_chain": """
        WITH shape AS (
            SELECT t.txid FROM utxo_transactions t
            WHERE t.chain = $chain AND t.height > $lo AND NOT t.is_coinbase AND t.input_count = 1
              AND t.output_count = 2),
        two AS (
            SELECT po.txid, po.n, po.value,
                   max(po.value) OVER (PARTITION BY po.txid) AS vmax,
                   min(po.value) OVER (PARTITION BY po.txid) AS vmin,
                   count(*) OVER (PARTITION BY po.txid) AS k
            FROM po WHERE po.txid IN (SELECT txid FROM shape))
        SELECT two.txid, two.n FROM two
        JOIN utxo_inputs si ON si.chain = $chain AND si.prev_txid = two.txid AND si.prev_n = two.n
             AND si.height > $lo AND si.height <= $hi
        WHERE two.k = 2 AND two.value = two.vmax AND two.vmax >= 3 * two.vmin
          AND si.txid IN (SELECT txid FROM shape)""",
}


def detect_range(con: duckdb.DuckDBPyConnection, chain: str, lo: int, hi: int,
                 coinjoin_txids: pa.Array | list[str], enabled: Iterable[str] = (), *,
                 seen_through: int | None = None) -> tuple[pa.Table, pa.Table]:
    """Every heuristic's verdicts for blocks ``lo < height <= hi`` (rows of :data:`SCHEMA`), and the
    change edges of the ``enabled`` ones: a table (txid, height, a, b, heuristic, confidence) joining the
    transaction's smallest input address id ``a`` to its change address ``b``.

    ``seen_through`` (default ``hi``): the last block whose spends the heuristics that look at later
    spends (``fingerprint``, ``peel_chain``) may see. A caller that walks the chain in block ranges passes
    the tip, so every range gets the verdicts a single pass over all blocks gives."""
    enabled = tuple(enabled)
    con.register("_cj", pa.table({"txid": txid_array(coinjoin_txids).drop_null()}))  # as stored: binary
    _prepare(con, chain, lo, hi)
    parts = []
    # a spend is never below the output it spends (> lo): the look-ahead scans start at the range
    params = {"chain": chain, "lo": int(lo), "hi": int(hi if seen_through is None else max(hi, seen_through))}
    for name, sql in _SQL.items():
        used_params = {k: v for k, v in params.items() if f"${k}" in sql}
        t = con.sql(f"SELECT '{name}' AS heuristic, txid, n FROM ({sql})", params=used_params).to_arrow_table()
        parts.append(t)
    con.register("_verdicts", pa.concat_tables(parts))
    con.register("_enabled", pa.table({"heuristic": pa.array(list(enabled), pa.string())}))
    conf = pa.table({"heuristic": list(HEURISTICS), "confidence": list(HEURISTICS.values())})
    con.register("_conf", conf)
    edges = con.sql("""
        WITH v AS (SELECT v.*, c.confidence FROM _verdicts v JOIN _conf c USING (heuristic)
                   WHERE v.heuristic IN (SELECT heuristic FROM _enabled)),
        agree AS (SELECT txid, min(n) AS n, string_agg(heuristic, '+' ORDER BY heuristic) AS hs,
                         1 - product(1 - confidence) AS confidence
                  FROM v GROUP BY txid HAVING count(DISTINCT n) = 1)
        SELECT lower(hex(a.txid)) AS txid, cx.height, cx.tx_index, ia.a, po.address_id AS b,
               'change:' || a.hs AS heuristic,
               least(a.confidence, 0.95) AS confidence, a.n
        FROM agree a JOIN cx ON cx.txid = a.txid
        JOIN po ON po.txid = a.txid AND po.n = a.n
        JOIN (SELECT txid, min(address_id) AS a FROM pi WHERE address_id >= 0 GROUP BY txid) ia
             ON ia.txid = a.txid
        ORDER BY cx.height, cx.tx_index""").to_arrow_table()
    used = con.sql("""
        SELECT v.heuristic, v.txid, v.n FROM _verdicts v
        JOIN (SELECT txid, min(n) AS n FROM _verdicts WHERE heuristic IN (SELECT heuristic FROM _enabled)
              GROUP BY txid HAVING count(DISTINCT n) = 1) g ON g.txid = v.txid AND g.n = v.n
        WHERE v.heuristic IN (SELECT heuristic FROM _enabled)""").to_arrow_table()
    con.register("_used", used)
    report = con.sql("""
        SELECT $chain AS chain, lower(hex(v.txid)) AS txid, cx.height, CAST(v.n AS INTEGER) AS n, po.address_id,
               v.heuristic,
               c.confidence, u.txid IS NOT NULL AS used
        FROM _verdicts v JOIN cx ON cx.txid = v.txid JOIN po ON po.txid = v.txid AND po.n = v.n
        JOIN _conf c ON c.heuristic = v.heuristic
        LEFT JOIN _used u ON u.txid = v.txid AND u.n = v.n AND u.heuristic = v.heuristic
        ORDER BY cx.height, cx.tx_index, v.heuristic""", params={"chain": chain}).to_arrow_table()
    for name in ("_cj", "_verdicts", "_enabled", "_conf", "_used"):
        con.unregister(name)
    return report.cast(SCHEMA), edges

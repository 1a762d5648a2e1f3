"""The contract's tables as DuckDB views over the stored tables (see ../shared/contract.md).

Stored tables keep integer address ids; these views join the ``addresses`` dictionary to show the
address strings users write. The utxo_* tables keep txids as 32-byte binary (display order); the views
show them as lower-case hex (``lower(hex(txid))``) and join the stored tables on the binary columns.
Each view lists the contract's columns first, then extra ones.
"""

from __future__ import annotations

import duckdb

from fundtrail.errors import WorkspaceError

# the stored txid columns: 32-byte binary (DuckDB BLOB); hex text there is a workspace written by an older
# fundtrail, which these views would show wrongly (the hex of the text)
BINARY_TXIDS: dict[str, tuple[str, ...]] = {
    "utxo_transactions": ("txid",), "utxo_outputs": ("txid",), "utxo_inputs": ("txid", "prev_txid"),
    "utxo_prevouts": ("txid",),
}

VIEWS: dict[str, str] = {
    "blocks": """
        SELECT chain, height, hash, time, tx_count, prev_hash, size FROM utxo_blocks
        UNION ALL BY NAME
        SELECT chain, height, hash, time, tx_count, prev_hash, size FROM evm_blocks
    """,
    "transactions": """
        SELECT chain, lower(hex(txid)) AS txid, height, time, CAST(fee AS DECIMAL(38,0)) AS fee, is_coinbase,
               tx_index,
               CAST(NULL AS VARCHAR) AS from_address, CAST(NULL AS VARCHAR) AS to_address,
               CAST(output_value AS DECIMAL(38,0)) AS value, CAST(NULL AS TINYINT) AS status,
               input_count, output_count
        FROM utxo_transactions
        UNION ALL BY NAME
        SELECT t.chain, t.txid, t.height, t.time, t.fee, false AS is_coinbase, t.tx_index,
               f.address AS from_address, o.address AS to_address, t.value, t.status,
               NULL AS input_count, NULL AS output_count
        FROM evm_transactions t
        LEFT JOIN addresses f ON f.chain = t.chain AND f.address_id = t.from_id
        LEFT JOIN addresses o ON o.chain = t.chain AND o.address_id = t.to_id
    """,
    "outputs": """
        SELECT o.chain, lower(hex(o.txid)) AS txid, o.n, o.value, a.address, o.script_type,
               lower(hex(i.txid)) AS spent_by_txid,
               o.height, o.address_id, i.height AS spent_height
        FROM utxo_outputs o
        LEFT JOIN addresses a ON a.chain = o.chain AND a.address_id = o.address_id
        LEFT JOIN utxo_inputs i ON i.chain = o.chain AND i.prev_txid = o.txid AND i.prev_n = o.n
    """,
    "inputs": """
        SELECT i.chain, lower(hex(i.txid)) AS txid, i.n, lower(hex(i.prev_txid)) AS prev_txid, i.prev_n,
               i.value, a.address, i.script_type,
               i.height, i.address_id, i.sequence
        FROM utxo_inputs i
        LEFT JOIN addresses a ON a.chain = i.chain AND a.address_id = i.address_id
    """,
    # Bitcoin transfers: one row per output (kind 'output', or 'coinbase' for newly minted coins) and
    # one per fee. from_address is the spending address when every input of the transaction has the
    # same one, else null (a multi-party spend has no single sender). EVM transfers are stored as such.
    "transfers": """
        WITH senders AS (
            SELECT chain, txid, min(address_id) AS a_min, max(address_id) AS a_max
            FROM utxo_inputs GROUP BY chain, txid
        ), utxo AS (
            SELECT o.chain, o.txid, o.height, t.time,
                   CASE WHEN s.a_min = s.a_max THEN s.a_min END AS from_id, o.address_id AS to_id,
                   'BTC' AS asset, CAST(o.value AS DECIMAL(38,0)) AS amount,
                   CASE WHEN t.is_coinbase THEN 'coinbase' ELSE 'output' END AS kind, o.n AS seq
            FROM utxo_outputs o
            JOIN utxo_transactions t ON t.chain = o.chain AND t.txid = o.txid
            LEFT JOIN senders s ON s.chain = o.chain AND s.txid = o.txid
            UNION ALL
            SELECT t.chain, t.txid, t.height, t.time,
                   CASE WHEN s.a_min = s.a_max THEN s.a_min END, NULL, 'BTC',
                   CAST(t.fee AS DECIMAL(38,0)), 'fee', -1
            FROM utxo_transactions t
            LEFT JOIN senders s ON s.chain = t.chain AND s.txid = t.txid
            WHERE NOT t.is_coinbase AND t.fee > 0
        )
        SELECT u.chain, lower(hex(u.txid)) AS txid, u.height, u.time, f.address AS from_address,
               o.address AS to_address, u.asset, u.amount, u.kind, u.seq, u.from_id, u.to_id
        FROM utxo u
        LEFT JOIN addresses f ON f.chain = u.chain AND f.address_id = u.from_id
        LEFT JOIN addresses o ON o.chain = u.chain AND o.address_id = u.to_id
        UNION ALL BY NAME
        SELECT e.chain, e.txid, e.height, e.time, f.address AS from_address, o.address AS to_address,
               e.asset, e.amount, e.kind, e.seq, e.from_id, e.to_id
        FROM evm_transfers e
        LEFT JOIN addresses f ON f.chain = e.chain AND f.address_id = e.from_id
        LEFT JOIN addresses o ON o.chain = e.chain AND o.address_id = e.to_id
    """,
    "clusters": """
        SELECT m.chain, a.address, m.cluster_id, m.address_id
        FROM cluster_members m
        JOIN addresses a ON a.chain = m.chain AND a.address_id = m.address_id
    """,
}


def check_stored_types(con: duckdb.DuckDBPyConnection) -> None:
    """Refuse stored tables whose txid columns are text (a workspace written by an older fundtrail)."""
    for table, columns in BINARY_TXIDS.items():
        types = con.sql(f"SELECT {', '.join(columns)} FROM {table}").types  # bound, not run
        for column, kind in zip(columns, types, strict=True):
            if str(kind) != "BLOB":
                raise WorkspaceError(f"table {table}: column {column} is {kind}, not 32-byte binary: workspace "
                                     "written by an older fundtrail (hex txids): re-ingest")


def install_views(con: duckdb.DuckDBPyConnection) -> None:
    check_stored_types(con)
    for name, sql in VIEWS.items():
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")

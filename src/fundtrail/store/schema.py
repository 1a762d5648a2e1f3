"""Arrow schemas of the stored (raw) tables. docs/schema.md documents every column.

Stored tables hold integer address ids (``*_id`` columns, dense per chain, see ``addresses``); the
contract's tables (``blocks``, ``outputs``, ``transfers`` …) are DuckDB views over these (store/views.py)
that show address strings. Amounts are int64 where they fit (satoshi) and DECIMAL(38,0) otherwise (wei,
token units); a token amount beyond 38 digits is kept exactly in ``amount_raw`` with ``amount`` null.

Extend a schema by adding columns at the end; never rename (the contract is stable).
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from fundtrail.errors import UsageError, WorkspaceError

TS = pa.timestamp("s", tz="UTC")
AMOUNT = pa.decimal128(38, 0)
# Bitcoin txids in the utxo_* tables: 32 bytes in display order (bytes.fromhex of the usual hex txid); the
# views (store/views.py) show them as lower-case hex
TXID = pa.binary(32)


def txid_array(txids: Iterable[str | None] | pa.Array | pa.ChunkedArray) -> pa.Array:
    """Hex txids (user input, records) as a ``TXID`` array for filtering the utxo_* tables; text that is not
    64 hex digits becomes null (it names no stored transaction)."""
    if isinstance(txids, (pa.Array, pa.ChunkedArray)):
        txids = txids.to_pylist()
    out: list[bytes | None] = []
    for t in txids:
        try:
            b = bytes.fromhex(t) if t is not None and len(t) == 64 else None
        except ValueError:
            b = None
        out.append(b if b is not None and len(b) == 32 else None)
    return pa.array(out, TXID)


SCHEMAS: dict[str, pa.Schema] = {
    # --- every chain ---------------------------------------------------------------------------------
    "addresses": pa.schema([
        ("chain", pa.string()), ("address_id", pa.int64()), ("address", pa.string()),
        ("script_type", pa.string()),
    ]),
    # --- UTXO chains (Bitcoin) ---------------------------------------------------------------------------
    "utxo_blocks": pa.schema([
        ("chain", pa.string()), ("height", pa.int64()), ("hash", pa.string()), ("prev_hash", pa.string()),
        ("time", TS), ("tx_count", pa.int32()), ("size", pa.int64()), ("version", pa.int64()),
        ("merkle_root", pa.string()), ("bits", pa.int64()), ("nonce", pa.int64()),
    ]),
    "utxo_transactions": pa.schema([
        ("chain", pa.string()), ("height", pa.int64()), ("tx_index", pa.int32()), ("txid", TXID),
        ("time", TS), ("fee", pa.int64()), ("is_coinbase", pa.bool_()), ("version", pa.int64()),
        ("locktime", pa.int64()), ("size", pa.int32()), ("vsize", pa.int32()),
        ("input_count", pa.int32()), ("output_count", pa.int32()),
        ("input_value", pa.int64()), ("output_value", pa.int64()), ("has_witness", pa.bool_()),
    ]),
    "utxo_outputs": pa.schema([
        ("chain", pa.string()), ("height", pa.int64()), ("txid", TXID), ("n", pa.int32()),
        ("value", pa.int64()), ("address_id", pa.int64()), ("script_type", pa.string()),
        ("op_return", pa.binary()),  # the data an OP_RETURN output carries (its pushes, concatenated)
    ]),
    "utxo_inputs": pa.schema([
        ("chain", pa.string()), ("height", pa.int64()), ("txid", TXID), ("n", pa.int32()),
        ("prev_txid", TXID), ("prev_n", pa.int64()), ("value", pa.int64()),
        ("address_id", pa.int64()), ("script_type", pa.string()), ("sequence", pa.int64()),
    ]),
    # previous outputs supplied from outside the ingested blocks (e.g. a btcd utxostore)
    "utxo_prevouts": pa.schema([
        ("chain", pa.string()), ("txid", TXID), ("n", pa.int64()), ("value", pa.int64()),
        ("address_id", pa.int64()), ("script_type", pa.string()), ("height", pa.int64()),
        ("source", pa.string()),
    ]),
    # --- EVM chains ------------------------------------------------------------------------------------
    "evm_blocks": pa.schema([
        ("chain", pa.string()), ("height", pa.int64()), ("hash", pa.string()), ("prev_hash", pa.string()),
        ("time", TS), ("tx_count", pa.int32()), ("miner", pa.string()), ("gas_used", pa.int64()),
        ("gas_limit", pa.int64()), ("base_fee_per_gas", AMOUNT), ("size", pa.int64()),
        ("withdrawal_count", pa.int32()),
    ]),
    "evm_transactions": pa.schema([
        ("chain", pa.string()), ("height", pa.int64()), ("tx_index", pa.int32()), ("txid", pa.string()),
        ("time", TS), ("from_id", pa.int64()), ("to_id", pa.int64()), ("value", AMOUNT),
        ("gas", pa.int64()), ("gas_price", AMOUNT), ("gas_used", pa.int64()),
        ("effective_gas_price", AMOUNT), ("fee", AMOUNT), ("status", pa.int8()),
        ("created_contract_id", pa.int64()), ("nonce", pa.int64()), ("tx_type", pa.int16()),
        ("input_selector", pa.string()),
    ]),
    # one row per movement of value: kind in call | internal | create | selfdestruct | token |
    # withdrawal | fee | reward
    "evm_transfers": pa.schema([
        ("chain", pa.string()), ("height", pa.int64()), ("time", TS), ("txid", pa.string()),
        ("tx_index", pa.int32()), ("seq", pa.int32()), ("from_id", pa.int64()), ("to_id", pa.int64()),
        ("asset", pa.string()), ("amount", AMOUNT), ("amount_raw", pa.string()), ("kind", pa.string()),
        ("trace_address", pa.string()), ("log_index", pa.int32()),
    ]),
    "evm_logs": pa.schema([
        ("chain", pa.string()), ("height", pa.int64()), ("txid", pa.string()), ("tx_index", pa.int32()),
        ("log_index", pa.int32()), ("address", pa.string()), ("topic0", pa.string()),
        ("topic1", pa.string()), ("topic2", pa.string()), ("topic3", pa.string()), ("data", pa.string()),
    ]),
    "tokens": pa.schema([
        ("chain", pa.string()), ("address", pa.string()), ("symbol", pa.string()), ("name", pa.string()),
        ("decimals", pa.int32()), ("status", pa.string()), ("first_height", pa.int64()),
    ]),
    # --- attribution (global) ----------------------------------------------------------------------------
    "tags": pa.schema([
        ("chain", pa.string()), ("address", pa.string()), ("label", pa.string()),
        ("category", pa.string()), ("entity", pa.string()), ("country", pa.string()),
        ("source", pa.string()), ("confidence", pa.float64()), ("valid_from", TS), ("valid_to", TS),
        ("confidence_name", pa.string()), ("source_category", pa.string()), ("actor", pa.string()),
        ("is_cluster_definer", pa.bool_()), ("program", pa.string()), ("tagpack", pa.string()),
        ("file", pa.string()), ("line", pa.int64()), ("imported_at", TS),
        # added by attribution (issue 4): snapshot date, history unit, source asset code, flags, notes
        ("as_of", TS), ("dataset", pa.string()), ("asset", pa.string()), ("sanctioned", pa.bool_()),
        ("uri", pa.string()), ("note", pa.string()),
    ]),
    "actors": pa.schema([
        ("actor", pa.string()), ("label", pa.string()), ("category", pa.string()),
        ("countries", pa.list_(pa.string())), ("uri", pa.string()), ("source", pa.string()),
        ("context", pa.string()),
        ("categories", pa.list_(pa.string())), ("aliases", pa.list_(pa.string())), ("as_of", TS),
    ]),
    # --- clustering (per chain) --------------------------------------------------------------------------
    "cluster_members": pa.schema([
        ("chain", pa.string()), ("address_id", pa.int64()), ("cluster_id", pa.int64()),
    ]),
    # one row per union that joined two different clusters
    "cluster_evidence": pa.schema([
        ("chain", pa.string()), ("seq", pa.int64()), ("a_id", pa.int64()), ("b_id", pa.int64()),
        ("txid", pa.string()), ("heuristic", pa.string()), ("confidence", pa.float64()),
        ("height", pa.int64()),
    ]),
    # CoinJoin verdicts per transaction (cluster/coinjoin.py)
    "coinjoin_txs": pa.schema([
        ("chain", pa.string()), ("txid", pa.string()), ("height", pa.int64()), ("protocol", pa.string()),
        ("confidence", pa.float64()), ("equal_value", pa.int64()), ("equal_count", pa.int32()),
        ("input_count", pa.int32()), ("output_count", pa.int32()), ("reason", pa.string()),
    ]),
    # change-output verdicts per transaction and heuristic (cluster/change.py)
    "change_outputs": pa.schema([
        ("chain", pa.string()), ("txid", pa.string()), ("height", pa.int64()), ("n", pa.int32()),
        ("address_id", pa.int64()), ("heuristic", pa.string()), ("confidence", pa.float64()),
        ("used", pa.bool_()),
    ]),
    # EVM deposit addresses and the hot wallet they sweep to (cluster/deposit.py)
    "deposit_addresses": pa.schema([
        ("chain", pa.string()), ("address_id", pa.int64()), ("hot_wallet_id", pa.int64()),
        ("entity", pa.string()), ("senders", pa.int64()), ("assets", pa.int64()), ("forwards", pa.int64()),
        ("forwarded_ratio", pa.float64()), ("max_delay_s", pa.int64()), ("txid", pa.string()),
        ("height", pa.int64()), ("confidence", pa.float64()),
    ]),
    # supercluster alarms: merges of two clusters both at least the alarm size (cluster/service.py)
    "cluster_alarms": pa.schema([
        ("chain", pa.string()), ("seq", pa.int64()), ("a_id", pa.int64()), ("b_id", pa.int64()),
        ("size_a", pa.int64()), ("size_b", pa.int64()), ("txid", pa.string()), ("heuristic", pa.string()),
        ("height", pa.int64()), ("clustered_at", pa.timestamp("s", tz="UTC")),
    ]),
    # --- prices and incidents (global) -------------------------------------------------------------------
    "prices": pa.schema([
        ("date", pa.date32()), ("asset", pa.string()), ("usd", pa.float64()), ("source", pa.string()),
    ]),
    # one row per incident; seeds are (chain, address | txid[, n]) (fundtrail.incidents)
    "incidents": pa.schema([
        ("name", pa.string()), ("chains", pa.list_(pa.string())),
        ("seeds", pa.list_(pa.struct([("chain", pa.string()), ("address", pa.string()),
                                      ("txid", pa.string()), ("n", pa.int32())]))),
        ("actor", pa.string()), ("since", TS), ("created", TS), ("description", pa.string()),
    ]),
    # publicly documented incidents with reported loss and sources (fundtrail.incidents_catalogue,
    # docs/statistics.md); rows with seeds also become incidents
    "incident_catalogue": pa.schema([
        ("name", pa.string()), ("date", TS), ("date_precision", pa.string()),
        ("victim", pa.string()), ("actor", pa.string()), ("kind", pa.string()),
        ("chains", pa.list_(pa.string())),
        ("addresses", pa.list_(pa.struct([("chain", pa.string()), ("address", pa.string())]))),
        ("txids", pa.list_(pa.struct([("chain", pa.string()), ("txid", pa.string())]))),
        ("reported_loss_usd", pa.float64()), ("reported_loss_note", pa.string()),
        ("sources", pa.list_(pa.string())), ("seed_note", pa.string()), ("imported", TS), ("file", pa.string()),
    ]),
}

# attribution (issue 4): every imported snapshot's tags as read (``tags`` holds their history, rebuilt
# from these per dataset); same columns as ``tags``
SCHEMAS["tag_observations"] = SCHEMAS["tags"]

TABLES: tuple[str, ...] = tuple(SCHEMAS)


def register(name: str, schema: pa.Schema) -> None:
    """Add a stored table (for modules that own one, e.g. heuristics results)."""
    if name in SCHEMAS and SCHEMAS[name] != schema:
        raise UsageError(f"table {name!r} is already registered with another schema")
    SCHEMAS[name] = schema
    global TABLES
    TABLES = tuple(SCHEMAS)


def schema_of(table: str) -> pa.Schema:
    try:
        return SCHEMAS[table]
    except KeyError:
        raise UsageError(f"unknown table {table!r}") from None


def conform(data: pa.Table, schema: pa.Schema, table: str) -> pa.Table:
    """Order and cast ``data``'s columns to ``schema``; missing nullable columns become nulls.

    Text where the schema has fixed-size binary (txids) is refused, not cast: it is what a workspace
    written by an older fundtrail holds (hex txids)."""
    cols = []
    for field in schema:
        if field.name in data.column_names:
            col = data[field.name]
            if col.type != field.type:
                if pa.types.is_fixed_size_binary(field.type) and (
                        pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
                        or pa.types.is_string_view(col.type)):
                    raise WorkspaceError(f"table {table}: column {field.name} holds text, not "
                                         f"{field.type.byte_width}-byte binary: workspace written by an older "
                                         "fundtrail (hex txids): re-ingest")
                try:
                    col = col.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                    raise UsageError(f"table {table}: column {field.name} cannot be {field.type}: {e}") from e
            cols.append(col)
        else:
            cols.append(pa.nulls(data.num_rows, field.type))
    extra = set(data.column_names) - set(schema.names)
    if extra:
        raise UsageError(f"table {table}: columns not in its schema: {sorted(extra)}")
    return pa.Table.from_arrays(cols, schema=schema)

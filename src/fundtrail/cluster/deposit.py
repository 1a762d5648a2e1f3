"""The EVM deposit-address heuristic.

Exchanges give every customer a deposit address and sweep what arrives there into a hot wallet. An
address that (a) receives value from other parties, (b) forwards (almost) everything it receives, per
asset, to one address known from tags to be an exchange's hot wallet, (c) within a short window after
each receipt, and (d) sends nothing of note anywhere else, is that exchange's deposit address: it joins
the hot wallet's cluster, with the sweep transaction as evidence.

The hot wallets come from the ``tags`` table directly (category ``exchange`` or ``exchange_nokyc`` on
the chain), so this works before attribution has resolved anything. Gas top-ups the exchange sends to a
deposit address (for token sweeps) are not counted as senders and need not be forwarded.

Confidence grows with the number of distinct senders (one sender could be a person emptying their own
wallet into the exchange; several unrelated senders paying into one address that always sweeps to the
same hot wallet is the exchange's pattern). docs/heuristics.md has the assumptions and failure modes.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

SCHEMA = pa.schema([
    ("chain", pa.string()), ("address_id", pa.int64()), ("hot_wallet_id", pa.int64()),
    ("entity", pa.string()), ("senders", pa.int64()), ("assets", pa.int64()), ("forwards", pa.int64()),
    ("forwarded_ratio", pa.float64()), ("max_delay_s", pa.int64()), ("txid", pa.string()),
    ("height", pa.int64()), ("confidence", pa.float64()),
])


@dataclass(frozen=True, slots=True)
class DepositParams:
    window_s: int = 3 * 86_400  # longest wait between a receipt and the sweep that forwards it
    min_forwarded: float = 0.9  # share of each swept asset's receipts forwarded to the hot wallet
    min_share: float = 0.95  # share of each asset's outflow that goes to the hot wallet
    min_senders: int = 1  # distinct senders other than the exchange's own hot wallets


_SQL = """
WITH hot AS (
    SELECT a.address_id AS hid, min(t.entity) AS entity
    FROM tags t JOIN addresses a ON a.chain = $chain AND a.address = lower(t.address)
    WHERE t.chain = $chain AND t.category IN ('exchange', 'exchange_nokyc')
    GROUP BY a.address_id
), contracts AS (
    SELECT DISTINCT created_contract_id AS id FROM evm_transactions
    WHERE chain = $chain AND created_contract_id IS NOT NULL
), tr AS (
    SELECT txid, height, time, from_id, to_id, asset, CAST(amount AS DOUBLE) AS amount
    FROM evm_transfers
    WHERE chain = $chain AND kind NOT IN ('fee', 'reward', 'withdrawal') AND from_id >= 0 AND to_id >= 0
      AND amount > 0 AND from_id <> to_id
), inflow AS (
    SELECT to_id AS d, asset, sum(amount) AS recv FROM tr GROUP BY to_id, asset
), senders AS (
    SELECT to_id AS d, count(DISTINCT from_id) AS senders FROM tr
    WHERE from_id NOT IN (SELECT hid FROM hot) GROUP BY to_id
), outflow AS (
    SELECT from_id AS d, asset, to_id AS dest, sum(amount) AS amt FROM tr GROUP BY from_id, asset, to_id
), outtot AS (
    SELECT d, asset, sum(amt) AS tot FROM outflow GROUP BY d, asset
), best AS (  -- per deposit candidate and asset: the destination taking the most
    SELECT d, asset, arg_max(dest, amt) AS dest, max(amt) AS amt FROM outflow GROUP BY d, asset
), per_asset AS (
    SELECT b.d, b.asset, b.dest, b.amt, o.tot, coalesce(i.recv, 0) AS recv
    FROM best b JOIN outtot o USING (d, asset) LEFT JOIN inflow i USING (d, asset)
), cand AS (
    SELECT d, min(dest) AS hid, count(*) AS assets, sum(amt) / sum(recv) AS ratio
    FROM per_asset
    GROUP BY d
    HAVING count(DISTINCT dest) = 1
       AND bool_and(amt >= $min_share * tot AND recv > 0 AND amt >= $min_forwarded * recv)
), fwd AS (
    SELECT t.txid, t.height, t.time, t.from_id AS d, t.asset FROM tr t JOIN cand c ON c.d = t.from_id
    AND c.hid = t.to_id
), rcv AS (
    SELECT t.time, t.to_id AS d, t.asset FROM tr t WHERE t.to_id IN (SELECT d FROM cand)
), delays AS (
    SELECT f.d, f.txid, f.height, f.time,
           epoch(f.time) - epoch(r.time) AS delay
    FROM fwd f ASOF LEFT JOIN rcv r ON r.d = f.d AND r.asset = f.asset AND f.time >= r.time
)
SELECT $chain AS chain, c.d AS address_id, c.hid AS hot_wallet_id, h.entity,
       coalesce(s.senders, 0) AS senders, c.assets, count(*) AS forwards, c.ratio AS forwarded_ratio,
       CAST(max(dl.delay) AS BIGINT) AS max_delay_s,
       arg_min(dl.txid, dl.time) AS txid, min(dl.height) AS height
FROM cand c JOIN hot h ON h.hid = c.hid
JOIN delays dl ON dl.d = c.d
LEFT JOIN senders s ON s.d = c.d
WHERE c.d NOT IN (SELECT hid FROM hot) AND c.d NOT IN (SELECT id FROM contracts)
GROUP BY c.d, c.hid, h.entity, s.senders, c.assets, c.ratio
HAVING bool_and(dl.delay IS NOT NULL AND dl.delay <= $window) AND coalesce(s.senders, 0) >= $min_senders
ORDER BY min(dl.height), c.d
"""


def confidence_for(senders: int) -> float:
    return 0.7 if senders <= 1 else 0.8 if senders == 2 else 0.9


def detect_deposits(con: duckdb.DuckDBPyConnection, chain: str,
                    params: DepositParams = DepositParams()) -> pa.Table:
    """Deposit addresses of a chain (rows of :data:`SCHEMA`) from an open workspace connection."""
    t = con.sql(_SQL, params={"chain": chain, "window": params.window_s, "min_forwarded": params.min_forwarded,
                              "min_share": params.min_share, "min_senders": params.min_senders}).to_arrow_table()
    conf = pa.array([confidence_for(int(s)) for s in t["senders"].to_pylist()], pa.float64())
    t = t.append_column("confidence", conf)
    return t.select(SCHEMA.names).cast(SCHEMA)


def deposit_addresses(ws, chain: str, params: DepositParams = DepositParams()) -> pa.Table:
    con = ws.connect()
    try:
        return detect_deposits(con, chain, params)
    finally:
        con.close()

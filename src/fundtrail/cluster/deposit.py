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
import pyarrow.compute as pc

SCHEMA = pa.schema([
    ("chain", pa.string()), ("address_id", pa.int64()), ("hot_wallet_id", pa.int64()),
    ("entity", pa.string()), ("senders", pa.int64()), ("assets", pa.int64()), ("forwards", pa.int64()),
    ("forwarded_ratio", pa.float64()), ("max_delay_s", pa.int64()), ("txid", pa.string()),
    ("height", pa.int64()), ("confidence", pa.float64()), ("rule", pa.string()), ("provenance", pa.string()),
])
CREATOR_DISCOUNT = 0.9  # a created contract's confidence: its creator's tag confidence times this
FACTORY_DISCOUNT = 0.85  # one level further: a contract created by a contract the entity deployed


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


# Deposit contracts (BitGo-style forwarders, CREATE2 proxies): a contract deployed by an exchange's tagged
# address ("creator"), or created by a contract that such an address deployed ("factory"), belongs to the
# exchange whether or not it was ever swept. Creations come from evm_transactions.created_contract_id
# (top-level deployments: the sender deployed) and from evm_transfers rows of kind 'create' (a CREATE/
# CREATE2 frame that carried value: the frame's sender is the factory). A factory creating a contract
# with no value leaves no row: such contracts are missed (docs/heuristics.md).
_CREATED_SQL = """
WITH hot AS (
    SELECT a.address_id AS hid, min(t.entity) AS entity, max(t.confidence) AS conf,
           min(t.source) AS source, min(a.address) AS address
    FROM tags t JOIN addresses a ON a.chain = $chain AND a.address = lower(t.address)
    WHERE t.chain = $chain AND t.category IN ('exchange', 'exchange_nokyc')
    GROUP BY a.address_id
), made AS (
    SELECT created_contract_id AS cid, from_id AS creator, txid, height FROM evm_transactions
    WHERE chain = $chain AND created_contract_id IS NOT NULL AND coalesce(status, 1) = 1
    UNION ALL
    SELECT to_id AS cid, from_id AS creator, txid, height FROM evm_transfers
    WHERE chain = $chain AND kind = 'create' AND to_id IS NOT NULL AND from_id IS NOT NULL
), first AS (  -- one creation per contract: the earliest
    SELECT cid, arg_min(creator, height) AS creator, arg_min(txid, height) AS txid, min(height) AS height
    FROM made GROUP BY cid
), lvl AS (
    SELECT f.cid, h.hid, h.entity, h.conf, h.source, h.address AS hot_address, f.txid, f.height,
           'creator' AS rule, NULL::VARCHAR AS factory
    FROM first f JOIN hot h ON h.hid = f.creator
    UNION ALL
    SELECT f.cid, h.hid, h.entity, h.conf, h.source, h.address, f.txid, f.height, 'factory',
           (SELECT address FROM addresses WHERE chain = $chain AND address_id = p.cid)
    FROM first f JOIN first p ON p.cid = f.creator JOIN hot h ON h.hid = p.creator
), senders AS (
    SELECT to_id AS d, count(DISTINCT from_id) AS senders, count(DISTINCT asset) AS assets FROM evm_transfers
    WHERE chain = $chain AND kind NOT IN ('fee', 'reward', 'withdrawal', 'create') AND amount > 0
      AND to_id IN (SELECT cid FROM lvl) AND from_id NOT IN (SELECT hid FROM hot)
    GROUP BY to_id
)
SELECT $chain AS chain, l.cid AS address_id, l.hid AS hot_wallet_id, l.entity,
       coalesce(s.senders, 0) AS senders, coalesce(s.assets, 0) AS assets, 0::BIGINT AS forwards,
       0.0::DOUBLE AS forwarded_ratio, NULL::BIGINT AS max_delay_s, l.txid, l.height, l.conf, l.rule,
       l.source, l.hot_address, l.factory
FROM lvl l LEFT JOIN senders s ON s.d = l.cid
WHERE l.cid NOT IN (SELECT hid FROM hot)
ORDER BY l.height, l.cid
"""


def detect_created(con: duckdb.DuckDBPyConnection, chain: str) -> pa.Table:
    """Contracts an exchange created (directly, or through a factory it deployed): rows of
    :data:`SCHEMA` with rule ``creator`` / ``factory``, the creation as evidence, a confidence below the
    creator's own tag and the provenance in words."""
    try:
        t = con.sql(_CREATED_SQL, params={"chain": chain}).to_arrow_table()
    except (duckdb.CatalogException, duckdb.BinderException):  # no evm_transactions / tags (or columns) here
        return SCHEMA.empty_table()
    rows = t.to_pylist()
    conf, prov = [], []
    for r in rows:
        base = float(r["conf"] if r["conf"] is not None else 1.0)
        c = base * (CREATOR_DISCOUNT if r["rule"] == "creator" else CREATOR_DISCOUNT * FACTORY_DISCOUNT)
        conf.append(round(c, 4))
        who = f"{r['hot_address']} ({r['entity']} hot wallet, tag source {r['source']})"
        if r["rule"] == "creator":
            prov.append(f"created by {who} in tx {r['txid']}, block {r['height']}")
        else:
            prov.append(f"created by factory {r['factory']}, itself deployed by {who}; in tx {r['txid']}, "
                        f"block {r['height']}")
    t = t.drop(["conf", "source", "hot_address", "factory"])
    t = t.append_column("confidence", pa.array(conf, pa.float64())).append_column(
        "provenance", pa.array(prov, pa.string()))
    return t.select(SCHEMA.names).cast(SCHEMA)


def confidence_for(senders: int) -> float:
    return 0.7 if senders <= 1 else 0.8 if senders == 2 else 0.9


def detect_deposits(con: duckdb.DuckDBPyConnection, chain: str,
                    params: DepositParams = DepositParams()) -> pa.Table:
    """Deposit addresses of a chain (rows of :data:`SCHEMA`) from an open workspace connection."""
    t = con.sql(_SQL, params={"chain": chain, "window": params.window_s, "min_forwarded": params.min_forwarded,
                              "min_share": params.min_share, "min_senders": params.min_senders}).to_arrow_table()
    conf = pa.array([confidence_for(int(s)) for s in t["senders"].to_pylist()], pa.float64())
    t = t.append_column("confidence", conf)
    t = t.append_column("rule", pa.array(["sweep"] * t.num_rows, pa.string()))
    names = con.execute("SELECT address_id, address FROM addresses WHERE chain = $c AND list_contains($ids, "
                        "address_id)", {"c": chain, "ids": sorted(set(t["hot_wallet_id"].to_pylist()))}).fetchall() \
        if t.num_rows else []
    hot = dict(names)
    prov = [f"sweeps {r:.0%} of what it receives to {hot.get(h, h)} ({e} hot wallet) within the window; "
            f"first sweep tx {x}, block {b}" for r, h, e, x, b in zip(
                t["forwarded_ratio"].to_pylist(), t["hot_wallet_id"].to_pylist(), t["entity"].to_pylist(),
                t["txid"].to_pylist(), t["height"].to_pylist(), strict=True)]
    t = t.append_column("provenance", pa.array(prov, pa.string()))
    return t.select(SCHEMA.names).cast(SCHEMA)


def deposit_addresses(ws, chain: str, params: DepositParams = DepositParams()) -> pa.Table:
    """Deposit addresses (sweep rule) and the contracts the exchanges created (creator / factory rule)."""
    con = ws.connect()
    try:
        return all_deposits(con, chain, params)
    finally:
        con.close()


def all_deposits(con: duckdb.DuckDBPyConnection, chain: str, params: DepositParams = DepositParams()) -> pa.Table:
    """The sweep rule's deposit addresses, then the created contracts it did not already find."""
    deps = detect_deposits(con, chain, params)
    made = detect_created(con, chain)
    if made.num_rows:
        seen = pa.array(deps["address_id"].to_pylist(), pa.int64())
        made = made.filter(pc.invert(pc.is_in(made["address_id"], value_set=seen)))
        deps = pa.concat_tables([deps, made])
    return deps


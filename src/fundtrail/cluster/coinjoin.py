"""CoinJoin detection: which transactions are multi-party, so their inputs must not be clustered together.

Each detector looks at one transaction's structure (input and output values, addresses, script types,
OP_RETURN) and answers a protocol and a confidence. The rules follow the protocols' published structure;
docs/heuristics.md says what each assumes and where it fails. A false positive only withholds merges
(the safe direction); a false negative glues CoinJoin participants together, which is why detection runs
before the co-spend heuristic and why the rules are deliberately broad.

Protocols (``protocol`` column):

* ``whirlpool``: Samourai/Sparrow Whirlpool mix: exactly 5 inputs and 5 outputs, every output exactly one
  pool denomination (0.001, 0.01, 0.05, 0.5 BTC), every known input worth the denomination up to a
  miner-fee allowance above it (premix inputs pay the fee, remixes bring exactly the denomination).
* ``whirlpool_tx0``: the single-owner transaction that enters a pool: an OP_RETURN output (the encrypted
  fee payload), one or more equal P2WPKH premix outputs just above a pool denomination, the coordinator
  fee and the change. It is *not* multi-party; it is recorded for tracing and its inputs are clustered as usual.
* ``wasabi1``: Wasabi 1.x (ZeroLink, Chaumian CoinJoin): many equal outputs at a base denomination
  around 0.1 BTC, "mixing levels" at about 2, 4, 8 … times that, the coordinator fee output.
* ``wasabi2``: Wasabi 2.x (WabiSabi): many inputs and outputs, most outputs at the standard
  denominations (powers of 2, powers of 3 and twice them, 1-2-5 powers of 10, at least 5,000 sat), several
  of them repeated; outputs at most 0.1% below a denomination count too, at a lower confidence.
* ``joinmarket``: k >= 3 equal outputs (1 taker + k-1 makers), 2k-1 or 2k outputs in all (the makers'
  changes plus maybe the taker's), at least k inputs.
* ``generic``: k >= 3 equal outputs to distinct fresh addresses paid by at least k distinct input
  addresses, and few other outputs (each participant's change plus a fee); confidence grows with k. Or:
  three or more groups of equal outputs covering most outputs, paid by five or more input addresses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

BTC = 100_000_000
WHIRLPOOL_POOLS: tuple[int, ...] = (100_000, 1_000_000, 5_000_000, 50_000_000)  # 0.001 0.01 0.05 0.5 BTC
# Wasabi 1.x coordinator fee addresses (GraphSense TagPack wasabi_collector.yaml, after nopara73's
# WasabiVsSamourai CoinJoinIndexer)
WASABI_COORDINATORS: tuple[str, ...] = (
    "bc1qs604c7jv6amk4cxqlnvuxv26hv3e48cds4m0ew",
    "bc1qa24tsgchvuxsaccp8vrnkfd85hrcpafg20kmjw",
)
WASABI2_MIN_OUTPUT = 5_000
MIN_EQUAL = 5  # equal outputs a structural verdict needs
MIN_PARTIES = 5  # distinct input addresses a structural verdict needs
NOT_MULTI_PARTY = frozenset({"whirlpool_tx0"})  # recorded, but its inputs belong to one owner

COLUMNS = ("chain", "txid", "height", "protocol", "confidence", "equal_value", "equal_count",
           "input_count", "output_count", "reason")
SCHEMA = pa.schema([
    ("chain", pa.string()), ("txid", pa.string()), ("height", pa.int64()), ("protocol", pa.string()),
    ("confidence", pa.float64()), ("equal_value", pa.int64()), ("equal_count", pa.int32()),
    ("input_count", pa.int32()), ("output_count", pa.int32()), ("reason", pa.string()),
])


def _standard_denominations(lo: int = WASABI2_MIN_OUTPUT, hi: int = 1_000 * BTC) -> frozenset[int]:
    out: set[int] = set()
    for base, coefs in ((2, (1,)), (3, (1, 2)), (10, (1, 2, 5))):
        p = 1
        while p <= hi:
            for c in coefs:
                if lo <= c * p <= hi:
                    out.add(c * p)
            p *= base
    return frozenset(out)


WASABI2_DENOMINATIONS = _standard_denominations()
_DENOMS_SORTED = sorted(WASABI2_DENOMINATIONS)


@dataclass(frozen=True, slots=True)
class TxIn:
    value: int | None  # None when the spent output is not known (its block was not ingested)
    address_id: int  # -1 when unknown or not an address
    script_type: str | None
    prev_tx: int = -1  # a key of the spent output's transaction (its prior owner's), -1 when not given


@dataclass(frozen=True, slots=True)
class TxOut:
    value: int
    address_id: int
    script_type: str | None
    is_op_return: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    protocol: str
    confidence: float
    equal_value: int
    equal_count: int
    reason: str


def _near_denomination(v: int) -> bool:
    """A standard denomination, or at most 0.1% below one (a per-output fee taken off it)."""
    import bisect

    i = bisect.bisect_left(_DENOMS_SORTED, v)
    return i < len(_DENOMS_SORTED) and _DENOMS_SORTED[i] - v <= _DENOMS_SORTED[i] // 1000


def _segwit(types: Iterable[str | None]) -> bool:
    ts = [t for t in types]
    return bool(ts) and all(t in ("p2wpkh", "p2tr", "p2wsh") for t in ts)


def classify(inputs: Sequence[TxIn], outputs: Sequence[TxOut], *,
             coordinator_ids: frozenset[int] = frozenset()) -> Verdict | None:
    """The CoinJoin protocol a transaction follows, or None (a coinbase must not be passed)."""
    pay = [o for o in outputs if not o.is_op_return]
    has_op_return = any(o.is_op_return for o in outputs)
    n_in, n_out = len(inputs), len(pay)
    if n_in == 0 or n_out == 0:
        return None
    counts = Counter(o.value for o in pay if o.value > 0)
    if not counts:
        return None
    # the most repeated value; ties go to the larger value (change is usually smaller)
    eq_value, eq_count = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    in_addrs = {i.address_id for i in inputs if i.address_id >= 0}
    known_in = [i.value for i in inputs if i.value is not None]

    # --- Whirlpool mix: 5 x 5 at a pool denomination -------------------------------------------------
    if n_in == 5 and n_out == 5 and eq_count == 5 and eq_value in WHIRLPOOL_POOLS and not has_op_return:
        d = eq_value
        slack = min(d // 5, 1_000_000)
        if all(d <= v <= d + slack for v in known_in):
            out_addrs = {o.address_id for o in pay}
            if len(out_addrs) == 5 and not (out_addrs & in_addrs):
                segwit = _segwit(o.script_type for o in pay)
                conf = 0.99 if segwit and len(known_in) == 5 else 0.95 if segwit else 0.9
                return Verdict("whirlpool", conf, d, 5,
                               f"5 inputs, 5 outputs of exactly {d} sat (Whirlpool pool)")
    # --- Whirlpool tx0: OP_RETURN + premix outputs just above a pool denomination ----------------------
    if has_op_return and n_out >= 3:
        for d in WHIRLPOOL_POOLS:
            slack = min(d // 5, 1_000_000)
            premix = Counter(o.value for o in pay if d < o.value <= d + slack)
            if premix:
                pv, pk = max(premix.items(), key=lambda kv: (kv[1], kv[0]))
                # premixes are native SegWit (Samourai, Sparrow), and a coordinator fee output comes
                # besides them and the change; without these, other OP_RETURN protocols look alike
                # (Stacks block commits pay two equal P2SH/P2PKH outputs next to an OP_RETURN)
                pm = [o for o in pay if o.value == pv]
                if n_out >= pk + 2 and all(o.script_type == "p2wpkh" for o in pm):
                    conf = 0.85 if pk >= 2 else 0.6
                    return Verdict("whirlpool_tx0", conf, pv, pk,
                                   f"OP_RETURN and {pk} premix output(s) of {pv} sat for the {d} sat pool")
    if n_in < 2 or eq_count < 2:
        return None
    # --- Wasabi 1.x: many equal outputs near 0.1 BTC, mixing levels, coordinator fee -----------------------
    if eq_count >= 10 and BTC // 20 <= eq_value <= BTC // 5 and n_in >= eq_count:
        levels = 0
        for k in range(1, 8):
            target = eq_value << k
            if any(abs(v - target) <= target // 200 and c >= 2 for v, c in counts.items()):
                levels += 1
        coord = any(o.address_id in coordinator_ids for o in pay)
        if coord or levels or _segwit(o.script_type for o in pay):
            conf = 0.99 if coord else 0.97 if levels else 0.85
            why = ("coordinator fee output" if coord else f"{levels} mixing level(s)" if levels
                   else "all outputs native SegWit")
            return Verdict("wasabi1", conf, eq_value, eq_count,
                           f"{eq_count} equal outputs of {eq_value} sat, {why} (Wasabi 1.x)")
    # --- Wasabi 2.x (WabiSabi): standard denominations ---------------------------------------------------
    if n_in >= 5 and n_out >= 10:
        exact = sum(1 for o in pay if o.value in WASABI2_DENOMINATIONS)
        near = sum(1 for o in pay if _near_denomination(o.value))
        repeated = sum(1 for v, c in counts.items() if c >= 2 and _near_denomination(v))
        if near >= 0.5 * n_out and repeated >= 2 and (n_in >= 20 or repeated >= 3):
            segwit = _segwit(o.script_type for o in pay)
            conf = (0.95 if segwit else 0.85) if exact >= 0.5 * n_out else 0.8
            how = "at" if exact >= 0.5 * n_out else "at or just below"
            return Verdict("wasabi2", conf, eq_value, eq_count,
                           f"{near}/{n_out} outputs {how} standard denominations, {repeated} repeated (WabiSabi)")
    # --- JoinMarket and generic equal-output mixes ----------------------------------------------------------
    k = eq_count
    eq_outs = [o for o in pay if o.value == eq_value]
    eq_addrs = {o.address_id for o in eq_outs}
    distinct_outputs = len(eq_addrs) == k and not (eq_addrs & in_addrs)
    if k >= 3 and distinct_outputs and n_in >= k:
        if n_out in (2 * k - 1, 2 * k) and len({o.script_type for o in eq_outs}) == 1:
            return Verdict("joinmarket", 0.8, eq_value, k,
                           f"{k} equal outputs of {eq_value} sat and {n_out - k} changes (JoinMarket shape)")
        if len(in_addrs) >= k and n_out <= 2 * k + 1:
            conf = min(0.4 + 0.05 * k, 0.75)
            return Verdict("generic", conf, eq_value, k,
                           f"{k} equal outputs of {eq_value} sat from {len(in_addrs)} input addresses")
    # --- structural: a dominant equal (or standard-denomination) value among many owners' inputs ------------
    v = _structural(inputs, pay, counts, eq_value, eq_count, in_addrs, coordinator_ids)
    if v is not None:
        return v
    # several groups of equal outputs covering most outputs, paid by several input addresses
    groups = [(v, c) for v, c in counts.items() if c >= 2]
    grouped = sum(c for _, c in groups)
    if len(groups) >= 3 and grouped >= 0.6 * n_out and len(in_addrs) >= 5:
        return Verdict("generic", 0.7, eq_value, eq_count,
                       f"{len(groups)} groups of equal outputs cover {grouped}/{n_out} outputs, "
                       f"{len(in_addrs)} input addresses")
    return None


def _structural(inputs: Sequence[TxIn], pay: Sequence[TxOut], counts: Counter, eq_value: int, eq_count: int,
                in_addrs: set[int], coordinator_ids: frozenset[int]) -> Verdict | None:
    """A multi-party round recognised by its structure rather than one count rule.

    A whale (or the thief) registering several equal outputs per input breaks "k equal outputs need k
    inputs" (WabiSabi and JoinMarket makers do this routinely), so the evidence is weighed instead:

    * many inputs from distinct prior owners: at least ``MIN_PARTIES`` distinct input addresses (an input
      whose address is unknown counts by the transaction that created its coin);
    * a dominant equal value: at least ``MIN_EQUAL`` outputs of one value, to distinct addresses none of
      which is an input's, making up at least a quarter of the outputs (a batch payout repeats an amount
      a few times among many different ones);
    * few unexplained outputs: besides the equal value and standard denominations, at most one output per
      distinct input address plus one (each participant's change, a coordinator fee); a batch payout pays
      many customers different amounts from a few coins;
    * supporting signs, each a reason: the equal value is a standard denomination, several repeated
      denominations (WabiSabi's decomposition), an output to a known coordinator, inputs each worth
      less than the equal outputs together (nobody could have paid them alone), uniform script types of
      the equal outputs.

    The confidence grows with the supporting signs; the rule never needs more inputs than equal outputs.
    """
    n_out = len(pay)
    k = eq_count
    parties = _parties(inputs)
    if k < MIN_EQUAL or parties < MIN_PARTIES or 4 * k < n_out:
        return None
    eq_outs = [o for o in pay if o.value == eq_value]
    eq_addrs = {o.address_id for o in eq_outs}
    if len(eq_addrs) < k or eq_addrs & in_addrs:
        return None
    # the other outputs are the participants' changes (at most one each) and a coordinator fee, or, in
    # WabiSabi, further standard denominations; a batch payout's other outputs are its many customers
    other = sum(1 for o in pay if o.value != eq_value and not _near_denomination(o.value)
                and o.address_id not in coordinator_ids)
    if other > parties + 1:
        return None
    known = [i.value for i in inputs if i.value is not None]
    reasons = [f"{k}/{n_out} outputs of {eq_value} sat to distinct fresh addresses",
               f"inputs from {parties} distinct prior owners (input addresses, or funding transactions where "
               "the address is unknown)"]
    score = 0.55
    if len(inputs) < k:
        reasons.append(f"{k - len(inputs)} more equal outputs than inputs (a participant took several)")
    if known and len(known) == len(inputs) and max(known) < k * eq_value:
        reasons.append("no single input could pay the equal outputs")
        score += 0.05
    if _near_denomination(eq_value):
        reasons.append("the equal value is a standard denomination")
        score += 0.1
    repeated = [val for val, c in counts.items() if c >= 2 and val != eq_value and _near_denomination(val)]
    if len(repeated) >= 2:
        reasons.append(f"{len(repeated)} further repeated standard denominations (WabiSabi decomposition)")
        score += 0.1
    if any(o.address_id in coordinator_ids for o in pay):
        reasons.append("an output to a known coordinator")
        score += 0.15
    if len({o.script_type for o in eq_outs}) == 1:
        reasons.append("the equal outputs share one script type")
        score += 0.05
    if parties >= 20:
        score += 0.1
    return Verdict("equal_output", round(min(score, 0.95), 2), eq_value, k, "; ".join(reasons))


def _parties(inputs: Sequence[TxIn]) -> int:
    """Distinct prior owners of the inputs: distinct input addresses; an input whose address is unknown
    counts by the transaction that created its coin (two coins of one funding transaction may be one
    owner's)."""
    addrs = {i.address_id for i in inputs if i.address_id >= 0}
    prevs = {i.prev_tx for i in inputs if i.address_id < 0 and i.prev_tx >= 0}
    return len(addrs) + len(prevs)


# --- over the workspace ----------------------------------------------------------------------------------

# candidates, selected in SQL before anything reaches Python: transactions with two or more inputs, three
# or more outputs and a repeated output value (every verdict but Whirlpool tx0 needs them: Whirlpool 5 x 5,
# Wasabi >= 10 equal outputs, WabiSabi >= 10 outputs, JoinMarket/generic >= 3 equal outputs, the
# equal-groups rule >= 6 outputs), or with an OP_RETURN output (Whirlpool tx0); only these get their
# inputs and outputs gathered into lists. The integer filter on utxo_transactions runs first, so the
# (txid, value) grouping only sees the outputs of the few transactions that pass it.
_CANDIDATES_SQL = """
CREATE OR REPLACE TEMP TABLE _cj_cand AS
SELECT DISTINCT o.txid FROM utxo_outputs o
WHERE o.chain = $chain AND o.height > $lo AND o.height <= $hi AND o.value > 0
  AND o.txid IN (SELECT txid FROM utxo_transactions WHERE chain = $chain AND height > $lo AND height <= $hi
                 AND NOT is_coinbase AND input_count >= 2 AND output_count >= 3)
GROUP BY o.txid, o.value HAVING count(*) >= 2
UNION
SELECT o.txid FROM utxo_outputs o
WHERE o.chain = $chain AND o.height > $lo AND o.height <= $hi
  AND (o.op_return IS NOT NULL OR o.script_type IN ('nulldata', 'op_return'))
  AND o.txid IN (SELECT txid FROM utxo_transactions WHERE chain = $chain AND height > $lo AND height <= $hi
                 AND NOT is_coinbase)
"""

_LISTS_SQL = """
WITH o AS (
    SELECT txid, any_value(height) AS height,
           list(value ORDER BY n) AS ov, list(address_id ORDER BY n) AS oa,
           list(script_type ORDER BY n) AS ot, list(op_return IS NOT NULL OR script_type = 'nulldata'
                                                   OR script_type = 'op_return' ORDER BY n) AS oo
    FROM utxo_outputs WHERE chain = $chain AND height > $lo AND height <= $hi
      AND txid IN (SELECT txid FROM _cj_cand)
    GROUP BY txid
), i AS (
    SELECT txid, list(value ORDER BY n) AS iv, list(address_id ORDER BY n) AS ia,
           list(script_type ORDER BY n) AS it, list(hash(prev_txid) >> 2 ORDER BY n) AS ip
    FROM utxo_inputs WHERE chain = $chain AND height > $lo AND height <= $hi
      AND txid IN (SELECT txid FROM _cj_cand)
    GROUP BY txid
)
SELECT lower(hex(o.txid)) AS txid, o.height, o.ov, o.oa, o.ot, o.oo, i.iv, i.ia, i.it, i.ip
FROM o JOIN i ON i.txid = o.txid
ORDER BY o.height, o.txid
"""


def coordinator_ids(con: duckdb.DuckDBPyConnection, chain: str) -> frozenset[int]:
    """Address ids of the known CoinJoin coordinators (built in, plus tags of category
    coinjoin_coordinator) on this chain."""
    rows = con.execute(
        "SELECT address_id FROM addresses WHERE chain = $chain AND (list_contains($known, address) "
        "OR address IN (SELECT address FROM tags WHERE chain = $chain "
        "AND category = 'coinjoin_coordinator'))",
        {"chain": chain, "known": list(WASABI_COORDINATORS)}).fetchall()
    return frozenset(int(r[0]) for r in rows)


def detect_range(con: duckdb.DuckDBPyConnection, chain: str, lo: int, hi: int) -> pa.Table:
    """Verdicts for the transactions of blocks ``lo < height <= hi`` (an open DuckDB workspace
    connection); one row per transaction detected, columns :data:`SCHEMA`."""
    coords = coordinator_ids(con, chain)
    params = {"chain": chain, "lo": lo, "hi": hi}
    con.execute(_CANDIDATES_SQL, params)
    rel = con.execute(_LISTS_SQL, params)
    cols: dict[str, list] = {c: [] for c in COLUMNS}
    while True:
        batch = rel.fetchmany(10_000)
        if not batch:
            break
        for txid, height, ov, oa, ot, oo, iv, ia, it, ip in batch:
            outs = [TxOut(int(v or 0), -1 if a is None else int(a), t, bool(r))
                    for v, a, t, r in zip(ov, oa, ot, oo, strict=True)]
            ins = [TxIn(None if v is None else int(v), -1 if a is None else int(a), t, int(p))
                   for v, a, t, p in zip(iv, ia, it, ip, strict=True)]
            verdict = classify(ins, outs, coordinator_ids=coords)
            if verdict is None:
                continue
            for c, v in (("chain", chain), ("txid", txid), ("height", height),
                         ("protocol", verdict.protocol), ("confidence", verdict.confidence),
                         ("equal_value", verdict.equal_value), ("equal_count", verdict.equal_count),
                         ("input_count", len(ins)), ("output_count", len(outs)), ("reason", verdict.reason)):
                cols[c].append(v)
    return pa.table(cols, schema=SCHEMA)


def detect_coinjoins(ws, chain: str, *, lo: int = -1, hi: int | None = None) -> pa.Table:
    """CoinJoin verdicts for a chain's stored transactions (all blocks unless ``lo < height <= hi``);
    columns chain, txid, height, protocol, confidence, then equal_value, equal_count, input_count,
    output_count, reason. Usable without running ``fundtrail cluster``."""
    con = ws.connect()
    try:
        if hi is None:
            hi = con.execute("SELECT coalesce(max(height), -1) FROM utxo_outputs WHERE chain = $c",
                             {"c": chain}).fetchall()[0][0]
        return detect_range(con, chain, lo, int(hi))
    finally:
        con.close()

"""Which edges a block range contributes to the clustering: the one eligibility function every engine runs.

:func:`range_edges` walks blocks ``lo < height <= hi`` of a UTXO chain over an open workspace connection and
yields, in this order, the range's CoinJoin verdicts (``coinjoin_txs`` rows), its co-spend edges (integer
record batches, the multi-party CoinJoins left out), its change verdicts (``change_outputs`` rows) and its
change edges. The embedded service (cluster/service.py) feeds these parts to its union-find range after
range; the Spark job (cluster/distributed.py) runs the very same function inside its tasks, one block range
per task (``mapInArrow``). Whatever the CoinJoin guard and the change heuristics decide, both engines see
the same edges, so their partitions agree by construction.

Every edge has a place in one global order, :func:`order_key`: co-spend edges by (height, tx_index, b),
then change edges by (height, tx_index). A union-find fed the edges in that order records the same merges
(a minimum spanning forest under that order, as Kruskal's algorithm) whichever engine runs it, which is why
the merge evidence is the same too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from fundtrail.cluster import change as change_mod
from fundtrail.cluster import coinjoin as coinjoin_mod
from fundtrail.store import schema as S

COINJOINS, COSPEND, CHANGE_OUTPUTS, CHANGE = "coinjoins", "cospend", "change_outputs", "change"
PHASE = {COSPEND: 0, CHANGE: 1}  # co-spend edges join before every change edge

_COSPEND_SQL = """
    WITH i AS (
        SELECT DISTINCT i.txid, i.address_id AS b
        FROM utxo_inputs i
        WHERE i.chain = $chain AND i.height > $lo AND i.height <= $hi AND i.address_id >= 0
          AND i.txid NOT IN (SELECT txid FROM _skip)
    ), t AS (
        SELECT txid, height, tx_index FROM utxo_transactions
        WHERE chain = $chain AND height > $lo AND height <= $hi AND NOT is_coinbase
    ), e AS (
        SELECT t.height, t.tx_index, min(i.b) OVER (PARTITION BY i.txid) AS a, i.b
        FROM i JOIN t ON t.txid = i.txid
    )
    SELECT height, tx_index, a, b FROM e WHERE a <> b ORDER BY height, tx_index, b
"""


@dataclass(frozen=True, slots=True)
class RangePart:
    """One part of a range's output: ``kind`` is one of COINJOINS, COSPEND, CHANGE_OUTPUTS, CHANGE."""

    kind: str
    data: pa.Table | pa.RecordBatch


def multi_party_txids(coinjoins: pa.Table) -> list[str]:
    """The transactions whose inputs must not be joined: every CoinJoin verdict but the single-owner ones."""
    return pc.filter(coinjoins["txid"], pc.invert(pc.is_in(
        coinjoins["protocol"], pa.array(sorted(coinjoin_mod.NOT_MULTI_PARTY))))).to_pylist()


def cospend_batches(con: duckdb.DuckDBPyConnection, chain: str, lo: int, hi: int,
                    skip_txids: Iterable[str], batch_rows: int = 1 << 20) -> Iterator[pa.RecordBatch]:
    """The co-spend edges of blocks ``lo < height <= hi`` as record batches of fixed-width integers
    (height, tx_index, a, b), in (height, tx_index, b) order: for each transaction (not coinbase, not in
    ``skip_txids``) with k distinct input addresses, k-1 edges from the smallest id to the others. No txid
    reaches Python: a transaction is (height, tx_index) until its edge becomes evidence."""
    con.register("_skip", pa.table({"txid": S.txid_array(skip_txids).drop_null()}))  # as stored: binary
    try:
        reader = con.sql(_COSPEND_SQL, params={"chain": chain, "lo": lo, "hi": hi}).to_arrow_reader(batch_rows)
        yield from reader
    finally:
        con.unregister("_skip")


def range_edges(con: duckdb.DuckDBPyConnection, chain: str, lo: int, hi: int,
                change_heuristics: tuple[str, ...], *, seen_through: int,
                batch_rows: int = 1 << 20) -> Iterator[RangePart]:
    """The parts blocks ``lo < height <= hi`` contribute (see the module docstring). ``seen_through`` is
    the last block whose spends the look-ahead change heuristics may see (the tip)."""
    cj = coinjoin_mod.detect_range(con, chain, lo, hi)
    yield RangePart(COINJOINS, cj)
    multi = multi_party_txids(cj)
    for batch in cospend_batches(con, chain, lo, hi, multi, batch_rows):
        yield RangePart(COSPEND, batch)
    report, cedges = change_mod.detect_range(con, chain, lo, hi, multi, change_heuristics,
                                             seen_through=seen_through)
    yield RangePart(CHANGE_OUTPUTS, report)
    yield RangePart(CHANGE, cedges)


def order_key(phase: int, height: int, tx_index: int, b: int) -> tuple[int, int, int, int]:
    """An edge's place in the order every engine unions edges in (see the module docstring)."""
    return (phase, height, tx_index, b if phase == PHASE[COSPEND] else 0)

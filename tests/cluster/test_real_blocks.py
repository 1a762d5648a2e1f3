"""Clustering on real mainnet blocks from ../shared/data/bitcoin, ingested by the Bitcoin ingester."""

from __future__ import annotations

from pathlib import Path

import pytest

from fundtrail.cli.main import main
from fundtrail.cluster.evidence import why
from fundtrail.cluster.service import cluster
from fundtrail.store import Workspace
from tests.conftest import shared_path

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def ws_277647(tmp_path_factory) -> Workspace:
    from fundtrail.ingest.bitcoin.service import ingest_block_files

    tmp = tmp_path_factory.mktemp("b277647")
    d = tmp / "d"
    d.mkdir()
    (d / "277647.dat.bz2").symlink_to(shared_path("bitcoin", "btcd", "277647.dat.bz2"))
    ws = Workspace(tmp / "ws")
    ingest_block_files(ws, d, "mainnet", prevouts=shared_path("bitcoin", "btcd", "277647.utxostore.bz2"))
    cluster(ws)
    return ws


@pytest.fixture(scope="module")
def ws_702861(tmp_path_factory) -> Workspace:
    from fundtrail.ingest.bitcoin import serialize as Z
    from fundtrail.ingest.bitcoin.service import ingest_block_files
    from fundtrail.model.chain import MAINNET

    tmp = tmp_path_factory.mktemp("b702861")
    raw = next(shared_path("bitcoin", "rust-bitcoin").glob("*.raw")).read_bytes()
    d = tmp / "d"
    d.mkdir()
    (d / "blk00000.dat").write_bytes(Z.frame(raw, MAINNET))
    ws = Workspace(tmp / "ws")
    ingest_block_files(ws, d, "mainnet")
    cluster(ws)
    return ws


def test_block_277647_cospend_clusters(ws_277647):
    ws = ws_277647
    # every multi-input transaction's input addresses share a cluster
    bad = ws.query("""
        SELECT i.txid FROM inputs i JOIN clusters c ON c.chain = i.chain AND c.address = i.address
        JOIN transactions t ON t.txid = i.txid WHERE NOT t.is_coinbase
        GROUP BY i.txid HAVING count(DISTINCT c.cluster_id) > 1""")
    assert bad.num_rows == 0
    sizes = ws.query("SELECT count(*) AS n FROM clusters GROUP BY cluster_id ORDER BY n DESC")["n"].to_pylist()
    assert sizes[0] == 44 and sum(n - 1 for n in sizes) == 185  # 185 merges, the largest of 44 addresses
    # one evidence row per merge, each a real co-spending transaction of the block
    ev = ws.query("SELECT e.txid, t.height FROM cluster_evidence e JOIN transactions t USING (txid)")
    assert ev.num_rows == 185 and set(ev["height"].to_pylist()) == {277647}
    # outputs are never merged with the spender without change heuristics
    assert ws.query("SELECT count(*) AS n FROM cluster_evidence WHERE heuristic <> 'cospend'")["n"][0].as_py() == 0


def test_cluster_why_explains_a_real_merge(ws_277647, capsys):
    ws = ws_277647
    row = ws.query("""
        SELECT i.txid, min(i.address) AS a, max(i.address) AS b FROM inputs i
        GROUP BY i.txid HAVING count(DISTINCT i.address) >= 2 ORDER BY i.txid LIMIT 1""").to_pylist()[0]
    ex = why(ws, "bitcoin", row["a"], row["b"])
    assert ex.same_cluster and ex.steps
    # every step is a transaction that spends from both of its addresses
    for s in ex.steps:
        spenders = set(ws.query(f"SELECT address FROM inputs WHERE txid = '{s.txid}'")["address"].to_pylist())
        assert {s.from_address, s.to_address} <= spenders
    assert ex.steps[0].from_address == row["a"] and ex.steps[-1].to_address == row["b"]
    assert main(["cluster", "why", row["a"], row["b"], "--home", str(ws.home)]) == 0
    out = capsys.readouterr().out
    assert ex.steps[0].txid[:12] in out


def test_largest_real_cluster_why(ws_277647):
    ws = ws_277647
    big = ws.query("SELECT cluster_id FROM clusters GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")["cluster_id"][0]
    members = ws.query(f"SELECT address FROM clusters WHERE cluster_id = {big.as_py()} ORDER BY address")
    a, b = members["address"][0].as_py(), members["address"][-1].as_py()
    ex = why(ws, "bitcoin", a, b)
    assert ex.same_cluster and all(s.heuristic == "cospend" and s.height == 277647 for s in ex.steps)


WHIRLPOOL_702861 = {
    "d6b212a663c85b03fb391fe69c59520e61b8a5970678ef7f376889a145e215a6": 1_000_000,
    "e2e92bcdca6104f82deaa31f221d71c47cfdcebe64db924484be98dd9662d29b": 1_000_000,
    "118970792f15cdb90645be0d265ba6c04ab3f3d36a16efe2c4b97801a730b3fa": 1_000_000,
    "c57e3e496a6bb496498b54632b2637472c59feb7a3b0485121140425f115cb51": 100_000,
    "c31d23f5e8b881bc3339a918e71cadc4622f73c5a1f68aadd4741e0da7e66756": 100_000,
    "f35a8cdd9b490213af78692c2bb88dcf17dae0649447c94786f59e3a884cb2ce": 100_000,
    "cba457a11d9674afa95ba12187306d70978baf6396c5ee476272ea41670e8ae2": 100_000,
}
WASABI1_702861 = "5c2f55fc17854a18f447d74e32356c9ff6faf43bf937ed13611857b2bb3fef3a"
STACKS_COMMIT_702861 = "e4f850c17ec4553ca1d53308d1b177e363fd280ff610ae7655524c4f5ddefaaf"
BATCH_PAYOUT_702861 = "c3e847c4e7163ac2bdcd82b36ea6eef2306e1d0e76a432646f631e085e4a75c6"


def test_block_702861_coinjoins(ws_702861):
    """The block's 5x5 Whirlpool mixes and its Wasabi 1.x round (100 inputs, 60 x 0.10944832 BTC with
    mixing levels) are found; a Stacks block commit (OP_RETURN 'X2[' + two equal outputs) is not taken
    for a Whirlpool tx0, and an exchange's 1-input batch payout with repeated amounts is no CoinJoin."""
    got = {r["txid"]: r for r in ws_702861.query("SELECT * FROM coinjoin_txs").to_pylist()}
    for txid, d in WHIRLPOOL_702861.items():
        assert got[txid]["protocol"] == "whirlpool" and got[txid]["equal_value"] == d
    assert got[WASABI1_702861]["protocol"] == "wasabi1" and got[WASABI1_702861]["equal_count"] == 60
    assert STACKS_COMMIT_702861 not in got and BATCH_PAYOUT_702861 not in got
    assert set(got) == set(WHIRLPOOL_702861) | {WASABI1_702861}
    ev = set(ws_702861.query("SELECT txid FROM cluster_evidence")["txid"].to_pylist())
    assert not ev & set(got)


def test_tagpacks_name_no_address_of_these_blocks(ws_702861, ws_277647):
    """What the real Samourai/Wasabi TagPacks can check here: they name addresses (Samourai CoinJoin
    participants, Wasabi coordinator fee addresses), none of which occurs in the two real blocks, so the
    verdicts above are checked against the protocols' structure instead (docs/heuristics.md)."""
    import yaml

    packs = shared_path("tags", "graphsense-tagpacks", "packs")
    names = set()
    for f in ("samourai.yaml", "wasabi_collector.yaml"):
        names |= {t["address"] for t in yaml.safe_load(Path(packs, f).read_text())["tags"]}
    assert len(names) > 1000
    for ws in (ws_702861, ws_277647):
        seen = set(ws.query("SELECT address FROM addresses")["address"].to_pylist())
        assert not names & seen


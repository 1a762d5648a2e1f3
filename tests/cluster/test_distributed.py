"""``--engine spark`` gives the embedded engine's clusters: same partition, same merge evidence, and a valid
``cluster why``; on a simulated world and on real mainnet blocks."""

from __future__ import annotations

import random

import pytest

from fundtrail.cli.main import main
from fundtrail.cluster import distributed
from fundtrail.cluster.evidence import why
from fundtrail.cluster.service import cluster
from fundtrail.engine.base import EngineSpec
from fundtrail.store import Workspace
from tests.conftest import shared_path

SPEC = EngineSpec("spark", "local[2]")


def _partition(ws: Workspace, chain: str) -> set[frozenset[int]]:
    m = ws.read("cluster_members", chain, columns=["address_id", "cluster_id"]).to_pylist()
    groups: dict[int, set[int]] = {}
    for r in m:
        groups.setdefault(r["cluster_id"], set()).add(r["address_id"])
    return {frozenset(g) for g in groups.values()}


def _evidence(ws: Workspace, chain: str) -> list[tuple]:
    t = ws.read("cluster_evidence", chain, columns=["seq", "a_id", "b_id", "txid", "heuristic", "height"])
    return sorted(tuple(r.values()) for r in t.to_pylist())


def _table(ws: Workspace, name: str, chain: str, cols: list[str]) -> list[tuple]:
    return sorted(tuple(r.values()) for r in ws.read(name, chain, columns=cols).to_pylist())


def _check_parity(ws: Workspace, chain: str, change: str = "none") -> dict:
    """Embedded then Spark on the same workspace (both from scratch); every table they write agrees."""
    heur = () if change == "none" else tuple(change.split(","))
    cols = {"coinjoin_txs": ["txid", "protocol"], "change_outputs": ["txid", "n", "heuristic", "used"],
            "cluster_alarms": ["seq", "a_id", "b_id", "size_a", "size_b", "txid"]}
    cluster(ws, chain, full=True, change_heuristics=change, alarm_size=3)
    part, ev = _partition(ws, chain), _evidence(ws, chain)
    tables = {t: _table(ws, t, chain, c) for t, c in cols.items()}
    stats, run = distributed.cluster_utxo(ws, chain, SPEC, change_heuristics=heur, alarm_size=3, measure=True)
    assert _partition(ws, chain) == part  # as partitions: the same sets of addresses
    assert _evidence(ws, chain) == ev  # the same merges, numbered alike
    assert (stats.clusters, stats.merges) == (len(part), len(ev))
    assert not list((ws.home / "staging").glob("*"))  # every staged part was adopted
    for t, c in cols.items():
        assert _table(ws, t, chain, c) == tables[t], t
    # `cluster why` over the Spark run's evidence: a path of real merges inside the cluster
    big = sorted(max(part, key=len))
    addr = {r["address_id"]: r["address"] for r in ws.query(
        f"SELECT address_id, address FROM addresses WHERE chain = '{chain}'").to_pylist()}
    rng = random.Random(7)
    for _ in range(5):
        x, y = rng.sample(big, 2)
        ex = why(ws, chain, addr[x], addr[y])
        assert ex.same_cluster and ex.steps
        assert ex.steps[0].from_address == addr[x] and ex.steps[-1].to_address == addr[y]
    return {"stats": stats, "run": run, "clusters": len(part), "largest": len(big)}


@pytest.fixture(scope="module")
def sim_ws(tmp_path_factory):
    sim = pytest.importorskip("fundtrail.simulate.world")
    from fundtrail.ingest.bitcoin.service import ingest_block_files

    tmp = tmp_path_factory.mktemp("sim")
    sim.simulate(tmp / "world", "demo", 1)
    ws = Workspace(tmp / "ws")
    ingest_block_files(ws, tmp / "world" / "bitcoin" / "blocks", "regtest")
    return ws


@pytest.mark.slow
def test_spark_partition_equals_embedded_on_a_simulated_world(spark, sim_ws):
    out = _check_parity(sim_ws, "regtest", "one_time,address_type")
    assert out["run"].rounds >= 1 and out["stats"].merges > 0


@pytest.mark.slow
@pytest.mark.real
def test_spark_partition_equals_embedded_on_real_blocks(spark, tmp_path, capsys):
    from fundtrail.ingest.bitcoin.service import ingest_block_files

    d = tmp_path / "d"
    d.mkdir()
    (d / "277647.dat.bz2").symlink_to(shared_path("bitcoin", "btcd", "277647.dat.bz2"))
    ws = Workspace(tmp_path / "ws")
    ingest_block_files(ws, d, "mainnet", prevouts=shared_path("bitcoin", "btcd", "277647.utxostore.bz2"))
    out = _check_parity(ws, "bitcoin")
    assert out["largest"] > 2
    # the command: the same partition through `fundtrail cluster --engine spark`
    part = _partition(ws, "bitcoin")
    assert main(["cluster", "--home", str(ws.home), "--engine", "spark", "--spark-master", "local[2]",
                 "--spark-conf", "spark.sql.shuffle.partitions=4", "--json"]) == 0
    assert f'"clusters": {len(part)}' in capsys.readouterr().out
    ws.refresh()  # the command wrote through its own workspace object
    assert _partition(ws, "bitcoin") == part
    # every merge step is a transaction that spends from both of its addresses
    a, b = (r["address"] for r in ws.query(
        "SELECT a.address FROM cluster_members m JOIN addresses a USING (chain, address_id) "
        f"WHERE m.cluster_id = {min(max(part, key=len))} ORDER BY a.address_id LIMIT 2").to_pylist())
    for s in why(ws, "bitcoin", a, b).steps:
        spenders = set(ws.query(f"SELECT address FROM inputs WHERE txid = '{s.txid}'")["address"].to_pylist())
        assert {s.from_address, s.to_address} <= spenders

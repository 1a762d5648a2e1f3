"""Shared fixture of the statistics tests: a simulated world with four thefts by two actors over three years
(``simulate.multi``), ingested, tagged, priced and clustered, with one incident per theft."""

from __future__ import annotations

import pytest

from fundtrail.store import Workspace


@pytest.fixture(scope="session")
def multi_world(tmp_path_factory):
    """(home, doc): the workspace and ``incidents.json`` (per incident: actor, seeds, stolen, expected)."""
    try:
        from fundtrail.attribution.service import import_paths
        from fundtrail.cluster.service import cluster
        from fundtrail.ingest.bitcoin.service import ingest_block_files
        from fundtrail.ingest.evm.service import ingest_evm
        from fundtrail.simulate.multi import simulate_multi
    except ImportError as e:  # pragma: no cover - while another area is not built
        pytest.skip(f"needs {e.name}")
    from fundtrail.incidents import create_incident
    from fundtrail.prices import import_csv

    out = tmp_path_factory.mktemp("multi")
    doc = simulate_multi(out, seed=3)
    home = tmp_path_factory.mktemp("ws")
    ws = Workspace(home)
    ingest_block_files(ws, out / "bitcoin" / "blocks", "regtest")
    ingest_evm(ws, (out / "evm" / "rpc.jsonl").resolve().as_uri(), "simeth")
    import_paths(ws, sorted((out / "tags").glob("*.yaml")))
    import_csv(ws, out / "prices.csv")
    for chain in ("regtest", "simeth"):
        cluster(ws, chain)
    for inc in doc["incidents"]:
        create_incident(ws, inc["name"], ["simeth"], addresses=[s["address"] for s in inc["seeds"]],
                        actor=inc["actor"], since=inc["time"][:10])
    return home, doc

"""Shared fixtures of the report tests: a simulated world ingested into a workspace, with an incident."""

from __future__ import annotations

import json

import pytest

from fundtrail.store import Workspace


def _need(module: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as e:
        pytest.skip(f"{module} is not available yet: {e}")


@pytest.fixture(scope="session")
def sim_world(tmp_path_factory):
    """(home, truth): the demo world (seed 1) ingested, tags and prices imported, incident ``sim-theft``."""
    sim = _need("fundtrail.simulate.world")
    btc = _need("fundtrail.ingest.bitcoin.service")
    evm = _need("fundtrail.ingest.evm.service")
    attr = _need("fundtrail.attribution.service")
    _need("fundtrail.trace.service")
    from fundtrail.incidents import create_incident
    from fundtrail.prices import import_csv

    out = tmp_path_factory.mktemp("world")
    sim.simulate(out, "demo", 1)
    truth = json.loads((out / "truth.json").read_text())
    home = tmp_path_factory.mktemp("ws")
    ws = Workspace(home)
    btc.ingest_block_files(ws, out / "bitcoin" / "blocks", "regtest")
    evm.ingest_evm(ws, (out / "evm" / "rpc.jsonl").as_uri(), truth["chains"]["evm"])
    attr.import_paths(ws, sorted((out / "tags").glob("*.yaml")))
    import_csv(ws, out / "prices.csv")
    seeds = truth["theft"]["seeds"]
    create_incident(ws, "sim-theft", sorted({s["chain"] for s in seeds}),
                    addresses=[f"{s['chain']}:{s['address']}" for s in seeds],
                    actor=truth["theft"].get("perpetrator"), since=truth["theft"]["time"][:10])
    return home, truth




@pytest.fixture(scope="session")
def sim_report(sim_world):
    """The report of ``sim-theft`` under the three models."""
    from fundtrail.report.service import build_report

    home, _ = sim_world
    return build_report(Workspace(home), "sim-theft")

"""A simulated incident in a workspace, built the way a user builds one: simulate, ingest Bitcoin block
files and the EVM RPC recording, import the tags and prices, cluster, create the incident.

``upto`` stops the Bitcoin ingest at that height, so a test can let the workspace move on afterwards
(:func:`catch_up`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fundtrail.store import Workspace


def _need(module: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as e:  # pragma: no cover - while another area is not built
        pytest.skip(f"{module} is not available: {e}")


def simulate(out: Path) -> dict:
    _need("fundtrail.simulate.world").simulate(out, "demo", 1)
    return json.loads((out / "truth.json").read_text())


def build(out: Path, home: Path, truth: dict, upto: int | None = None) -> Workspace:
    btc = _need("fundtrail.ingest.bitcoin.service")
    evm = _need("fundtrail.ingest.evm.service")
    attr = _need("fundtrail.attribution.service")
    clu = _need("fundtrail.cluster.service")
    from fundtrail.incidents import create_incident
    from fundtrail.prices import import_csv

    ws = Workspace(home)
    btc.ingest_block_files(ws, out / "bitcoin" / "blocks", "regtest",
                           max_blocks=None if upto is None else upto + 1)
    evm.ingest_evm(ws, rpc_url(out), truth["chains"]["evm"])
    attr.import_paths(ws, sorted((out / "tags").glob("*.yaml")))
    import_csv(ws, out / "prices.csv")
    for chain in (truth["chains"]["utxo"], truth["chains"]["evm"]):
        clu.cluster(ws, chain)
    seeds = truth["theft"]["seeds"]
    create_incident(ws, "sim-theft", sorted({s["chain"] for s in seeds}),
                    addresses=[f"{s['chain']}:{s['address']}" for s in seeds],
                    actor=truth["theft"].get("perpetrator"), since=truth["theft"]["time"][:10])
    return ws


def catch_up(out: Path, ws: Workspace, truth: dict) -> None:
    """Ingest the rest of the Bitcoin blocks and re-cluster: the workspace moves on."""
    from fundtrail.cluster.service import cluster
    from fundtrail.ingest.bitcoin.service import ingest_block_files

    ingest_block_files(ws, out / "bitcoin" / "blocks", "regtest")
    cluster(ws, truth["chains"]["utxo"])


def rpc_url(out: Path) -> str:
    return (out / "evm" / "rpc.jsonl").resolve().as_uri()


def sources(out: Path, truth: dict) -> dict:
    """export_bundle's raw-transaction sources for the simulated world."""
    return {"blocks_dirs": {truth["chains"]["utxo"]: out / "bitcoin" / "blocks"},
            "rpc": {truth["chains"]["evm"]: rpc_url(out)}}

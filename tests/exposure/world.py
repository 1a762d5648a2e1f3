"""The simulated world the KYT tests share: the demo world (seed 1) ingested, tags and prices imported,
clustered, the theft recorded as incident ``sim-theft``, one ordinary user put on a sanctions list from
2030 on (to test point-in-time sanctions), and the exposure index built. Built once per test session."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from fundtrail.store import Workspace

SANCTION_FROM = "2030-01-01"


@dataclass(frozen=True)
class World:
    home: Path
    truth: dict
    cashout: list[tuple[str, str]]  # (chain, address): the thief's split addresses
    dormant: list[tuple[str, str]]
    deposit_2hops: tuple[str, str]  # an exchange deposit that received stolen funds two hops from the thief
    user: tuple[str, str]  # an ordinary user with no exposure
    later_sanctioned: tuple[str, str]  # an ordinary user listed from SANCTION_FROM on


_CACHE: dict[str, World] = {}


def build_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    if "w" in _CACHE:
        return _CACHE["w"]
    from fundtrail.attribution.service import import_paths
    from fundtrail.cluster.service import cluster
    from fundtrail.exposure.index import build_index
    from fundtrail.incidents import create_incident
    from fundtrail.ingest.bitcoin.service import ingest_block_files
    from fundtrail.ingest.evm.service import ingest_evm
    from fundtrail.prices import import_csv
    from fundtrail.simulate.world import simulate

    out = tmp_path_factory.mktemp("kyt-world")
    simulate(out, "demo", 1)
    truth = json.loads((out / "truth.json").read_text())
    home = tmp_path_factory.mktemp("kyt-ws")
    ws = Workspace(home)
    ingest_block_files(ws, out / "bitcoin" / "blocks", "regtest")
    ingest_evm(ws, (out / "evm" / "rpc.jsonl").as_uri(), truth["chains"]["evm"])
    import_paths(ws, sorted((out / "tags").glob("*.yaml")))
    import_csv(ws, out / "prices.csv")
    for chain in ("regtest", "simeth"):
        cluster(ws, chain)
    seeds = truth["theft"]["seeds"]
    create_incident(ws, "sim-theft", sorted({s["chain"] for s in seeds}),
                    addresses=[f"{s['chain']}:{s['address']}" for s in seeds],
                    actor=truth["theft"].get("perpetrator"), since=truth["theft"]["time"][:10])
    flows = truth["flows"]
    cashout = sorted({(f["chain"], f["to"]) for f in flows if f["step"] == "split"})
    dormant = sorted({(f["chain"], f["to"]) for f in flows if f["step"] == "dormant"})
    split_addrs = {a for _, a in cashout}
    deposit = next((f["chain"], f["to"]) for f in flows
                   if f["step"] == "exchange_deposit" and f["chain"] == "simeth" and f["from"] in split_addrs)
    users = sorted(a for a, o in truth["owners"]["regtest"].items() if o.startswith("user:") and
                   not o.startswith("user:cj"))
    csv = out / "later-sanctions.csv"
    csv.write_text("address,chain,label,category,entity,country,source,confidence,valid_from,sanctioned\n"
                   f"{users[1]},regtest,Later Listed-sim,sanctioned,Later Listed-sim,,test list,1.0,"
                   f"{SANCTION_FROM},true\n")
    import_paths(ws, [csv])
    build_index(ws)
    w = World(home, truth, cashout, dormant, deposit, ("regtest", users[0]), ("regtest", users[1]))
    _CACHE["w"] = w
    return w

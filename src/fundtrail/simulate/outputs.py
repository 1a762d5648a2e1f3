"""Writing a simulated world's public knowledge: GraphSense TagPacks, an ActorPack, and prices.csv.

Only what would be publicly known is tagged: exchange hot wallets, mixer pools, the bridge (contract and
custody wallet), the DEX pair, the mining pool's payout address, and a sanctions list. Deposit addresses are
never tagged: finding them is clustering's job.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from fundtrail.simulate import actors as A
from fundtrail.simulate.params import DAY, T0, TOKEN_SYMBOL

SYNTHETIC = ("Synthetic data from the fundtrail simulator: invented entities and addresses in a simulated "
             "world (chains regtest and simeth); not real.")


def _pack(title: str, tags: list[dict[str, Any]], **header: Any) -> dict[str, Any]:
    return {"title": title, "creator": "fundtrail simulator", "description": SYNTHETIC,
            "lastmod": "2024-03-01", "is_public": True, **header, "tags": tags}


def _tag(address: str, chain: str, e: A.Entity, what: str, **extra: Any) -> dict[str, Any]:
    """One tag; ``label`` is the entity's name (importers take the label as the entity), ``context`` says
    which of its addresses this is."""
    cur = "BTC" if chain == "regtest" else "ETH"
    t = {"address": address, "currency": cur, "network": chain, "label": e.name, "category": e.gs_category,
         "actor": f"{e.id}-sim", "confidence": "ownership", "context": json.dumps({"role": what}),
         "is_cluster_definer": e.category in ("exchange", "exchange_nokyc", "otc_desk", "mining", "bridge")}
    t.update(extra)
    return t


def write_tags(w: Any, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    services: list[dict[str, Any]] = []
    for e in A.EXCHANGES:
        ex = w.exchanges[e.id]
        for o in ex.hot.addresses[:2]:
            services.append(_tag(o.address, "regtest", e, f"{e.name} hot wallet"))
        services.append(_tag(w.evm_hot[e.id], "simeth", e, f"{e.name} hot wallet"))
    for pool in (w.pool10, w.pool100):
        services.append(_tag(pool, "simeth", A.TORNADO, f"{A.TORNADO.name} pool "
                             f"{w.pool_denom[pool] // 10**18} ETH"))
    services.append(_tag(w.bridge, "simeth", A.BRIDGE, f"{A.BRIDGE.name} contract"))
    services.append(_tag(w.bridge_btc.addresses[0].address, "regtest", A.BRIDGE, f"{A.BRIDGE.name} custody"))
    services.append(_tag(w.pair, "simeth", A.DEX, f"{A.DEX.name} ETH/SIMUSD pair"))
    for o in w.pool.addresses[:4]:
        services.append(_tag(o.address, "regtest", A.POOL, f"{A.POOL.name} payout"))
    # the sanctions list (a synthetic stand-in for an SDN list)
    # the sanctions list (a synthetic stand-in for an SDN entry naming the thief's first address). Services
    # are not put on it: a sanctions tag is more specific than a service category and would hide the role.
    sanctions = [_tag(w.theft_seed, "simeth", A.THIEF, "theft address", confidence="authority_data",
                      abuse="sanction")]
    paths = []
    for name, pack in (
        ("sim-services.yaml", _pack("Simulated services (synthetic)", services,
                                    source="https://example.invalid/fundtrail-sim/services")),
        ("sim-sanctions.yaml", _pack("Simulated sanctions list (synthetic)", sanctions,
                                     source="https://example.invalid/fundtrail-sim/sanctions")),
    ):
        p = out / name
        with open(p, "w") as f:
            yaml.safe_dump(pack, f, sort_keys=False)
        paths.append(p)
    actors = {"title": "Simulated actors (synthetic)", "creator": "fundtrail simulator", "description": SYNTHETIC,
              "lastmod": "2024-03-01",
              "actors": [{"id": f"{e.id}-sim", "label": e.name, "uri": f"https://example.invalid/{e.id}-sim",
                          "categories": [e.gs_category], "jurisdictions": [e.country] if e.country else [],
                          "context": {"refs": ["fundtrail simulator"], "fundtrail_category": e.category}}
                         for e in A.ALL]}
    p = out / "sim.actorpack.yaml"
    with open(p, "w") as f:
        yaml.safe_dump(actors, f, sort_keys=False)
    paths.append(p)
    return paths


def write_prices(w: Any, path: Path) -> None:
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["date", "asset", "usd"])
        for d, row in sorted(w.prices.items()):
            date = datetime.fromtimestamp(T0 + d * DAY, UTC).strftime("%Y-%m-%d")
            wr.writerow([date, "BTC", f"{row['BTC']:.2f}"])
            wr.writerow([date, "ETH", f"{row['ETH']:.2f}"])
            wr.writerow([date, TOKEN_SYMBOL, f"{row[TOKEN_SYMBOL]:.4f}"])
            wr.writerow([date, w.token, f"{row[TOKEN_SYMBOL]:.4f}"])

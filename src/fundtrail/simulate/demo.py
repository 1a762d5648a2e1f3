"""``fundtrail demo``: the main job end to end on a simulated (synthetic) world.

simulate a demo world -> ingest its Bitcoin block files and its EVM recording -> import its tags and prices
-> cluster -> trace the theft forward -> write the HTML report; return where the stolen funds went by
exchange and country, with amounts, and how that compares with the world's ground truth.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fundtrail.model.amount import format_units
from fundtrail.progress import NullProgress, Progress
from fundtrail.store import Workspace

INCIDENT = "sim-theft"


@dataclass(slots=True)
class DemoEndpoint:
    entity: str
    category: str
    country: str | None
    chain: str
    asset: str
    symbol: str
    amount: str  # whole units
    expected: str | None  # the truth's amount for the same (entity, chain, asset)
    usd: float | None


@dataclass(slots=True)
class DemoResult:
    home: Path
    world: Path
    report_html: Path | None
    model: str
    endpoints: list[DemoEndpoint]
    by_country: list[tuple[str, float | None]]
    unspent: list[tuple[str, str, str, str]]  # chain, address, symbol, amount
    stolen: list[tuple[str, str]]  # symbol, amount
    timings: dict[str, float] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    accuracy: float | None = None  # share of stolen value (by USD) at the right endpoints vs truth


def _symbol(asset: str, token: str) -> tuple[str, int]:
    if asset == "BTC":
        return "BTC", 8
    if asset == "ETH":
        return "ETH", 18
    if asset == token:
        return "SIMUSD", 6
    return asset, 18


def run_demo(home: str | Path, out_dir: str | Path, *, progress: Progress = NullProgress(),
             model: str = "haircut", seed: int = 1) -> DemoResult:
    from fundtrail.simulate.world import simulate

    home = Path(home)
    out = Path(out_dir)
    timings: dict[str, float] = {}
    missing: list[str] = []

    def step(name: str) -> Any:
        class _T:
            def __enter__(self) -> None:
                self.t = time.monotonic()

            def __exit__(self, *exc: object) -> None:
                timings[name] = round(time.monotonic() - self.t, 2)
        return _T()

    with step("simulate"):
        simulate(out, "demo", seed, progress=progress)
    truth = json.loads((out / "truth.json").read_text())
    token = truth["tokens"][0]["address"]
    if home.exists():
        import shutil

        shutil.rmtree(home)
    ws = Workspace(home)

    from fundtrail.ingest.bitcoin.service import ingest_block_files

    with step("ingest bitcoin"):
        ingest_block_files(ws, out / "bitcoin" / "blocks", "regtest", progress=progress)
    from fundtrail.ingest.evm.service import ingest_evm

    with step("ingest evm"):
        ingest_evm(ws, (out / "evm" / "rpc.jsonl").resolve().as_uri(), "simeth", progress=progress)
    from fundtrail.attribution.service import import_paths

    with step("tags"):
        import_paths(ws, sorted((out / "tags").glob("*.yaml")), progress=progress)
    prices = None
    try:
        from fundtrail.prices import PriceBook
        from fundtrail.prices.importer import import_csv

        with step("prices"):
            import_csv(ws, out / "prices.csv")
            prices = PriceBook.load(ws)
    except ImportError:
        missing.append("fundtrail.prices (USD values)")
    from fundtrail.cluster.service import cluster

    with step("cluster"):
        for chain in ("regtest", "simeth"):
            try:
                cluster(ws, chain, progress=progress)
            except Exception as e:  # noqa: BLE001 - the demo goes on and says which step failed
                missing.append(f"clustering of {chain} failed: {type(e).__name__}: {str(e)[:160]}")
    from fundtrail.model.trace import Seed
    from fundtrail.trace.service import trace

    seeds = [Seed(s["chain"], address=s["address"]) for s in truth["theft"]["seeds"]]
    with step("trace"):
        result = trace(ws, seeds, model=model, prices=prices, progress=progress)
    report_html: Path | None = None
    try:
        from fundtrail.incidents import create_incident
        from fundtrail.report.render import html as html_render
        from fundtrail.report.service import build_report

        with step("report"):
            create_incident(ws, INCIDENT, [s.chain for s in seeds], addresses=[s.address for s in seeds],
                            actor="lazarus-sim", description="Simulated theft from Helix Exchange-sim "
                            "(synthetic world)", replace=True)
            rep = build_report(ws, INCIDENT, primary=model, prices=prices, progress=progress)
            report_html = out / "report.html"
            report_html.write_text(html_render.render(rep), encoding="utf-8")
    except ImportError as e:
        missing.append(f"report ({e.name})")

    exp = {(e["entity"], e["chain"], e["asset"]): int(e["amount"])
           for e in truth["expected"][model]["endpoints"]}
    eps: list[DemoEndpoint] = []
    by_country: dict[str, float | None] = {}
    got_usd = 0.0
    exp_usd = 0.0
    for e in sorted(result.endpoints, key=lambda e: -(e.usd or 0)):
        sym, dec = _symbol(e.asset, token)
        x = exp.get((e.entity, e.chain, e.asset))
        eps.append(DemoEndpoint(e.entity, e.category, e.country, e.chain, e.asset, sym,
                                format_units(e.amount, dec), format_units(x, dec) if x is not None else None,
                                e.usd))
        c = e.country or "unknown"
        if e.usd is not None:
            by_country[c] = (by_country.get(c) or 0.0) + e.usd
        else:
            by_country.setdefault(c, None)
        if x is not None and e.usd is not None and e.amount:
            got_usd += e.usd * min(e.amount, x) / e.amount
    for (ent, chain, asset), x in exp.items():
        match = [e for e in result.endpoints if (e.entity, e.chain, e.asset) == (ent, chain, asset)]
        if match and match[0].usd is not None and match[0].amount:
            exp_usd += match[0].usd * x / match[0].amount
        elif prices is not None:
            sym, dec = _symbol(asset, token)
            t = next((e["last_seen"] for e in truth["expected"][model]["endpoints"]
                      if (e["entity"], e["chain"], e["asset"]) == (ent, chain, asset)), None)
            try:
                from datetime import datetime

                u = prices.usd(chain, asset, sym, datetime.fromisoformat(t.replace("Z", "+00:00")), x, dec)
            except Exception:  # noqa: BLE001 - a price we cannot find just leaves this out
                u = None
            exp_usd += u or 0.0
    unspent = []
    for h in result.unspent:
        sym, dec = _symbol(h.asset, token)
        unspent.append((h.chain, h.address, sym, format_units(h.amount, dec)))
    stolen = []
    for s in truth["theft"]["stolen"]:
        sym, dec = _symbol(s["asset"], token)
        stolen.append((sym, format_units(int(s["amount"]), dec)))
    return DemoResult(home, out, report_html, model, eps, sorted(by_country.items(), key=lambda kv: -(kv[1] or 0)),
                      unspent, stolen, timings, missing, round(got_usd / exp_usd, 4) if exp_usd else None)

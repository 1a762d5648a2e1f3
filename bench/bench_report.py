"""Report latency: ``build_report`` (three taint models) on a simulated theft, and each renderer.

Two parts:

* **world** — the simulator's world at ``scale`` (``demo`` or ``small``) is ingested (Bitcoin block files,
  the EVM JSON-RPC recording, the TagPacks, the price list), an incident is created from the theft's seeds,
  then ``build_report`` (three traces, price lookups, evidence-path lookups) and the table / JSON / CSV /
  HTML renderers are timed (best of ``repeat``).
* **synthetic** — ``assemble_report`` + renderers on a trace result with ``endpoints`` endpoints in 60
  countries (no workspace): how the aggregation, the Sankey layout and the HTML scale with the result's size.

Figures on a shared 2-core machine are indicative.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SYNTHETIC_ENDPOINTS = {"demo": 200, "small": 2_000, "large": 20_000}


def _best(fn, repeat: int) -> tuple[float, object]:  # noqa: ANN001
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _world(scale: str, repeat: int) -> dict:
    from fundtrail.attribution.service import import_paths
    from fundtrail.incidents import create_incident
    from fundtrail.ingest.bitcoin.service import ingest_block_files
    from fundtrail.ingest.evm.service import ingest_evm
    from fundtrail.prices import import_csv
    from fundtrail.report.render import render
    from fundtrail.report.service import build_report
    from fundtrail.simulate.world import simulate
    from fundtrail.store import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        out, home = Path(tmp) / "world", Path(tmp) / "ws"
        t = time.perf_counter()
        summary = simulate(out, scale if scale != "large" else "small", 1)
        truth = json.loads((out / "truth.json").read_text())
        ws = Workspace(home)
        ingest_block_files(ws, out / "bitcoin" / "blocks", "regtest")
        ingest_evm(ws, (out / "evm" / "rpc.jsonl").as_uri(), truth["chains"]["evm"])
        import_paths(ws, sorted((out / "tags").glob("*.yaml")))
        import_csv(ws, out / "prices.csv")
        seeds = truth["theft"]["seeds"]
        create_incident(ws, "bench", sorted({s["chain"] for s in seeds}),
                        addresses=[f"{s['chain']}:{s['address']}" for s in seeds], since=truth["theft"]["time"][:10])
        setup = time.perf_counter() - t
        t = time.perf_counter()
        build_report(Workspace(home), "bench")
        first = time.perf_counter() - t  # includes building the engine's graphs
        build_s, rep = _best(lambda: build_report(Workspace(home), "bench"), repeat)
        res = {"btc_txs": summary.btc_txs, "evm_txs": summary.evm_txs, "setup_s": round(setup, 2),
               "build_report_first_s": round(first, 3), "build_report_3_models_s": round(build_s, 3),
               "endpoints_haircut": len(rep.summary().result.endpoints),  # type: ignore[union-attr]
               "unspent_haircut": len(rep.summary().result.unspent)}  # type: ignore[union-attr]
        for fmt in ("table", "json", "csv", "html"):
            s, text = _best(lambda fmt=fmt: render(rep, fmt), repeat)  # type: ignore[arg-type]
            res[f"render_{fmt}_ms"] = round(s * 1000, 1)
            res[f"{fmt}_kb"] = round(len(str(text).encode()) / 1024, 1)
        return res


def _synthetic(n: int, repeat: int) -> dict:
    sys.path.insert(0, str(REPO))
    from tests.report import fixtures as F

    from fundtrail.report.build import assemble_report
    from fundtrail.report.render import render

    result = F.crowded_result(n_entities=n, n_countries=60)
    s, rep = _best(lambda: assemble_report(F.incident(), [result, result.__class__(
        **{**{f: getattr(result, f) for f in result.__dataclass_fields__}, "model": "poison"})],
        prices=F.prices()), repeat)
    out = {"endpoints": n, "assemble_ms": round(s * 1000, 1)}
    for fmt in ("table", "json", "csv", "html"):
        t, text = _best(lambda fmt=fmt: render(rep, fmt), repeat)  # type: ignore[arg-type]
        out[f"render_{fmt}_ms"] = round(t * 1000, 1)
        out[f"{fmt}_kb"] = round(len(str(text).encode()) / 1024, 1)
    return out


def run(scale: str = "small", repeat: int = 3) -> dict:
    sys.path.insert(0, str(REPO / "src"))
    res: dict = {"scale": scale, "note": "shared 2-core machine: indicative"}
    try:
        res["world"] = _world(scale, repeat)
    except ImportError as e:  # another area not available
        res["world"] = {"skipped": str(e)}
    res["synthetic"] = _synthetic(SYNTHETIC_ENDPOINTS.get(scale, 2_000), repeat)
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return res


if __name__ == "__main__":
    scale = sys.argv[1] if len(sys.argv) > 1 else "small"
    r = run(scale)
    print(f"report benchmark, scale {scale} ({r['note']})")
    for part in ("world", "synthetic"):
        print(f"  {part}:")
        for k, v in r[part].items():
            print(f"    {k:28s} {v}")
    print(f"  peak RSS                     {r['peak_rss_mb']} MB")

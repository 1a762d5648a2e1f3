"""One runner for every benchmark: imports each bench/bench_*.py module, calls ``run(scale)``, prints one
table and writes bench/results/<timestamp>.json.

    python bench/run.py                      # every benchmark at scale "small"
    python bench/run.py --scale demo --only simulate,trace
    python bench/run.py --scale small --scale large --only simulate

Figures are measured on a shared machine (indicative). A benchmark that fails is reported with its error
and the others still run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> dict[str, Path]:
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def load(name: str, path: Path):  # noqa: ANN201
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _flat(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", action="append", help="demo | small | large (repeatable; default small)")
    ap.add_argument("--only", help="comma-separated benchmark names (e.g. simulate,trace)")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    a = ap.parse_args(argv)
    benches = discover()
    if a.list:
        print("\n".join(benches))
        return 0
    names = a.only.split(",") if a.only else list(benches)
    scales = a.scale or ["small"]
    results: list[dict] = []
    for scale in scales:
        for name in names:
            if name not in benches:
                print(f"unknown benchmark {name!r}; known: {', '.join(benches)}", file=sys.stderr)
                return 2
            t = time.monotonic()
            try:
                figures = load(name, benches[name]).run(scale)
                err = None
            except Exception as e:  # noqa: BLE001 - report and go on
                figures, err = {}, f"{type(e).__name__}: {e}"
                traceback.print_exc()
            results.append({"benchmark": name, "scale": scale, "seconds": round(time.monotonic() - t, 2),
                            "figures": figures, "error": err})
    from rich.console import Console
    from rich.table import Table

    table = Table(title="fundtrail benchmarks (shared 2-core machine: indicative figures)")
    for c in ("benchmark", "scale", "figure", "value"):
        table.add_column(c)
    for r in results:
        if r["error"]:
            table.add_row(r["benchmark"], r["scale"], "error", r["error"][:120])
            continue
        for k, v in _flat(r["figures"]).items():
            table.add_row(r["benchmark"], r["scale"], k, str(v))
    Console().print(table)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"{stamp}.json"
    path.write_text(json.dumps({"when": stamp, "python": platform.python_version(), "machine": platform.node(),
                                "results": results}, indent=1, default=str))
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

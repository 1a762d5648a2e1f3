"""Attribution benchmark: import the real tag sources of ../shared/data and resolve labels.

Figures are wall-clock seconds on whatever machine runs it (indicative on a shared machine).
scale "small": the 35 GraphSense TagPacks + the ActorPack, the Etherscan dump, the FBI list, the OFAC files.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def run(scale: str = "small") -> dict:
    from fundtrail.attribution.resolve import resolve_labels
    from fundtrail.attribution.service import import_paths
    from fundtrail.store import Workspace

    figures: dict = {"scale": scale}
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "ws")
        for name, path in (("graphsense_tagpacks_and_actorpack", DATA / "tags" / "graphsense-tagpacks"),
                           ("etherscan_labels", DATA / "tags" / "etherscan-labels"),
                           ("fbi_bybit", DATA / "tags" / "fbi_bybit_2025"),
                           ("ofac_all", DATA / "ofac")):
            if not path.exists():
                figures[name] = None
                continue
            t0 = time.perf_counter()
            stats = import_paths(ws, [path])
            figures[f"{name}_s"] = round(time.perf_counter() - t0, 2)
            figures[f"{name}_tags"] = stats.tags
        for chain in ("bitcoin", "ethereum"):
            t0 = time.perf_counter()
            r = resolve_labels(ws, chain)
            figures[f"resolve_{chain}_s"] = round(time.perf_counter() - t0, 2)
            figures[f"resolve_{chain}_rows"] = r.num_rows
    return figures


if __name__ == "__main__":
    res = run(sys.argv[1] if len(sys.argv) > 1 else "small")
    width = max(len(k) for k in res)
    for k, v in res.items():
        print(f"{k:<{width}}  {v}")

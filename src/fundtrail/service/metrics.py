"""Prometheus metrics: request counts, latency histograms per route, index age and version.

Each worker counts its own requests and writes a snapshot to ``DIR/<pid>.json`` every poll; ``/metrics``
adds the snapshots of the live workers to its own counts, so a scrape sees the whole service.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self, directory: Path | None) -> None:
        self.dir = directory
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self.requests: dict[str, int] = {}  # "method|route|status" -> n
        self.hist: dict[str, list[float]] = {}  # route -> bucket counts + [sum, count]
        self.decisions: dict[str, int] = {}
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            k = f"{method}|{route}|{status}"
            self.requests[k] = self.requests.get(k, 0) + 1
            h = self.hist.get(route)
            if h is None:
                h = self.hist[route] = [0.0] * (len(BUCKETS) + 2)
            for i, b in enumerate(BUCKETS):
                if seconds <= b:
                    h[i] += 1
            h[-2] += seconds
            h[-1] += 1

    def decision(self, d: str, n: int = 1) -> None:
        with self._lock:
            self.decisions[d] = self.decisions.get(d, 0) + n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": dict(self.requests), "hist": {k: list(v) for k, v in self.hist.items()},
                    "decisions": dict(self.decisions)}

    def dump(self) -> None:
        if self.dir is None:
            return
        tmp = self.dir / f".{self.pid}.tmp"
        tmp.write_text(json.dumps(self.snapshot()))
        os.replace(tmp, self.dir / f"{self.pid}.json")

    def _all(self) -> list[dict[str, Any]]:
        snaps = [self.snapshot()]
        if self.dir is None:
            return snaps
        for p in self.dir.glob("*.json"):
            try:
                pid = int(p.stem)
            except ValueError:
                continue
            if pid == self.pid:
                continue
            try:
                os.kill(pid, 0)
            except OSError:
                continue  # a worker that is gone
            try:
                snaps.append(json.loads(p.read_text()))
            except (OSError, ValueError):
                continue
        return snaps

    def render(self, gauges: dict[str, float | None]) -> str:
        req: dict[str, int] = {}
        hist: dict[str, list[float]] = {}
        dec: dict[str, int] = {}
        for s in self._all():
            for k, v in s["requests"].items():
                req[k] = req.get(k, 0) + v
            for k, v in s["hist"].items():
                h = hist.setdefault(k, [0.0] * len(v))
                for i, x in enumerate(v):
                    h[i] += x
            for k, v in s.get("decisions", {}).items():
                dec[k] = dec.get(k, 0) + v
        out = ["# HELP fundtrail_http_requests_total HTTP requests by method, route and status.",
               "# TYPE fundtrail_http_requests_total counter"]
        for k in sorted(req):
            m, r, s = k.split("|")
            out.append(f'fundtrail_http_requests_total{{method="{m}",route="{_esc(r)}",status="{s}"}} {req[k]}')
        out += ["# HELP fundtrail_http_request_duration_seconds Request latency by route.",
                "# TYPE fundtrail_http_request_duration_seconds histogram"]
        for r in sorted(hist):
            h = hist[r]
            for i, b in enumerate(BUCKETS):
                out.append(f'fundtrail_http_request_duration_seconds_bucket{{route="{_esc(r)}",le="{b}"}} {int(h[i])}')
            out.append(f'fundtrail_http_request_duration_seconds_bucket{{route="{_esc(r)}",le="+Inf"}} {int(h[-1])}')
            out.append(f'fundtrail_http_request_duration_seconds_sum{{route="{_esc(r)}"}} {h[-2]:.6f}')
            out.append(f'fundtrail_http_request_duration_seconds_count{{route="{_esc(r)}"}} {int(h[-1])}')
        out += ["# HELP fundtrail_verdicts_total Verdicts by decision.", "# TYPE fundtrail_verdicts_total counter"]
        for k in sorted(dec):
            out.append(f'fundtrail_verdicts_total{{decision="{k}"}} {dec[k]}')
        for name, v in gauges.items():
            out += [f"# TYPE {name} gauge", f"{name} {'NaN' if v is None else v}"]
        return "\n".join(out) + "\n"


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')

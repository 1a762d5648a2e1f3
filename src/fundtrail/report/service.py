"""``build_report``: trace an incident under each taint model and assemble the report.

The traces come from ``fundtrail.trace.service.trace`` (the engine); this service adds what the report
needs around them: the incident, USD prices (``PriceBook``), and the time and value of every transaction
on an evidence path (looked up in the workspace).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import pyarrow.compute as pc

from fundtrail.errors import UsageError
from fundtrail.incidents import Incident, get_incident, is_utxo_chain
from fundtrail.model.trace import TraceResult
from fundtrail.prices.book import PriceBook
from fundtrail.progress import NullProgress, Progress
from fundtrail.report.build import (
    MAX_EVIDENCE_ENDPOINTS,
    MAX_PATHS_PER_ENDPOINT,
    MODEL_ORDER,
    assemble_report,
)
from fundtrail.report.model import Report, Total, TxFact
from fundtrail.store import Workspace
from fundtrail.store.schema import txid_array

Tracer = Callable[..., TraceResult]
MAX_LOOKUP_TXIDS = 5000


def _default_tracer() -> Tracer:
    try:
        from fundtrail.trace.service import trace
    except ImportError as e:  # the engine is another area's; say so plainly
        raise UsageError(f"the tracing engine (fundtrail.trace.service) is not available: {e}") from e
    return trace


def lookup_txs(ws: Workspace, txids: Iterable[str]) -> dict[str, TxFact]:
    """Time, height and value moved of each transaction the workspace holds (others are left out).

    UTXO chains: the transaction's total output value. EVM chains: the sum of its value transfers per asset
    (fees excluded)."""
    wanted = sorted({t for t in txids if t})[:MAX_LOOKUP_TXIDS]
    if not wanted:
        return {}
    out: dict[str, TxFact] = {}
    utxo = [t for t in wanted if not t.startswith("0x")]
    evm = [t for t in wanted if t.startswith("0x")]
    if utxo and ws.row_count("utxo_transactions"):
        keys = txid_array(utxo).drop_null()  # stored txids are binary; the records' are hex
        t = ws.read("utxo_transactions", columns=["chain", "txid", "height", "time", "output_value"],
                    filter=pc.field("txid").isin(keys)) if len(keys) else None
        for r in t.to_pylist() if t is not None else ():
            txid = r["txid"].hex()
            out[txid] = TxFact(txid, r["chain"], r["time"], r["height"],
                               (Total(r["chain"], "BTC", "BTC", 8, int(r["output_value"] or 0)),))
    if evm and ws.row_count("evm_transfers"):
        t = ws.read("evm_transfers", columns=["chain", "txid", "height", "time", "asset", "amount", "amount_raw", "kind"],
                    filter=pc.field("txid").isin(evm))
        tokens = ws.read("tokens", columns=["chain", "address", "symbol", "decimals"]).to_pylist()
        tok = {(r["chain"], r["address"]): r for r in tokens}
        moved: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
        meta: dict[str, tuple[str, int | None, datetime | None]] = {}
        for r in t.to_pylist():
            if r["kind"] in ("fee", "reward"):
                continue
            amount = int(r["amount"]) if r["amount"] is not None else int(r["amount_raw"] or 0)
            moved[r["txid"]][(r["chain"], r["asset"])] += amount
            meta.setdefault(r["txid"], (r["chain"], r["height"], r["time"]))
        for txid, per in moved.items():
            chain, height, time = meta[txid]
            totals = []
            for (c, a), amount in per.items():
                if a == "ETH":
                    totals.append(Total(c, a, "ETH", 18, amount))
                else:
                    info = tok.get((c, a), {})
                    totals.append(Total(c, a, info.get("symbol"), int(info.get("decimals") or 0), amount))
            out[txid] = TxFact(txid, chain, time, height, tuple(totals))
    return out


def _path_txids(results: Sequence[TraceResult], primary: str, incident: Incident) -> list[str]:
    ids: list[str] = [s.txid for s in incident.seeds if s.txid]
    for r in results:
        if r.model != primary:
            continue
        for e in sorted(r.endpoints, key=lambda e: -e.amount)[:MAX_EVIDENCE_ENDPOINTS]:
            for p in e.paths[:MAX_PATHS_PER_ENDPOINT]:
                ids.extend(p)
        for m in r.mixers:
            ids.extend(m.deposits)
    return ids


def build_report(ws: Workspace, incident_name: str, *, models: Sequence[str] = ("poison", "haircut", "fifo"),
                 primary: str | None = None, direction: str = "forward", max_hops: int = 20,
                 dust: int | None = None, follow_mixers: bool = False, prices: PriceBook | None = None,
                 progress: Progress | None = None, tracer: Tracer | None = None,
                 trace_options: dict[str, Any] | None = None, as_of_height: Any = None,
                 tags_as_of: Any = None) -> Report:
    """Trace the incident's seeds under each model and build the report.

    ``tracer`` defaults to ``fundtrail.trace.service.trace``; ``prices`` to the workspace's price table.
    ``as_of_height`` / ``tags_as_of``: report on the workspace as it stood then (trace/asof.py); the
    tracer and the transaction look-ups both read that view."""
    from fundtrail.trace.asof import as_of

    ws = as_of(ws, as_of_height, tags_as_of)
    progress = progress or NullProgress()
    models = tuple(dict.fromkeys(models))
    bad = [m for m in models if m not in MODEL_ORDER]
    if bad or not models:
        raise UsageError(f"unknown taint model(s) {', '.join(bad) or '(none)'}; use {', '.join(MODEL_ORDER)}")
    if direction not in ("forward", "backward"):
        raise UsageError(f"direction must be forward or backward, not {direction!r}")
    incident = get_incident(ws, incident_name)
    for c in incident.chains:
        ws.require_chain(c)
    book = prices if prices is not None else PriceBook.load(ws)
    trace = tracer or _default_tracer()
    task = progress.task(f"tracing incident {incident.name}", total=len(models), unit="models")
    results = []
    for m in models:
        results.append(trace(ws, incident.seeds, model=m, direction=direction, max_hops=max_hops, dust=dust,
                             since=incident.since, follow_mixers=follow_mixers, prices=book,
                             progress=progress, **(trace_options or {})))
        task.advance(1)
    task.close()
    main = primary or ("haircut" if "haircut" in models else models[0])
    facts = lookup_txs(ws, _path_txids(results, main, incident))
    params = {"models": list(models), "direction": direction, "max_hops": max_hops, "dust": dust,
              "follow_mixers": follow_mixers, "utxo_chains": [c for c in incident.chains if is_utxo_chain(c)]}
    if getattr(ws, "pins", None) is not None:
        params["as_of"] = ws.pins  # type: ignore[attr-defined]
    return assemble_report(incident, results, primary=main, prices=book, tx_facts=facts, params=params)

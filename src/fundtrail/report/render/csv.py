"""The report as one flat CSV: a ``section`` column says what each row is (stolen, endpoint, entity,
country, rollup, unspent, mixer, bridge, swap, stopped, timeline, evidence, comparison, conservation), so a
spreadsheet filter on ``section`` gives each table. Amounts are exact decimal strings in whole units.

Cells that a spreadsheet would run as a formula (starting with ``= + - @``, tab or CR, and not a plain
number) are written with a leading ``'`` (docs/security.md, "Output escaping")."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from fundtrail.model.amount import format_units
from fundtrail.report.model import Report, Total, asset_label
from fundtrail.safetext import csv_cell

COLUMNS = ["section", "model", "chain", "asset", "symbol", "amount", "usd", "entity", "category", "country",
           "address", "txid", "hops", "first_seen", "last_seen", "detail"]


def _iso(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t is not None else ""


def _t(total: Total | None) -> dict[str, object]:
    if total is None:
        return {}
    return {"chain": total.chain, "asset": total.asset, "symbol": total.label, "amount": total.units,
            "usd": "" if total.usd is None else f"{total.usd:.2f}"}


def render(report: Report) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()

    def row(section: str, model: str = "", **kv: object) -> None:
        # every cell is neutralised against spreadsheet formulas (fundtrail.safetext.csv_cell, OWASP's rule)
        w.writerow({"section": section, "model": csv_cell(model),
                    **{k: ("" if v is None else csv_cell(v)) for k, v in kv.items()}})

    for t in report.stolen:
        row("stolen", report.primary, **_t(t), detail=f"incident {report.incident.name}")
    for s in report.models:
        m = s.model
        for e in s.result.endpoints:
            row("endpoint", m, chain=e.chain, asset=e.asset, symbol=asset_label(e.asset, e.symbol),
                amount=format_units(e.amount, e.decimals), usd="" if e.usd is None else f"{e.usd:.2f}",
                entity=e.entity, category=e.category, country=e.country, address=" ".join(e.addresses),
                hops=e.hops, first_seen=_iso(e.first_seen), last_seen=_iso(e.last_seen),
                detail=f"{len(e.paths)} paths")
        for g in s.by_country:
            for t in g.totals:
                row("country", m, **_t(t), country=g.key, detail=", ".join(g.entities))
        for g in s.by_category:
            for t in g.totals:
                row("category", m, **_t(t), category=g.key, detail=", ".join(g.entities))
        for r in s.rollup:
            for t in r.totals:
                row("rollup", m, **_t(t), country=r.country, category=" ".join(r.categories), detail=r.sentence)
        for h in s.unspent:
            row("unspent", m, chain=h.chain, asset=h.asset, symbol=asset_label(h.asset, h.symbol),
                amount=format_units(h.amount, h.decimals), usd="" if h.usd is None else f"{h.usd:.2f}",
                address=h.address, entity=h.entity, first_seen=_iso(h.since), detail="freeze candidate")
        for x in s.mixers:
            row("mixer", m, chain=x.chain, asset=x.asset, symbol=report.label(x.chain, x.asset),
                amount=format_units(x.amount, x.decimals), usd="" if x.usd is None else f"{x.usd:.2f}",
                entity=x.mixer, category="mixer", address=x.address, txid=" ".join(x.deposits),
                detail=f"{len(x.candidates)} candidate withdrawals; followed={x.followed}")
        for kind, items in (("bridge", s.bridges), ("swap", s.swaps)):
            for c in items:
                row(kind, m, chain=c.from_chain, asset=c.from_asset, symbol=report.label(c.from_chain, c.from_asset),
                    amount=format_units(c.from_amount, c.from_decimals), entity=c.via, txid=c.in_txid,
                    first_seen=_iso(c.time),
                    detail=f"to {format_units(c.to_amount, c.to_decimals)} {c.to_asset} on {c.to_chain} "
                           f"(out {c.out_txid}; match {c.match}, confidence {c.confidence:.2f})")
        for x in s.stopped:
            row("stopped", m, chain=x.chain, asset=x.asset, symbol=report.label(x.chain, x.asset),
                amount=format_units(x.amount, x.decimals), address=x.address, txid=x.txid, detail=x.reason)
        for b in s.balances:
            row("conservation", m, chain=b.chain, asset=b.asset, amount=format_units(b.traced, b.decimals),
                detail="; ".join(f"{k}={v}" for k, v in b.to_json().items() if k not in ("chain", "asset")))
    for e in report.timeline:
        row("timeline", report.primary, **_t(e.total), txid=e.txid, first_seen=_iso(e.time),
            category=e.kind, detail=e.description)
    for p in report.evidence:
        for i, h in enumerate(p.hops, 1):
            moved = " + ".join(f"{t.units} {t.label}" for t in h.moved)
            row("evidence", report.primary, **_t(p.total), entity=p.entity, category=p.category, country=p.country,
                txid=h.txid, hops=i, first_seen=_iso(h.time),
                detail=f"path {p.index}/{p.of}, hop {i}/{len(p.hops)}" + (f"; tx moved {moved}" if moved else ""))
    for c in report.comparison:
        for m, a in zip(report.model_names, c.amounts, strict=True):
            row("comparison", m, chain=c.chain, asset=c.asset, symbol=c.label,
                amount="" if a is None else format_units(a, c.decimals), detail=c.metric)
    return buf.getvalue()

"""The report as text tables (rich): what ``fundtrail report INCIDENT`` prints on a terminal."""

from __future__ import annotations

import io
from datetime import datetime

from rich.console import Group, RenderableType
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from fundtrail.report.countries import country_name
from fundtrail.report.model import (
    Report,
    asset_label,
    category_label,
    fmt_amount,
    fmt_usd,
    totals_text,
    usd_sum,
)
from fundtrail.safetext import SafeConsole


def _t(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if t is not None else "—"


def _short(txid: str | None, n: int = 10) -> str:
    if not txid:
        return "—"
    return txid if len(txid) <= 2 * n + 1 else f"{txid[:n]}…{txid[-6:]}"


def _table(title: str, *cols: tuple[str, str]) -> Table:
    t = Table(title=title, title_justify="left", title_style="bold", show_lines=False, expand=False)
    for name, justify in cols:
        t.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    return t


def renderables(report: Report) -> list[RenderableType]:
    inc = report.incident
    main = report.summary()
    names = report.model_names
    out: list[RenderableType] = []
    head = Text()
    head.append(f"Incident {inc.name}\n", style="bold")
    head.append(f"chains: {', '.join(inc.chains)}   actor: {inc.actor or '—'}   since: {_t(inc.since)}\n")
    head.append("seeds: " + ", ".join(f"{s.chain}:{s.address or s.txid}" + (f":{s.n}" if s.n is not None else "")
                                      for s in inc.seeds) + "\n")
    head.append(f"models: {', '.join(names)} (primary: {report.primary})   generated {_t(report.generated)} UTC")
    out.append(head)

    su, sp = usd_sum(report.stolen)
    t = _table("Total stolen", ("chain", "left"), ("asset", "left"), ("amount", "right"), ("USD", "right"))
    for x in report.stolen:
        t.add_row(x.chain, x.label, x.display, fmt_usd(x.usd, x.usd_partial))
    t.add_row("", "total", "", fmt_usd(su, sp), style="bold")
    out.append(t)

    if main.rollup:
        txt = Text()
        where = "Where it came from" if main.result.direction == "backward" else "Where it went"
        txt.append(f"{where} ({report.primary}, {main.result.direction})\n", style="bold")
        for r in main.rollup:
            txt.append(f"  • {r.sentence[0].upper() + r.sentence[1:]}\n")
        out.append(txt)

    t = _table("Endpoints by entity (traced amount under each model)", ("entity", "left"), ("category", "left"),
               ("country", "left"), ("asset", "left"), *[(m, "right") for m in names],
               (f"USD ({report.primary})", "right"), ("hops", "right"), ("first seen", "left"),
               ("last seen", "left"))
    by_key = {(e.entity, e.category, e.country, e.total.chain, e.total.asset): e for e in main.by_entity}
    pi = names.index(report.primary)
    for r in report.entity_comparison:
        e = by_key.get((r.entity, r.category, r.country, r.chain, r.asset))
        t.add_row(r.entity + (" ⚠ sanctioned" if e is not None and e.sanctioned else ""),
                  category_label(r.category), r.country or "—", r.label,
                  *[fmt_amount(a, r.decimals) if a is not None else "—" for a in r.amounts],
                  fmt_usd(r.usd[pi]), str(e.hops) if e else "—", _t(e.first_seen) if e else "—",
                  _t(e.last_seen) if e else "—")
    out.append(t)

    for title, groups in (("By category", main.by_category), ("By country", main.by_country)):
        t = _table(f"{title} ({report.primary})", ("", "left"), ("amounts", "right"), ("USD", "right"),
                   ("entities", "left"))
        for g in groups:
            t.add_row(g.label, totals_text(g.totals), fmt_usd(g.usd, g.usd_partial), ", ".join(g.entities))
        out.append(t)

    t = _table(f"Unspent holdings — freeze candidates ({report.primary})", ("chain", "left"), ("address", "left"),
               ("asset", "left"), ("amount", "right"), ("USD", "right"), ("since", "left"), ("entity", "left"))
    for h in main.unspent:
        t.add_row(h.chain, h.address, asset_label(h.asset, h.symbol), fmt_amount(h.amount, h.decimals),
                  fmt_usd(h.usd), _t(h.since), h.entity or "—")
    out.append(t)

    if main.mixers:
        t = _table("Mixers", ("mixer", "left"), ("chain", "left"), ("amount", "right"), ("USD", "right"),
                   ("deposits", "right"), ("followed", "left"), ("candidate withdrawals (confidence)", "left"))
        for m in main.mixers:
            cands = "; ".join(f"{_short(c.txid)} → {c.address[:12]}… {fmt_amount(c.amount, m.decimals)} "
                              f"({c.confidence:.2f})" for c in m.candidates) or "—"
            t.add_row(m.mixer, m.chain, f"{fmt_amount(m.amount, m.decimals)} {report.label(m.chain, m.asset)}",
                      fmt_usd(m.usd), str(len(m.deposits)), "yes" if m.followed else "no", cands)
        out.append(t)
    crossings = [*main.bridges, *main.swaps]
    if crossings:
        t = _table("Bridges and swaps", ("kind", "left"), ("via", "left"), ("from", "right"), ("to", "right"),
                   ("time", "left"), ("match", "left"), ("in tx", "left"), ("out tx", "left"))
        for c in crossings:
            t.add_row(c.kind, c.via,
                      f"{fmt_amount(c.from_amount, c.from_decimals)} {report.label(c.from_chain, c.from_asset)} ({c.from_chain})",
                      f"{fmt_amount(c.to_amount, c.to_decimals)} {report.label(c.to_chain, c.to_asset)} ({c.to_chain})",
                      _t(c.time), f"{c.match.replace('_', ' ')} ({c.confidence:.2f})", _short(c.in_txid),
                      _short(c.out_txid))
        out.append(t)
    if main.result.peel_chains:
        t = _table("Peel chains", ("chain", "left"), ("start tx", "left"), ("hops", "right"), ("in", "right"),
                   ("peeled", "right"), ("peels by destination", "left"))
        for p in main.result.peel_chains:
            t.add_row(p.chain, _short(p.start_txid), str(p.hops), fmt_amount(p.amount_in, p.decimals),
                      fmt_amount(p.peeled, p.decimals),
                      "; ".join(f"{d}: {fmt_amount(a, p.decimals)}" for d, a in p.peels_by_destination))
        out.append(t)

    t = _table(f"Timeline ({report.primary})", ("time (UTC)", "left"), ("event", "left"), ("amount", "right"),
               ("USD", "right"))
    for e in report.timeline:
        t.add_row(_t(e.time), e.description, e.total.text() if e.total else "",
                  fmt_usd(e.total.usd, e.total.usd_partial) if e.total else "")
    out.append(t)

    if report.evidence:
        t = _table(f"Evidence paths ({report.primary}; value each transaction moved)", ("endpoint", "left"),
                   ("path", "left"), ("hop", "right"), ("txid", "left"), ("time (UTC)", "left"),
                   ("moved", "right"))
        for p in report.evidence:
            for i, h in enumerate(p.hops, 1):
                t.add_row(f"{p.entity} ({p.total.text()})" if i == 1 else "", f"{p.index}/{p.of}" if i == 1 else "",
                          str(i), h.txid, _t(h.time), " + ".join(x.text() for x in h.moved) or "—")
        out.append(t)

    t = _table("Models side by side", ("figure", "left"), ("chain", "left"), ("asset", "left"),
               *[(m, "right") for m in names])
    for r in report.comparison:
        t.add_row(r.metric, r.chain, r.label, *[fmt_amount(a, r.decimals) if a is not None else "—" for a in r.amounts])
    out.append(t)

    t = _table("Conservation: traced (+ absorbed, poison) = endpoints + unspent + fees + stopped + mixers + crossed out",
               ("model", "left"), ("chain", "left"), ("asset", "left"), ("traced", "right"), ("absorbed", "right"),
               ("accounted", "right"), ("balanced", "left"))
    for s in report.models:
        for b in s.balances:
            t.add_row(s.model, b.chain, report.label(b.chain, b.asset), fmt_amount(b.traced, b.decimals),
                      fmt_amount(b.absorbed, b.decimals), fmt_amount(b.accounted, b.decimals), "yes" if b.balanced else "NO",
                      style=None if b.balanced else "bold red")
    out.append(t)
    if report.notes:
        txt = Text("Notes\n", style="bold")
        for n in report.notes:
            txt.append(f"  • {n}\n")
        out.append(txt)
    sep: list[RenderableType] = []
    for r in out:
        sep.extend([r, Rule(style="dim")])
    return sep[:-1]


def render(report: Report, *, width: int = 160, color: bool = False) -> str:
    buf = io.StringIO()
    console = SafeConsole(file=buf, width=width, color_system="standard" if color else None, force_terminal=color,
                      highlight=False)
    console.print(Group(*renderables(report)))
    return buf.getvalue()


__all__ = ["country_name", "render", "renderables"]

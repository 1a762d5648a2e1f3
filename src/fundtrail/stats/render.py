"""``fundtrail stats`` as text tables, JSON or CSV (HTML: ``stats/html.py``)."""

from __future__ import annotations

import csv
import io
import json

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from fundtrail.errors import UsageError
from fundtrail.model.amount import format_units
from fundtrail.stats.model import TITLES, GroupRow, StatsResult, method_text, usd_text

FORMATS = ("table", "json", "csv", "html")
def _totals(g: GroupRow) -> str:
    return "; ".join(t.text() for t in g.totals)


def _group_table(title: str, by: tuple[str, ...], rows: list[GroupRow], models: bool,
                 measures: bool = False) -> Table:
    t = Table(title=title, title_justify="left", title_style="bold")
    if models:
        t.add_column("model")
    if measures:
        t.add_column("measure")
    for k in by:
        t.add_column(k)
    t.add_column("amount", overflow="fold")
    t.add_column("USD", justify="right")
    t.add_column("n", justify="right")
    for g in rows:
        t.add_row(*([g.model] if models else []), *([g.measure] if measures else []), *g.key, _totals(g), usd_text(g.usd_cents, g.usd_partial),
                  str(g.facts))
    return t


def renderables(r: StatsResult) -> list[RenderableType]:
    out: list[RenderableType] = [Text(method_text(r), style="dim")]
    first = r.models[0] if r.models else None
    for measure, title in TITLES.items():
        rows = [g for g in r.groups if g.measure == measure and (measure != "stolen" or g.model == first)]
        if rows:
            out.append(_group_table(title + (f" — model {first}" if measure == "stolen" else ""), r.by, rows,
                                    measure not in ("reported", "stolen")))
    t = Table(title="Shares of the stolen value (USD at each movement's day)", title_justify="left",
              title_style="bold")
    for c in ("model", "stolen", "cashed out", "mixers", "unspent"):
        t.add_column(c, justify="right" if c != "model" else "left")
    for s in r.shares:
        def pct(c: int | None, s=s) -> str:
            v = s.share(c)
            return f"{usd_text(c)} ({v:.1%})" if v is not None else usd_text(c)
        t.add_row(s.model, usd_text(s.stolen_cents, s.partial), pct(s.cashed_out_cents), pct(s.mixer_cents),
                  pct(s.unspent_cents))
    out.append(t)
    t = Table(title="Hops and days from theft to cash-out", title_justify="left", title_style="bold")
    for c in ("model", *r.by, "cash-outs", "weighted by", "hops median", "hops p90", "days median", "days p90"):
        t.add_column(c)
    for x in r.timing:
        key = x.key if x.key else tuple("all" for _ in r.by)
        t.add_row(x.model, *key, str(x.arrivals), x.weight, *(("—" if v is None else f"{v:g}") for v in
                                                            (x.hops_median, x.hops_p90, x.days_median, x.days_p90)))
    out.append(t)
    if r.monthly:
        out.append(_group_table("Flows by month (cash-outs, mixers, unspent)", ("month",),
                                sorted(r.monthly, key=lambda g: (g.model, g.key, g.measure)), True, True))
    t = Table(title="Incidents", title_justify="left", title_style="bold")
    for c in ("name", "date", "actor", "victim", "seeds", "traced", "reported USD", "sources"):
        t.add_column(c, overflow="fold")
    for i in r.incidents:
        t.add_row(i.name, i.date.strftime("%Y-%m-%d") if i.date else "—", i.actor or "—", i.victim or "—",
                  str(i.seeds), "yes" if i.traced else "no",
                  usd_text(None if i.reported_loss_usd is None else int(round(i.reported_loss_usd * 100))),
                  (i.sources[0] + (f" (+{len(i.sources) - 1})" if len(i.sources) > 1 else "")) if i.sources else "—")
    out.append(t)
    for n in r.notes:
        out.append(Text(f"note: {n}", style="yellow"))
    return out


def render_table(r: StatsResult, *, width: int = 160) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, highlight=False).print(Group(*renderables(r)))
    return buf.getvalue()


def render_json(r: StatsResult) -> str:
    return json.dumps(r.to_json(), indent=2)


CSV_COLUMNS = ("section", "measure", "model", "group", "chain", "asset", "amount", "usd", "usd_partial",
               "facts", "method")


def render_csv(r: StatsResult) -> str:
    """One row per group and asset (``group`` is ``key=value|…``), then the monthly rows; each row carries
    the method."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    method = method_text(r)
    for section, by, rows in (("groups", r.by, r.groups), ("monthly", ("month",), r.monthly)):
        for g in rows:
            label = "|".join(f"{k}={v}" for k, v in zip(by, g.key, strict=True))
            for t in g.totals:
                w.writerow([section, g.measure, g.model, label, t.chain, t.symbol or t.asset,
                            format_units(t.amount, t.decimals), "" if t.usd_cents is None else f"{t.usd_cents / 100:.2f}",
                            "true" if t.unpriced else "false", g.facts, method])
    return buf.getvalue()


def render(r: StatsResult, fmt: str = "table") -> str:
    if fmt == "table":
        return render_table(r)
    if fmt == "json":
        return render_json(r)
    if fmt == "csv":
        return render_csv(r)
    if fmt == "html":
        from fundtrail.stats.html import render_html

        return render_html(r)
    raise UsageError(f"--format: unknown format {fmt!r}; use {', '.join(FORMATS)}")

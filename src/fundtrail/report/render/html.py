"""The report as ONE self-contained HTML file: inline CSS, inline SVG (the Sankey diagram), a few lines of
inline script for highlighting; no fonts, scripts, images or styles from anywhere else (a Content Security
Policy in the page forbids it), so it opens the same offline, from a mail attachment or a USB stick."""

from __future__ import annotations

from datetime import datetime
from html import escape

from fundtrail.report.countries import country_name
from fundtrail.report.model import (
    Report,
    Total,
    asset_label,
    category_label,
    fmt_amount,
    fmt_usd,
    totals_text,
    usd_sum,
)
from fundtrail.report.sankey import (
    OTHER_COUNTRIES_COLOR,
    OUTCOME_COLORS,
    build_sankey,
    country_colors,
    to_svg,
)

CSS = """
:root { --fg:#1d2330; --muted:#5d6675; --line:#e3e6eb; --bg:#f6f7f9; --card:#fff; --accent:#2f5fa7; --bad:#b3261e; --ok:#1e7b45; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
       color:var(--fg); background:var(--bg); }
header { background:#1f2a3c; color:#fff; padding:22px 32px 18px; }
header h1 { margin:0 0 4px; font-size:22px; font-weight:600; }
header .meta { color:#c4cbd6; font-size:13px; }
header .meta b { color:#fff; font-weight:500; }
main { max-width:1240px; margin:0 auto; padding:20px 32px 48px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:16px 20px; margin:16px 0; }
h2 { font-size:16px; margin:0 0 10px; font-weight:600; }
h2 small { font-weight:400; color:var(--muted); font-size:12px; margin-left:6px; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(210px,1fr)); gap:12px; margin:16px 0; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 16px; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .v { font-size:21px; font-weight:600; margin-top:2px; }
.card .s { color:var(--muted); font-size:12px; margin-top:2px; word-break:break-word; }
ul.rollup { margin:0; padding-left:20px; } ul.rollup li { margin:3px 0; }
.swatch { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:6px; vertical-align:baseline; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { padding:5px 8px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { background:#f0f2f5; font-weight:600; white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
td.mono, span.mono { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12px; word-break:break-all; }
tr.total td { font-weight:600; border-top:2px solid var(--line); }
.bad { color:var(--bad); font-weight:600; } .ok { color:var(--ok); font-weight:600; }
section.limits { border:2px solid var(--bad); background:#fdf0ef; }
.tag { display:inline-block; padding:0 6px; border-radius:9px; background:#eef1f6; color:#394457; font-size:12px; }
.tag.sanctioned { background:#fde8e7; color:var(--bad); }
.scroll { overflow-x:auto; }
figure { margin:0; } figcaption { color:var(--muted); font-size:12px; margin-top:6px; }
.legend { display:flex; flex-wrap:wrap; gap:6px 16px; font-size:12px; color:var(--muted); margin:8px 0 0; }
svg.sankey { display:block; max-width:100%; height:auto; background:#fff; }
svg.sankey .link { stroke-opacity:.42; transition:stroke-opacity .15s; }
svg.sankey .link:hover, svg.sankey .link.hi { stroke-opacity:.78; }
svg.sankey.focus .link:not(.hi) { stroke-opacity:.10; }
svg.sankey text { font-size:12px; fill:#1d2330; paint-order:stroke; stroke:#fff; stroke-width:3px; stroke-linejoin:round; }
svg.sankey .node-country text, svg.sankey .node-seed text { font-weight:600; }
details { margin:6px 0; } summary { cursor:pointer; font-weight:500; }
ol.path { margin:4px 0 10px; padding-left:22px; } ol.path li { margin:2px 0; }
footer { color:var(--muted); font-size:12px; text-align:center; margin-top:24px; }
@media print { body { background:#fff; } section { break-inside:avoid; } }
"""

SCRIPT = """
(function () {
  var svg = document.getElementById('sankey');
  if (!svg) { return; }
  var links = svg.querySelectorAll('.link');
  function focus(id) {
    svg.classList.add('focus');
    for (var i = 0; i < links.length; i++) {
      var l = links[i];
      if (l.getAttribute('data-source') === id || l.getAttribute('data-target') === id) { l.classList.add('hi'); }
    }
  }
  function clear() {
    svg.classList.remove('focus');
    for (var i = 0; i < links.length; i++) { links[i].classList.remove('hi'); }
  }
  var nodes = svg.querySelectorAll('.node');
  for (var i = 0; i < nodes.length; i++) {
    nodes[i].addEventListener('mouseenter', function (ev) { focus(ev.currentTarget.getAttribute('data-id')); });
    nodes[i].addEventListener('mouseleave', clear);
  }
})();
"""


def _e(x: object) -> str:
    return escape("" if x is None else str(x))


def _t(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if t is not None else "—"


def _usd(u: float | None, partial: bool = False) -> str:
    return _e(fmt_usd(u, partial))


def _table(head: list[tuple[str, bool]], rows: list[list[str]], *, total: list[str] | None = None,
           cls: str = "") -> str:
    h = "".join(f'<th class="num">{_e(n)}</th>' if num else f"<th>{_e(n)}</th>" for n, num in head)
    body = []
    for r in rows:
        body.append("<tr>" + "".join(
            f'<td class="num">{c}</td>' if head[i][1] else f"<td>{c}</td>" for i, c in enumerate(r)) + "</tr>")
    if total:
        body.append('<tr class="total">' + "".join(
            f'<td class="num">{c}</td>' if head[i][1] else f"<td>{c}</td>" for i, c in enumerate(total)) + "</tr>")
    if not rows:
        body.append(f'<tr><td colspan="{len(head)}" style="color:#5d6675">none</td></tr>')
    return (f'<div class="scroll"><table class="{cls}"><thead><tr>{h}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _totals_html(totals: tuple[Total, ...] | list[Total]) -> str:
    return _e(totals_text(totals))


def _section(title: str, body: str, *, sub: str = "", sid: str = "") -> str:
    sid_attr = f' id="{sid}"' if sid else ""
    small = f"<small>{_e(sub)}</small>" if sub else ""
    return f"<section{sid_attr}><h2>{_e(title)}{small}</h2>{body}</section>"


def render(report: Report, *, sankey_width: int = 1100, sankey_height: int = 560) -> str:
    inc = report.incident
    main = report.summary()
    names = report.model_names
    P = report.primary
    colors = country_colors(report)
    parts: list[str] = []

    # --- summary cards -----------------------------------------------------------------------------------
    su, sp = usd_sum(report.stolen)
    eu, ep = usd_sum(main.endpoints_total)
    uu, up = usd_sum(main.unspent_total)
    mixer_total = sum(1 for _ in main.mixers)
    balanced = all(s.balanced for s in report.models)
    cards = [
        ("Total stolen", _usd(su, sp), _totals_html(report.stolen)),
        (f"Reached endpoints ({P})", _usd(eu, ep), _totals_html(main.endpoints_total)),
        ("Unspent — freeze candidates", _usd(uu, up),
         f"{len(main.unspent)} addresses: {_totals_html(main.unspent_total)}"),
        ("Mixers · bridges · swaps", f"{mixer_total} · {len(main.bridges)} · {len(main.swaps)}",
         _e(", ".join(dict.fromkeys([m.mixer for m in main.mixers] + [c.via for c in (*main.bridges, *main.swaps)])))
         or "none"),
        ("Conservation", '<span class="ok">balanced</span>' if balanced else '<span class="bad">NOT balanced</span>',
         "every traced unit accounted for, per asset and model" if balanced else "see the conservation table"),
    ]
    limits = [(s.model, lim) for s in report.models for lim in s.result.limits]
    if limits:  # said first and prominently: value stopped at a limit, where, the option to go on
        items = "".join(
            f'<li><strong>{_e(m)}:</strong> {_e(lim.message)}'
            + "".join(f'<br><span class="mono">{_e(a or "—")}</span> (tx <span class="mono">{_e(t or "—")}</span>)'
                      for a, t in lim.where) + "</li>" for m, lim in limits)
        parts.append(f'<section id="limits" class="limits"><h2 class="bad">Trace stopped at a limit</h2>'
                     f'<ul>{items}</ul></section>')
    parts.append('<div class="cards">' + "".join(
        f'<div class="card"><div class="k">{_e(k)}</div><div class="v">{v}</div><div class="s">{s}</div></div>'
        for k, v, s in cards) + "</div>")

    # --- roll-up -------------------------------------------------------------------------------------------
    if main.rollup:
        items = []
        for r in main.rollup:
            sw = colors.get(r.country or "", "#8a8f98")
            sentence = r.sentence[0].upper() + r.sentence[1:]
            items.append(f'<li data-country="{_e(r.country or "")}"><span class="swatch" style="background:{sw}"></span>'
                         f'{_e(sentence)} <span class="tag">{_e(", ".join(r.entities))}</span></li>')
        title = "Where the money came from" if main.result.direction == "backward" else "Where the money went"
        parts.append(_section(title, f'<ul class="rollup">{"".join(items)}</ul>', sub=f"{P} model"))

    # --- Sankey --------------------------------------------------------------------------------------------
    sk = build_sankey(report)
    legend = "".join(
        f'<span><span class="swatch" style="background:{colors.get(c, "#8a8f98")}"></span>'
        f'{_e(country_name(c or None, article=False))}</span>' for c in sk.countries)
    if sk.other_countries:
        legend += (f'<span><span class="swatch" style="background:{OTHER_COUNTRIES_COLOR}"></span>'
                   f'{len(sk.other_countries)} other countries ({_e(", ".join(sk.other_countries))})</span>')
    legend += "".join(f'<span><span class="swatch" style="background:{col}"></span>{_e(k)}</span>'
                      for k, col in OUTCOME_COLORS.items() if any(n.id == f"outcome:{k}" for n in sk.nodes))
    parts.append(_section(
        "Flow of funds", f'<figure>{to_svg(sk, width=sankey_width, height=sankey_height)}'
        f'<div class="legend">{legend}</div>'
        f'<figcaption>Seeds → hops → endpoint entities → countries ({_e(P)} model). Ribbon width: {_e(sk.unit)}. '
        "Hover a node or ribbon for amounts.</figcaption></figure>", sid="flow"))

    # --- endpoints side by side ----------------------------------------------------------------------------
    by_key = {(e.entity, e.category, e.country, e.total.chain, e.total.asset): e for e in main.by_entity}
    pi = names.index(P)
    rows = []
    for r in report.entity_comparison:
        e = by_key.get((r.entity, r.category, r.country, r.chain, r.asset))
        sanctioned = ' <span class="tag sanctioned">sanctioned</span>' if e is not None and e.sanctioned else ""
        sw = colors.get(r.country or "", "#8a8f98")
        rows.append([
            f"{_e(r.entity)}{sanctioned}", _e(category_label(r.category)),
            f'<span class="swatch" style="background:{sw}"></span>{_e(r.country or "—")}',
            _e(f"{r.label} ({r.chain})"),
            *[_e(fmt_amount(a, r.decimals)) if a is not None else "—" for a in r.amounts],
            _usd(r.usd[pi]), _e(e.hops if e else "—"), _e(_t(e.first_seen) if e else "—"),
            _e(_t(e.last_seen) if e else "—")])
    head = [("entity", False), ("category", False), ("country", False), ("asset", False),
            *[(m, True) for m in names], (f"USD ({P})", True), ("hops", True), ("first seen (UTC)", False),
            ("last seen (UTC)", False)]
    parts.append(_section("Endpoints by entity", _table(head, rows, cls="endpoints"),
                          sub="traced amount under each taint model", sid="endpoints"))

    # --- by country / category -----------------------------------------------------------------------------
    for title, groups, sid in (("By country", main.by_country, "countries"),
                               ("By category", main.by_category, "categories")):
        rows = [[(f'<span class="swatch" style="background:{colors.get(g.key or "", "#8a8f98")}"></span>'
                  if sid == "countries" else "") + _e(g.label), _totals_html(g.totals), _usd(g.usd, g.usd_partial),
                 _e(", ".join(g.entities))] for g in groups]
        parts.append(_section(title, _table([("", False), ("amount", True), ("USD", True), ("entities", False)],
                                            rows, cls=sid), sub=f"{P} model", sid=sid))

    # --- unspent -----------------------------------------------------------------------------------------
    rows = [[_e(h.chain), f'<span class="mono">{_e(h.address)}</span>', _e(asset_label(h.asset, h.symbol)),
             _e(fmt_amount(h.amount, h.decimals)), _usd(h.usd), _e(_t(h.since)), _e(h.entity or "—")]
            for h in main.unspent]
    parts.append(_section("Unspent holdings — freeze candidates", _table(
        [("chain", False), ("address", False), ("asset", False), ("amount", True), ("USD", True),
         ("since (UTC)", False), ("entity", False)], rows, cls="unspent"), sub=f"{P} model", sid="unspent"))

    # --- mixers, bridges, swaps, peel chains ----------------------------------------------------------------
    rows = []
    for m in main.mixers:
        cands = "<br>".join(
            f'<span class="mono">{_e(c.txid[:18])}…</span> → <span class="mono">{_e(c.address)}</span> '
            f"{_e(fmt_amount(c.amount, m.decimals))} at {_e(_t(c.time))} (confidence {c.confidence:.2f})"
            for c in m.candidates) or "—"
        rows.append([_e(m.mixer), _e(m.chain), _e(f"{fmt_amount(m.amount, m.decimals)} {report.label(m.chain, m.asset)}"),
                     _usd(m.usd), _e(len(m.deposits)), "yes" if m.followed else "no", cands])
    mix = _table([("mixer", False), ("chain", False), ("amount", True), ("USD", True), ("deposits", True),
                  ("followed", False), ("candidate withdrawals", False)], rows, cls="mixers")
    rows = [[_e(c.kind), _e(c.via),
             _e(f"{fmt_amount(c.from_amount, c.from_decimals)} {report.label(c.from_chain, c.from_asset)} ({c.from_chain})"),
             _e(f"{fmt_amount(c.to_amount, c.to_decimals)} {report.label(c.to_chain, c.to_asset)} ({c.to_chain})"),
             _e(_t(c.time)), _e(f"{c.match.replace('_', ' ')} ({c.confidence:.2f})"),
             f'<span class="mono">{_e(c.in_txid)}</span>', f'<span class="mono">{_e(c.out_txid or "—")}</span>']
            for c in (*main.bridges, *main.swaps)]
    cross = _table([("kind", False), ("via", False), ("from", True), ("to", True), ("time (UTC)", False),
                    ("matched by", False), ("in tx", False), ("out tx", False)], rows, cls="crossings")
    parts.append(_section("Mixers, bridges and swaps", f"<h3>Mixers</h3>{mix}<h3>Bridges and swaps</h3>{cross}",
                          sub=f"{P} model", sid="mixers"))
    unswept = [e for e in main.result.endpoints if e.state == "unswept"]
    if unswept:
        rows = [[_e(e.entity), _e(e.chain), _e(f"{fmt_amount(e.amount, e.decimals)} {report.label(e.chain, e.asset)}"),
                 f'<span class="mono">{_e(" ".join(e.unswept_addresses or e.addresses))}</span>',
                 _e(e.provenance or "tag or cluster")] for e in unswept]
        parts.append(_section("Deposited, not yet swept", _table(
            [("entity", False), ("chain", False), ("amount", True), ("addresses", False), ("attributed by", False)],
            rows, cls="unswept"), sub="funds at the entity's deposit addresses: freeze there", sid="unswept-endpoints"))
    if main.result.peel_chains:
        rows = [[_e(p.chain), f'<span class="mono">{_e(p.start_txid)}</span>', _e(p.hops),
                 _e(fmt_amount(p.amount_in, p.decimals)), _e(fmt_amount(p.peeled, p.decimals)),
                 _e("; ".join(f"{d}: {fmt_amount(a, p.decimals)}" for d, a in p.peels_by_destination))]
                for p in main.result.peel_chains]
        parts.append(_section("Peel chains", _table([("chain", False), ("start tx", False), ("transactions", True),
                                                     ("in", True), ("peeled", True), ("peels by destination", False)],
                                                    rows), sub="each chain costs one hop of the budget",
                              sid="peels"))

    # --- timeline ------------------------------------------------------------------------------------------
    rows = [[_e(_t(e.time)), _e(e.kind.replace("_", " ")), _e(e.description), _e(e.total.text() if e.total else ""),
             _usd(e.total.usd, e.total.usd_partial) if e.total else ""] for e in report.timeline]
    parts.append(_section("Timeline", _table([("time (UTC)", False), ("event", False), ("what", False),
                                              ("amount", True), ("USD", True)], rows, cls="timeline"),
                          sub=f"{P} model", sid="timeline"))

    # --- evidence ------------------------------------------------------------------------------------------
    ev = []
    for p in report.evidence:
        hops = "".join(
            f'<li><span class="mono">{_e(h.txid)}</span> · {_e(_t(h.time))}'
            + (f" · moved {_e(' + '.join(x.text() for x in h.moved))}" if h.moved else "") + "</li>"
            for h in p.hops)
        ev.append(f"<details{' open' if p.index == 1 and len(ev) < 3 else ''}><summary>{_e(p.entity)} "
                  f"({_e(category_label(p.category))}, {_e(p.country or '—')}) — {_e(p.total.text())} · path "
                  f"{p.index} of {p.of}, {len(p.hops)} transactions</summary><ol class=\"path\">{hops}</ol></details>")
    parts.append(_section("Evidence paths", "".join(ev) or "<p>none</p>",
                          sub="transaction chains from the seeds to each endpoint; 'moved' is the whole value of "
                              "the transaction", sid="evidence"))

    # --- models side by side, conservation, notes ---------------------------------------------------------------
    rows = [[_e(r.metric), _e(r.chain), _e(r.label),
             *[_e(fmt_amount(a, r.decimals)) if a is not None else "—" for a in r.amounts]] for r in report.comparison]
    parts.append(_section("Taint models side by side", _table(
        [("figure", False), ("chain", False), ("asset", False), *[(m, True) for m in names]], rows,
        cls="comparison"), sub="poison ≥ haircut; FIFO follows the order coins arrived", sid="models"))
    rows = []
    for s in report.models:
        for b in s.balances:
            rows.append([_e(s.model), _e(b.chain), _e(report.label(b.chain, b.asset)),
                         _e(fmt_amount(b.traced, b.decimals)), _e(fmt_amount(b.endpoints, b.decimals)),
                         _e(fmt_amount(b.unspent, b.decimals)), _e(fmt_amount(b.fees, b.decimals)),
                         _e(fmt_amount(b.stopped_hops + b.stopped_dust + b.other_stopped, b.decimals)),
                         _e(fmt_amount(b.mixers, b.decimals)), _e(fmt_amount(b.crossed_out, b.decimals)),
                         _e(fmt_amount(b.absorbed, b.decimals)),
                         '<span class="ok">yes</span>' if b.balanced else
                         f'<span class="bad">NO ({_e(fmt_amount(b.traced + b.absorbed - b.accounted, b.decimals))})</span>'])
    parts.append(_section("Conservation", _table(
        [("model", False), ("chain", False), ("asset", False), ("traced", True), ("endpoints", True),
         ("unspent", True), ("fees", True), ("stopped", True), ("mixers", True), ("crossed out", True),
         ("absorbed", True), ("balanced", False)], rows, cls="conservation"),
        sub="traced + absorbed (poison only: clean value that became tainted) = endpoints + unspent + fees + "
            "stopped + mixers + crossed to another asset", sid="conservation"))
    if report.notes:
        parts.append(_section("Notes", "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in report.notes) + "</ul>"))

    seeds = ", ".join(f"{s.chain}:{s.address or s.txid}" + (f":{s.n}" if s.n is not None else "") for s in inc.seeds)
    header = (f"<header><h1>Incident report — {_e(inc.name)}</h1><div class=\"meta\">"
              f"chains <b>{_e(', '.join(inc.chains))}</b> · actor <b>{_e(inc.actor or '—')}</b> · since "
              f"<b>{_e(_t(inc.since))}</b> · models <b>{_e(', '.join(names))}</b> (primary {_e(P)}) · generated "
              f"{_e(_t(report.generated))} UTC<br>seeds <span class=\"mono\">{_e(seeds)}</span></div></header>")
    csp = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
           "font-src 'none'; connect-src 'none'")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>fundtrail — {_e(inc.name)}</title><style>{CSS}</style></head><body>"
        f"{header}<main>{''.join(parts)}"
        "<footer>fundtrail incident report · amounts are exact in the asset's units; USD at the daily price of "
        "the day funds moved, n/a where unknown</footer></main>"
        f"<script>{SCRIPT}</script></body></html>\n")

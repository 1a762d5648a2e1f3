"""``fundtrail stats --format html``: ONE self-contained file (inline CSS and SVG, no script, nothing
fetched) with the charts a reader expects: stacked bars per year and actor (reported, stolen and cashed-out
USD), a map-free ranking of cash-out countries, and a Sankey diagram from actor to cash-out category to
country (drawn by the report's Sankey code), then the tables, the method and the sources."""

from __future__ import annotations

from collections import defaultdict
from html import escape

from fundtrail.report.countries import country_name
from fundtrail.report.render.html import CSS
from fundtrail.report.sankey import PALETTE, UNKNOWN_COLOR, Sankey, SankeyLink, SankeyNode, to_svg
from fundtrail.stats.aggregate import group
from fundtrail.stats.model import NA, TITLES, Fact, StatsResult, method_text, usd_text

EXTRA_CSS = """
svg.bars text, svg.rank text { font-size:12px; fill:#1d2330; }
svg.bars .axis, svg.rank .axis { stroke:#c9ced6; }
.charts { display:grid; grid-template-columns:repeat(auto-fit,minmax(520px,1fr)); gap:16px; }
figure h3 { font-size:14px; margin:4px 0 6px; font-weight:600; }
"""


def _e(x: object) -> str:
    return escape("" if x is None else str(x))


def _musd(cents: float) -> str:
    v = cents / 100
    if v >= 1e9:
        return f"${v / 1e9:.2f}B"
    if v >= 1e6:
        return f"${v / 1e6:.1f}M"
    if v >= 1e3:
        return f"${v / 1e3:.0f}k"
    return f"${v:.0f}"


def _colors(keys: list[str]) -> dict[str, str]:
    return {k: (UNKNOWN_COLOR if k == NA else PALETTE[i % len(PALETTE)]) for i, k in enumerate(keys)}


def stacked_bars(facts: list[Fact], measure: str, model: str, title: str, *, width: int = 760,
                 height: int = 300) -> str:
    """USD per year, stacked by actor (facts without a price are left out and counted in the caption)."""
    fs = [f for f in facts if f.measure == measure and f.model == model]
    vals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    unpriced = 0
    for f in fs:
        if f.usd_cents is None:
            unpriced += 1
            continue
        vals[f.key("year")][f.key("actor")] += f.usd_cents
    if not vals:
        why = ("no catalogue with reported losses imported (fundtrail incident import FILE | --shipped)"
               if measure == "reported" else "no amount with a USD price")
        return f"<p>{_e(title)}: {why}.</p>"
    years = sorted(vals)
    actors = sorted({a for v in vals.values() for a in v}, key=lambda a: -sum(v.get(a, 0) for v in vals.values()))
    color = _colors(actors)
    top = max(sum(v.values()) for v in vals.values()) or 1
    left, bottom, pad = 70, 28, 10
    bw = min(80, (width - left - pad) / max(len(years), 1) * 0.6)
    step = (width - left - pad) / max(len(years), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="bars" viewBox="0 0 {width} {height + 24}" width="100%" '
             f'role="img" aria-label="{_e(title)}">']
    for i in range(5):
        y = pad + (height - bottom - pad) * i / 4
        parts.append(f'<line class="axis" x1="{left}" x2="{width - pad}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text x="{left - 6}" y="{y:.1f}" dy="0.35em" text-anchor="end">{_musd(top * (4 - i) / 4)}</text>')
    for j, yr in enumerate(years):
        x = left + j * step + (step - bw) / 2
        y = height - bottom
        for a in actors:
            v = vals[yr].get(a, 0)
            if not v:
                continue
            h = (height - bottom - pad) * v / top
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{h:.1f}" fill="{color[a]}" '
                         f'data-year="{_e(yr)}" data-actor="{_e(a)}"><title>{_e(yr)} · {_e(a)}: {usd_text(v)}'
                         f'</title></rect>')
        parts.append(f'<text x="{x + bw / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle">{_e(yr)}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span><i class="swatch" style="background:{color[a]}"></i>{_e(a)}</span>' for a in actors)
    cap = "USD at each movement's day" + (
        f"; {unpriced} amount(s) without a price are not drawn" if unpriced else "")
    return (f'<figure><h3>{_e(title)}</h3>{"".join(parts)}<div class="legend">{legend}</div>'
            f'<figcaption>{cap}</figcaption></figure>')


def country_ranking(facts: list[Fact], model: str, *, width: int = 760) -> str:
    vals: dict[str, int] = defaultdict(int)
    for f in facts:
        if f.measure == "cashed_out" and f.model == model and f.usd_cents is not None:
            vals[f.key("country")] += f.usd_cents
    if not vals:
        return "<p>No priced cash-outs.</p>"
    rows = sorted(vals.items(), key=lambda kv: -kv[1])
    top = rows[0][1] or 1
    h = 22 * len(rows) + 8
    left = 210
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="rank" viewBox="0 0 {width} {h}" width="100%" '
             f'role="img" aria-label="cash-out countries ranked by USD">']
    for i, (c, v) in enumerate(rows):
        y = 4 + i * 22
        w = (width - left - 90) * v / top
        name = country_name(None if c == NA else c, article=False) + ("" if c == NA else f" ({c})")
        parts.append(f'<text x="{left - 8}" y="{y + 9}" dy="0.35em" text-anchor="end">{_e(name)}</text>'
                     f'<rect x="{left}" y="{y}" width="{max(w, 1):.1f}" height="18" fill="#3d7dca" data-country="{_e(c)}">'
                     f'<title>{_e(name)}: {usd_text(v)}</title></rect>'
                     f'<text x="{left + w + 6:.1f}" y="{y + 9}" dy="0.35em">{_musd(v)}</text>')
    parts.append("</svg>")
    return (f'<figure>{"".join(parts)}<figcaption>Cash-out countries ranked by USD (model {_e(model)}; the country '
            'of the entity the funds reached)</figcaption></figure>')


def actor_sankey(facts: list[Fact], model: str) -> Sankey:
    """Actor -> cash-out category -> country, widths in USD cents (priced cash-outs and mixer deposits)."""
    flows: dict[tuple[str, str, str], int] = defaultdict(int)
    for f in facts:
        if f.model != model or f.measure not in ("cashed_out", "mixer") or f.usd_cents is None:
            continue
        flows[(f.key("actor"), f.key("category"), f.key("country"))] += f.usd_cents
    countries = sorted({c for _, _, c in flows}, key=lambda c: -sum(v for k, v in flows.items() if k[2] == c))
    color = _colors(countries)
    nodes: dict[str, SankeyNode] = {}
    links: dict[tuple[str, str, str], float] = defaultdict(float)
    for (a, cat, c), v in flows.items():
        nodes.setdefault(f"a:{a}", SankeyNode(f"a:{a}", a, 0, "seed", "#1f2a3c", f"actor {a}"))
        nodes.setdefault(f"k:{cat}", SankeyNode(f"k:{cat}", cat.replace("_", " "), 1, "outcome", "#8a8f98",
                                                f"category {cat}"))
        cname = country_name(None if c == NA else c, article=False)
        nodes.setdefault(f"c:{c}", SankeyNode(f"c:{c}", cname, 2, "country", color[c], cname, c))
        links[(f"a:{a}", f"k:{cat}", c)] += v
        links[(f"k:{cat}", f"c:{c}", c)] += v
    return Sankey(tuple(nodes.values()),
                  tuple(SankeyLink(s, t, v, color[c], f"{usd_text(int(v))}", c) for (s, t, c), v in links.items()),
                  "USD cents", tuple(countries))


def _table_html(r: StatsResult, measure: str) -> str:
    first = r.models[0] if r.models else None
    rows = [g for g in r.groups if g.measure == measure and (measure != "stolen" or g.model == first)]
    if not rows:
        return ""
    head = "".join(f"<th>{_e(k)}</th>" for k in (("model",) if measure not in ("reported", "stolen") else ()) + r.by)
    body = []
    for g in rows:
        cells = ([g.model] if measure not in ("reported", "stolen") else []) + list(g.key)
        body.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells)
                    + f"<td>{_e('; '.join(t.text() for t in g.totals))}</td>"
                    f'<td class="num">{_e(usd_text(g.usd_cents, g.usd_partial))}</td></tr>')
    return (f"<section><h2>{_e(TITLES[measure])}</h2><div class=\"scroll\"><table><tr>{head}<th>amount</th>"
            f'<th class="num">USD</th></tr>{"".join(body)}</table></div></section>')


def render_html(r: StatsResult) -> str:
    facts = list(r.facts)
    model = r.models[0] if r.models else "haircut"
    charts = [stacked_bars(facts, "reported", "sources", "Reported losses per year and actor"),
              stacked_bars(facts, "stolen", model, f"Stolen (traced) per year and actor — model {model}"),
              stacked_bars(facts, "cashed_out", model, f"Cashed out per year and actor — model {model}")]
    sk = actor_sankey(facts, model)
    sankey = to_svg(sk, width=1100, height=420) if sk.links else "<p>No priced cash-outs to draw.</p>"
    shares = "".join(
        f"<tr><td>{_e(s.model)}</td><td class=\"num\">{_e(usd_text(s.stolen_cents, s.partial))}</td>"
        + "".join(f'<td class="num">{_e(usd_text(c))}'
                  + (f" ({s.share(c):.1%})" if s.share(c) is not None else "") + "</td>"
                  for c in (s.cashed_out_cents, s.mixer_cents, s.unspent_cents)) + "</tr>" for s in r.shares)
    timing = "".join(
        f"<tr><td>{_e(t.model)}</td><td>{_e(' / '.join(t.key) or 'all')}</td><td class=\"num\">{t.arrivals}</td>"
        f"<td>{_e(t.weight)}</td>" + "".join(f'<td class="num">{"—" if v is None else f"{v:g}"}</td>'
                                              for v in (t.hops_median, t.hops_p90, t.days_median, t.days_p90))
        + "</tr>" for t in r.timing)
    monthly = group([f for f in facts if f.measure == "cashed_out" and f.model == model], ("month",))
    months = "".join(f"<tr><td>{_e(g.key[0])}</td><td>{_e('; '.join(t.text() for t in g.totals))}</td>"
                     f'<td class="num">{_e(usd_text(g.usd_cents, g.usd_partial))}</td></tr>' for g in
                     sorted(monthly, key=lambda g: g.key))
    incidents = "".join(
        f"<tr><td>{_e(i.name)}</td><td>{_e(i.date.strftime('%Y-%m-%d') if i.date else '—')}</td>"
        f"<td>{_e(i.actor or '—')}</td><td>{_e(i.victim or '—')}</td><td class=\"num\">{i.seeds}</td>"
        f"<td>{'yes' if i.traced else 'no'}</td><td class=\"num\">"
        f"{_e(usd_text(None if i.reported_loss_usd is None else int(round(i.reported_loss_usd * 100))))}</td>"
        f"<td>{'<br>'.join(f'<span class=mono>{_e(s)}</span>' for s in i.sources)}</td></tr>" for i in r.incidents)
    notes = "".join(f"<li>{_e(n)}</li>" for n in r.notes)
    method = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in r.method.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fundtrail statistics</title><style>{CSS}{EXTRA_CSS}</style></head>
<body><header><h1>Stolen and laundered value: statistics</h1>
<div class="meta">{_e(method_text(r))}</div></header><main>
<section><h2>Per year and actor</h2><div class="charts">{''.join(charts)}</div></section>
<section><h2>Cash-out countries <small>model {_e(model)}</small></h2>{country_ranking(facts, model)}</section>
<section><h2>From actor to country <small>model {_e(model)}; widths in USD at each cash-out's day</small></h2>
<div class="scroll">{sankey}</div></section>
<section><h2>Shares of the stolen value</h2><table><tr><th>model</th><th class="num">stolen</th>
<th class="num">cashed out</th><th class="num">mixers</th><th class="num">unspent (freezable)</th></tr>{shares}</table>
<p>USD at the day of each movement: shares in USD can differ from shares in coin.</p></section>
<section><h2>Hops and days from theft to cash-out</h2><table><tr><th>model</th><th>group</th><th class="num">cash-outs</th>
<th>weighted by</th><th class="num">hops median</th><th class="num">hops p90</th><th class="num">days median</th>
<th class="num">days p90</th></tr>{timing}</table></section>
<section><h2>Cashed out by month <small>model {_e(model)}</small></h2><table><tr><th>month</th><th>amount</th>
<th class="num">USD</th></tr>{months}</table></section>
{''.join(_table_html(r, m) for m in TITLES)}
<section><h2>Incidents and sources</h2><div class="scroll"><table><tr><th>name</th><th>date</th><th>actor</th>
<th>victim</th><th class="num">seeds</th><th>traced</th><th class="num">reported USD</th><th>sources</th></tr>
{incidents}</table></div></section>
<section><h2>Method</h2><table>{method}</table>{f'<ul>{notes}</ul>' if notes else ''}</section>
<footer>fundtrail stats · every figure can be recomputed from the same workspace: see docs/statistics.md</footer>
</main></body></html>
"""

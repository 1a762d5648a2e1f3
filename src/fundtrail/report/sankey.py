"""A Sankey diagram of where stolen funds went: seeds -> hops -> endpoint entities -> countries.

Everything is computed here, in Python, and drawn as plain SVG (no library, no script needed).

Columns
    0. one node per stolen asset (the seeds' holdings);
    1. hop bands (1 hop, 2-3, 4-6, 7-10, 11+) that endpoint funds went through, and the outcomes that are
       not an endpoint: unspent (freeze candidates), mixer deposits, stopped (hop limit, dust, other), fees;
    2. endpoint entities;
    3. the entities' countries.

Widths must be comparable across assets (BTC and ETH cannot be added), so a width is a share of the
stolen value: each stolen asset weighs its USD value at the theft (or an equal share when a price is
missing); an asset reached through a swap or bridge carries, per stolen asset, the weight of what crossed
into it; a flow of ``x`` units of asset ``A`` weighs ``x / traced(A)`` times ``A``'s weight, split by the
stolen asset it came from. When every traced unit is accounted for, the seeds' widths sum to 1. Ribbons
are split by the endpoint's country all the way from the seed, so each country's colour can be followed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from html import escape
from typing import Any

from fundtrail.report.countries import country_name
from fundtrail.report.model import Report, category_label, fmt_amount, fmt_usd

HOP_BANDS = ((1, 1, "1 hop"), (2, 3, "2–3 hops"), (4, 6, "4–6 hops"), (7, 10, "7–10 hops"), (11, 10**9, "11+ hops"))
PALETTE = ("#d1495b", "#3d7dca", "#edae49", "#00798c", "#8f5fbf", "#e07a3f", "#5aa469", "#c2549d",
           "#6b8e23", "#a0522d", "#4682b4", "#b8860b")
UNKNOWN_COLOR = "#8a8f98"
MAX_ENTITY_NODES = 20
MAX_TOOLTIP_LINES = 12
OUTCOME_COLORS = {"unspent": "#2e8b57", "mixers": "#7d5ba6", "stopped": "#a89f91", "fees": "#c9c9c9"}


@dataclass(frozen=True, slots=True)
class SankeyNode:
    id: str
    label: str
    column: int
    kind: str  # seed | hops | outcome | entity | country
    color: str
    detail: str
    country: str | None = None


@dataclass(frozen=True, slots=True)
class SankeyLink:
    source: str
    target: str
    value: float
    color: str
    detail: str
    country: str | None = None  # the endpoint country this ribbon ends in ("" for unknown; None: not an endpoint)


@dataclass(frozen=True, slots=True)
class Sankey:
    nodes: tuple[SankeyNode, ...]
    links: tuple[SankeyLink, ...]
    unit: str  # what widths measure, in words
    countries: tuple[str, ...]  # endpoint countries drawn as their own node ("" = unknown)
    other_countries: tuple[str, ...] = ()  # the smaller ones, drawn together as "N other countries"


def _band(hops: int) -> str:
    for lo, hi, label in HOP_BANDS:
        if lo <= hops <= hi:
            return label
    return HOP_BANDS[0][2]


OTHER_COUNTRIES_COLOR = "#b4bac3"


def country_colors(report: Report, model: str | None = None) -> dict[str, str]:
    """A colour per endpoint country: the largest ones (by USD, then amount) get the palette's distinct
    colours; beyond that they share one (and one node in the diagram)."""
    s = report.summary(model)
    out: dict[str, str] = {}
    named = 0
    for g in s.by_country:
        key = g.key or ""
        if key in out:
            continue
        if not key:
            out[key] = UNKNOWN_COLOR
        elif named < len(PALETTE):
            out[key] = PALETTE[named]
            named += 1
        else:
            out[key] = OTHER_COUNTRIES_COLOR
    return out


def build_sankey(report: Report, model: str | None = None) -> Sankey:
    s = report.summary(model)
    r = s.result
    # what ends somewhere: the traced amount, plus (poison) the clean value it absorbed on the way
    traced = ({(b.chain, b.asset): b.traced + b.absorbed for b in s.balances}
              or {(a.chain, a.asset): a.amount for a in r.traced})
    for a in r.traced:
        traced.setdefault((a.chain, a.asset), a.amount)

    # weight of one whole traced amount of each asset
    origins = [(t.chain, t.asset) for t in report.stolen] or list(traced)
    stolen_usd = [t.usd for t in report.stolen]
    if report.stolen and all(u is not None and u > 0 for u in stolen_usd):
        total = sum(u for u in stolen_usd if u is not None)
        weight = {k: (u or 0.0) / total for k, u in zip(origins, stolen_usd, strict=True)}
        unit = "share of the stolen value (USD at the theft)"
    else:
        weight = {k: 1.0 / len(origins) for k in origins}
        unit = "share of the stolen amount, each stolen asset weighted equally (no USD price for all of them)"
    # contrib[A][o]: the weight (share of the stolen value) that asset A's traced amount carries from the
    # stolen asset o; crossings pass it on in proportion to the amount that crossed (fixpoint over chains
    # of crossings, cycles included).
    Key = tuple[str, str]
    contrib: dict[Key, dict[Key, float]] = {k: {k: weight[k]} for k in origins}
    crossings = sorted((*r.swaps, *r.bridges), key=lambda c: (c.time is None, c.time))
    for _ in range(2 * len(crossings) + 1):
        new: dict[Key, dict[Key, float]] = {k: {k: weight[k]} for k in origins}
        for c in crossings:
            src, dst = (c.from_chain, c.from_asset), (c.to_chain, c.to_asset)
            t_src = traced.get(src)
            if not t_src or src not in contrib:
                continue
            frac = c.from_amount / t_src
            bucket = new.setdefault(dst, {})
            for o, v in contrib[src].items():
                bucket[o] = bucket.get(o, 0.0) + v * frac
        if new == contrib:
            break
        contrib = new

    def shares(chain: str, asset: str, amount: int) -> list[tuple[Key, float]]:
        """(stolen asset, weight) of ``amount`` units of (chain, asset)."""
        k = (chain, asset)
        t = traced.get(k)
        if not t or k not in contrib:
            return []
        return [(o, v * amount / t) for o, v in contrib[k].items() if v > 0]

    colors = country_colors(report, model)
    nodes: dict[str, SankeyNode] = {}
    links: dict[tuple[str, str, str | None], list[Any]] = {}

    def link(src: str, dst: str, value: float, color: str, detail: str, country: str | None) -> None:
        if value <= 0:
            return
        k = (src, dst, country)
        if k in links:
            links[k][0] = float(links[k][0]) + value  # type: ignore[arg-type]
            links[k][2].append(detail)  # type: ignore[union-attr]
        else:
            links[k] = [value, color, [detail]]

    seed_label = {}
    for t in report.stolen or s.traced:
        nid = f"seed:{t.chain}:{t.asset}"
        seed_label[(t.chain, t.asset)] = nid
        nodes[nid] = SankeyNode(nid, f"{t.display} {t.label} stolen", 0, "seed", "#444b55",
                                f"{t.text(with_chain=True)} stolen — {fmt_usd(t.usd, t.usd_partial)}")

    def seed_of(o: tuple[str, str]) -> str:
        if o not in seed_label:
            nid = f"seed:{o[0]}:{o[1]}"
            seed_label[o] = nid
            nodes[nid] = SankeyNode(nid, f"{report.label(*o)} ({o[0]})", 0, "seed", "#444b55", f"{o[1]} on {o[0]}")
        return seed_label[o]

    # at most MAX_ENTITY_NODES entity nodes: the smaller ones share one node (their ribbons keep their colours)
    ent_weight: dict[str, float] = defaultdict(float)
    for e in r.endpoints:
        ent_weight[e.entity] += sum(x for _, x in shares(e.chain, e.asset, e.amount))
    ranked = sorted(ent_weight, key=lambda k: -ent_weight[k])
    grouped = set(ranked[MAX_ENTITY_NODES - 1:]) if len(ranked) > MAX_ENTITY_NODES else set()
    other_id = "entity:__other__"
    other_countries = {c for c, col in colors.items() if col == OTHER_COUNTRIES_COLOR}
    grouped_text = ", ".join(sorted(grouped))
    other_countries_text = ", ".join(sorted(other_countries))

    for e in r.endpoints:
        parts = shares(e.chain, e.asset, e.amount)
        v = sum(x for _, x in parts)
        cc = e.country or ""
        color = colors.get(cc, UNKNOWN_COLOR)
        amount = f"{fmt_amount(e.amount, e.decimals)} {report.label(e.chain, e.asset)}"
        band = _band(e.hops)
        hid, eid, cid = f"hops:{band}", f"entity:{e.entity}", f"country:{cc}"
        if cc in other_countries:
            cid = "country:__other__"
            if cid not in nodes:
                nodes[cid] = SankeyNode(cid, f"{len(other_countries)} other countries", 3, "country",
                                        OTHER_COUNTRIES_COLOR, other_countries_text, None)
        nodes.setdefault(hid, SankeyNode(hid, band, 1, "hops", "#5b6470", f"endpoint funds that took {band}"))
        if e.entity in grouped:
            eid = other_id
            if eid not in nodes:
                nodes[eid] = SankeyNode(eid, f"{len(grouped)} other entities", 2, "entity", UNKNOWN_COLOR,
                                        grouped_text, None)
        else:
            nodes.setdefault(eid, SankeyNode(eid, e.entity, 2, "entity", color,
                                             f"{e.entity} — {category_label(e.category)}, "
                                             f"{country_name(e.country, article=False)}", cc))
        nodes.setdefault(cid, SankeyNode(cid, country_name(e.country, article=False) + (f" ({cc})" if cc else ""),
                                         3, "country", color, f"endpoints in {country_name(e.country)}", cc))
        usd = fmt_usd(e.usd)
        for o, x in parts:
            link(seed_of(o), hid, x, color, f"{amount} → {e.entity} ({usd})", cc)
        link(hid, eid, v, color, f"{amount} → {e.entity} in {e.hops} hops ({usd})", cc)
        link(eid, cid, v, color, f"{e.entity}: {amount} ({usd})", cc)

    outcomes: dict[str, list[tuple[str, str, int, int]]] = defaultdict(list)  # kind -> (chain, asset, amt, dec)
    endpoint_mixer: dict[tuple[str, str], int] = defaultdict(int)
    for e in r.endpoints:
        if e.category in ("mixer", "coinjoin_coordinator"):
            endpoint_mixer[(e.chain, e.asset)] += e.amount
    for b in s.balances:
        outcomes["unspent"].append((b.chain, b.asset, b.unspent, b.decimals))
        outcomes["mixers"].append((b.chain, b.asset, max(0, b.mixers - endpoint_mixer[(b.chain, b.asset)]), b.decimals))
        outcomes["stopped"].append((b.chain, b.asset, b.stopped_hops + b.stopped_dust + b.other_stopped, b.decimals))
        outcomes["fees"].append((b.chain, b.asset, b.fees, b.decimals))
    names = {"unspent": "Unspent — freeze candidates", "mixers": "Mixer deposits",
             "stopped": "Stopped (hop limit, dust)", "fees": "Fees"}
    for kind, items in outcomes.items():
        nid = f"outcome:{kind}"
        for chain, asset, amount, dec in items:
            for o, v in shares(chain, asset, amount):
                if v <= 0:
                    continue
                nodes.setdefault(nid, SankeyNode(nid, names[kind], 1, "outcome", OUTCOME_COLORS[kind], names[kind]))
                link(seed_of(o), nid, v, OUTCOME_COLORS[kind],
                     f"{fmt_amount(amount, dec)} {report.label(chain, asset)} on {chain}: {names[kind].lower()}", None)

    # order: hop bands in order then outcomes; entities grouped by country (largest first)
    country_value: dict[str, float] = defaultdict(float)
    entity_value: dict[str, float] = defaultdict(float)
    for (src, dst, _cc), (v, _c, _d) in links.items():
        if dst.startswith("country:"):
            country_value[dst] += float(v)  # type: ignore[arg-type]
            entity_value[src] += float(v)  # type: ignore[arg-type]
    band_rank = {f"hops:{b[2]}": i for i, b in enumerate(HOP_BANDS)}
    outcome_rank = {f"outcome:{k}": 100 + i for i, k in enumerate(("unspent", "mixers", "stopped", "fees"))}
    country_rank = {c: i for i, c in enumerate(sorted(country_value, key=lambda c: (c == "country:", -country_value[c])))}

    def order(n: SankeyNode) -> tuple[float, ...]:
        if n.kind == "seed":
            return (0.0, n.id == "", 0.0)
        if n.kind in ("hops", "outcome"):
            return (float(band_rank.get(n.id, outcome_rank.get(n.id, 50))),)
        if n.kind == "entity":
            if n.id == other_id:
                return (1000.0, 0.0)
            return (float(country_rank.get(f"country:{n.country}", 99)), -entity_value[n.id])
        return (float(country_rank.get(n.id, 99)) if n.id != "country:__other__" else 1000.0,)

    ordered = sorted(nodes.values(), key=lambda n: (n.column, order(n)))
    def tip(lines: list[str]) -> str:
        more = len(lines) - MAX_TOOLTIP_LINES
        return "\n".join(lines[:MAX_TOOLTIP_LINES]) + (f"\n… and {more} more" if more > 0 else "")

    link_list = tuple(SankeyLink(src, dst, float(v), str(c), tip(d), cc)  # type: ignore[arg-type]
                      for (src, dst, cc), (v, c, d) in links.items())
    countries = tuple(n.country or "" for n in ordered if n.kind == "country" and n.id != "country:__other__")
    return Sankey(tuple(ordered), link_list, unit, countries, tuple(sorted(other_countries)))


@dataclass(frozen=True, slots=True)
class _Box:
    x: float
    y: float
    h: float
    value: float


def layout(sk: Sankey, width: float, height: float, *, node_width: float = 14, pad: float = 14,
           left: float = 8, right: float = 200, top: float = 10, bottom: float = 10) -> dict[str, _Box]:
    cols = sorted({n.column for n in sk.nodes})
    ncol = max(cols) + 1 if cols else 1
    inflow: dict[str, float] = defaultdict(float)
    outflow: dict[str, float] = defaultdict(float)
    for lk in sk.links:
        outflow[lk.source] += lk.value
        inflow[lk.target] += lk.value
    value = {n.id: max(inflow[n.id], outflow[n.id]) for n in sk.nodes}
    by_col: dict[int, list[SankeyNode]] = defaultdict(list)
    for n in sk.nodes:
        by_col[n.column].append(n)
    avail = height - top - bottom
    k = min(((avail - pad * (len(ns) - 1)) / max(sum(value[n.id] for n in ns), 1e-12))
             for ns in by_col.values()) if by_col else 1.0
    k = max(k, 0.0)
    step = (width - left - right - node_width) / max(ncol - 1, 1)
    boxes: dict[str, _Box] = {}
    for c, ns in by_col.items():
        hs = [max(value[n.id] * k, 2.0) for n in ns]
        total = sum(hs) + pad * (len(ns) - 1)
        if total > avail:  # minimum heights overflowed: tighten the gaps (never below 4 px)
            gap = max(4.0, (avail - sum(hs)) / max(len(ns) - 1, 1))
            total = sum(hs) + gap * (len(ns) - 1)
        else:
            gap = pad
        y = top + max(0.0, (avail - total) / 2)
        for n, h in zip(ns, hs, strict=True):
            boxes[n.id] = _Box(left + c * step, y, h, value[n.id])
            y += h + gap
    return boxes | {"__scale__": _Box(0, 0, k, 0)}


def to_svg(sk: Sankey, *, width: int = 1100, height: int = 560, node_width: float = 14) -> str:
    """The diagram as an inline ``<svg>`` element (nodes and ribbons carry data-* attributes and titles).
    ``height`` grows when a column has too many nodes for their labels to stay apart."""
    per_col: dict[int, int] = defaultdict(int)
    for n in sk.nodes:
        per_col[n.column] += 1
    height = max(height, int(max(per_col.values(), default=0) * 20 + 40))
    boxes = layout(sk, width, height, node_width=node_width)
    k = boxes.pop("__scale__").h
    node_by_id = {n.id: n for n in sk.nodes}
    out_off: dict[str, float] = defaultdict(float)
    in_off: dict[str, float] = defaultdict(float)
    # ribbons leave a node in the order of their targets' height, and arrive in the order of their sources'
    links = sorted(sk.links, key=lambda lk: (boxes[lk.source].y, boxes[lk.target].y))
    geo: dict[int, tuple[float, float]] = {}
    for lk in sorted(links, key=lambda lk: (lk.source, boxes[lk.target].y, lk.country or "")):
        sw = lk.value * k
        geo[id(lk)] = (boxes[lk.source].y + out_off[lk.source] + sw / 2, 0.0)
        out_off[lk.source] += sw
    for lk in sorted(links, key=lambda lk: (lk.target, boxes[lk.source].y, lk.country or "")):
        sw = lk.value * k
        sy = geo[id(lk)][0]
        geo[id(lk)] = (sy, boxes[lk.target].y + in_off[lk.target] + sw / 2)
        in_off[lk.target] += sw
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="sankey" id="sankey" viewBox="0 0 {width} {height}" '
             f'width="100%" role="img" aria-label="Sankey diagram: stolen funds from seeds through hops to '
             f'endpoints by country" preserveAspectRatio="xMidYMid meet">']
    parts.append('<g class="links">')
    for lk in links:
        s, t = boxes[lk.source], boxes[lk.target]
        sy, ty = geo[id(lk)]
        x0, x1 = s.x + node_width, t.x
        xm = (x0 + x1) / 2
        sw = max(lk.value * k, 1.0)
        cc = "" if lk.country is None else f' data-country="{escape(lk.country)}"'
        parts.append(
            f'<path class="link" data-source="{escape(lk.source)}" data-target="{escape(lk.target)}"{cc} '
            f'd="M{x0:.1f},{sy:.1f} C{xm:.1f},{sy:.1f} {xm:.1f},{ty:.1f} {x1:.1f},{ty:.1f}" '
            f'stroke="{lk.color}" stroke-width="{sw:.2f}" fill="none">'
            f'<title>{escape(lk.detail)}</title></path>')
    parts.append("</g><g class=\"nodes\">")
    last_col = max((n.column for n in sk.nodes), default=0)
    for n in sk.nodes:
        b = boxes[n.id]
        cc = "" if n.kind not in ("entity", "country") else f' data-country="{escape(n.country or "")}"'
        tx = b.x + node_width + 6
        anchor = "start"
        cls = ' class="last"' if n.column == last_col else ""
        parts.append(
            f'<g class="node node-{n.kind}" data-id="{escape(n.id)}" data-kind="{n.kind}"{cc}>'
            f'<rect x="{b.x:.1f}" y="{b.y:.1f}" width="{node_width}" height="{b.h:.1f}" fill="{n.color}" rx="2">'
            f'<title>{escape(n.detail)}</title></rect>'
            f'<text x="{tx:.1f}" y="{b.y + b.h / 2:.1f}" dy="0.35em" text-anchor="{anchor}"'
            f'{cls}>{escape(n.label)}</text></g>')
    del node_by_id
    parts.append("</g></svg>")
    return "".join(parts)

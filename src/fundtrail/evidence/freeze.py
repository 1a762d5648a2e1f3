"""``evidence freeze-requests``: one packet per receiving entity, cut from an evidence bundle.

A receiving entity is an endpoint of the trace whose category is a custodial service (exchange, no-KYC
exchange, OTC desk, payment processor, gambling service) or a bridge: someone who can freeze. The bundle
is exported first (the packets name its digest); every figure of a packet comes from that bundle's
report, built on the pinned view of the workspace:

* per deposit address: the amount received under each taint model, and each arrival (transaction, height,
  block, time);
* what is still unspent at those addresses at the pinned heights (Bitcoin: unspent outputs; EVM: the
  balance from the transfers), and, per model, the upper bound of stolen funds that can still be there
  (the smaller of what arrived and what is held);
* the paths from the theft (transaction lists);
* a letter in plain language from an editable template (``string.Template``: ``$entity``, ``$amounts`` …;
  the default is ``freeze_letter.txt`` beside this module).

Each packet is JSON, CSV and printable HTML (and PDF when a headless Chromium or wkhtmltopdf is installed);
``index.{json,csv,html}`` lists the packets sorted by amount (USD under the primary model where prices
are known, then by the amount in the first asset).
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re
import shutil
import string
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fundtrail.errors import UsageError
from fundtrail.evidence.bundle import Exported, canonical_json, export_bundle, iso
from fundtrail.evidence.chaindata import locate
from fundtrail.model.amount import format_units
from fundtrail.progress import Progress
from fundtrail.store import Workspace

RECEIVING_CATEGORIES = frozenset({"exchange", "exchange_nokyc", "otc_desk", "payment_processor", "gambling",
                                  "bridge"})
TEMPLATE = Path(__file__).with_name("freeze_letter.txt")


@dataclass(frozen=True, slots=True)
class Packets:
    out: Path
    bundle: Exported
    packets: list[dict[str, Any]]
    index: Path


def _trim(text: str) -> str:
    """A decimal amount without trailing zeros (749.000000000000000000 -> 749)."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "entity"


def _balances(ws: Workspace, chain: str, kind: str | None, addresses: Sequence[str]) -> dict[tuple[str, str], int]:
    """(address, asset) -> amount held at the view's heights."""
    if not addresses:
        return {}
    lst = ", ".join("'" + a.replace("'", "''") + "'" for a in sorted(set(addresses)))
    con = ws.connect()
    try:
        if kind == "utxo":
            rows = con.sql(f"""SELECT address, 'BTC', sum(value) FROM outputs
                               WHERE chain = '{chain}' AND address IN ({lst}) AND spent_by_txid IS NULL
                               GROUP BY 1""").fetchall()
        else:
            rows = con.sql(f"""
                WITH io AS (
                    SELECT to_address AS address, CASE WHEN asset = 'ETH' THEN 'ETH' ELSE lower(asset) END AS asset,
                           CAST(amount AS HUGEINT) AS v FROM transfers
                    WHERE chain = '{chain}' AND to_address IN ({lst}) AND amount IS NOT NULL
                    UNION ALL
                    SELECT from_address, CASE WHEN asset = 'ETH' THEN 'ETH' ELSE lower(asset) END,
                           -CAST(amount AS HUGEINT) FROM transfers
                    WHERE chain = '{chain}' AND from_address IN ({lst}) AND amount IS NOT NULL
                )
                SELECT address, asset, sum(v) FROM io GROUP BY 1, 2""").fetchall()
    finally:
        con.close()
    return {(a, s): max(int(v or 0), 0) for a, s, v in rows}


def build_packets(exported: Exported) -> list[dict[str, Any]]:
    """The packets' data (one dict per receiving entity), from an exported bundle's report."""
    report, view = exported.report, exported.view
    kinds = {c["chain"]: c.get("kind") for c in exported.manifest.get("chains", [])}
    ents: dict[str, dict[str, Any]] = {}
    for s in report.models:
        for e in s.result.endpoints:
            if e.category not in RECEIVING_CATEGORIES:
                continue
            p = ents.setdefault(e.entity, {"entity": e.entity, "category": e.category, "country": e.country,
                                           "sanctioned": False, "totals": {}, "deposits": {}, "paths": [],
                                           "decimals": {}, "symbols": {}})
            p["country"] = p["country"] or e.country
            p["sanctioned"] = p["sanctioned"] or e.sanctioned
            p["decimals"][(e.chain, e.asset)] = e.decimals
            p["symbols"][(e.chain, e.asset)] = e.symbol
            tot = p["totals"].setdefault((e.chain, e.asset), {})
            tot[s.model] = {"amount": tot.get(s.model, {}).get("amount", 0) + e.amount,
                            "usd": (tot.get(s.model, {}).get("usd") or 0) + e.usd if e.usd is not None
                            else tot.get(s.model, {}).get("usd")}
            for d in e.deposits:
                dep = p["deposits"].setdefault((e.chain, e.asset, d.address), {"by_model": {}, "arrivals": {}})
                dep["by_model"][s.model] = dep["by_model"].get(s.model, 0) + d.amount
                arr = dep["arrivals"].setdefault(d.txid, {"txid": d.txid, "time": d.time, "by_model": {}})
                arr["by_model"][s.model] = arr["by_model"].get(s.model, 0) + d.amount
            for i, path in enumerate(e.paths, 1):
                p["paths"].append({"model": s.model, "chain": e.chain, "asset": e.asset, "path": i,
                                   "txids": list(path)})
    txids = {t for p in ents.values() for dep in p["deposits"].values() for t in dep["arrivals"]}
    txids |= {t for p in ents.values() for x in p["paths"] for t in x["txids"]}
    places = locate(view, txids)
    models = list(report.model_names)
    out = []
    for p in ents.values():
        by_chain: dict[str, list[str]] = {}
        for chain, _asset, addr in p["deposits"]:
            by_chain.setdefault(chain, []).append(addr)
        held: dict[tuple[str, str, str], int] = {}
        for chain, addrs in by_chain.items():
            for (a, asset), v in _balances(view, chain, kinds.get(chain), addrs).items():
                held[(chain, asset, a)] = v
        amounts = []
        for (chain, asset), per in sorted(p["totals"].items()):
            dec = p["decimals"][(chain, asset)]
            amounts.append({"chain": chain, "asset": asset, "symbol": p["symbols"][(chain, asset)], "decimals": dec,
                            "by_model": {m: {"amount": str(per[m]["amount"]),
                                             "display": _trim(format_units(per[m]["amount"], dec)),
                                             "usd": round(per[m]["usd"], 2) if per[m]["usd"] is not None else None}
                                         for m in models if m in per}})
        deposits = []
        for (chain, asset, addr), dep in sorted(p["deposits"].items()):
            dec = p["decimals"][(chain, asset)]
            h = held.get((chain, asset.lower() if asset.startswith("0x") else asset, addr), 0)
            arrivals = []
            for a in sorted(dep["arrivals"].values(), key=lambda a: (a["time"] or dt.datetime.min.replace(tzinfo=dt.UTC),
                                                                     a["txid"])):
                pl = places.get(a["txid"].lower())
                arrivals.append({"txid": a["txid"], "height": pl.height if pl else None,
                                 "block_hash": pl.block_hash if pl else None, "time": iso(a["time"]),
                                 "by_model": {m: str(v) for m, v in sorted(a["by_model"].items())}})
            deposits.append({"chain": chain, "address": addr, "asset": asset, "decimals": dec,
                             "by_model": {m: str(dep["by_model"][m]) for m in models if m in dep["by_model"]},
                             "held_now": str(h),
                             "stolen_still_held_at_most": {m: str(min(h, dep["by_model"][m])) for m in models
                                                           if m in dep["by_model"]},
                             "arrivals": arrivals})
        paths = []
        for x in p["paths"]:
            paths.append({**{k: v for k, v in x.items() if k != "txids"},
                          "transactions": [places[t.lower()].to_json() if t.lower() in places else {"txid": t}
                                           for t in x["txids"]]})
        primary = report.primary
        usd = sum((a["by_model"].get(primary, {}).get("usd") or 0) for a in amounts)
        out.append({"entity": p["entity"], "category": p["category"], "country": p["country"],
                    "sanctioned": p["sanctioned"], "incident": report.incident.name,
                    "incident_since": iso(report.incident.since), "primary_model": primary,
                    "models": models, "amounts": amounts, "usd_primary": round(usd, 2) if usd else None,
                    "deposits": deposits, "paths": paths,
                    "bundle": {"file": exported.path.name, "sha256": exported.sha256,
                               "manifest_sha256": exported.manifest_sha256,
                               "pinned": [{"chain": c["chain"], "height": c["height"], "hash": c["hash"]}
                                          for c in exported.manifest.get("chains", [])],
                               "tags_as_of": exported.manifest["tags"]["as_of"]}})
    out.sort(key=lambda x: (-(x["usd_primary"] or 0), -_first_amount(x), x["entity"]))
    return out


def _first_amount(p: dict[str, Any]) -> int:
    for a in p["amounts"]:
        v = a["by_model"].get(p["primary_model"])
        if v:
            return int(v["amount"])
    return 0


def letter(packet: Mapping[str, Any], template: str, fields: Mapping[str, str] | None = None) -> str:
    """The packet's letter: ``template`` (``string.Template`` placeholders) filled in; unknown placeholders
    are left as written."""
    models = packet["models"]
    amounts = []
    for a in packet["amounts"]:
        unit = a["symbol"] or a["asset"]
        per = ", ".join(f"{m}: {a['by_model'][m]['display']} {unit}" for m in models if m in a["by_model"])
        amounts.append(f"  - {a['chain']}: {per}")
    unspent = []
    for d in packet["deposits"]:
        held = int(d["held_now"])
        if held:
            unit = d["asset"] if not d["asset"].startswith("0x") else next(
                (a["symbol"] for a in packet["amounts"] if a["asset"] == d["asset"] and a["symbol"]), d["asset"])
            at_most = ", ".join(f"{m}: {_trim(format_units(int(v), d['decimals']))}"
                                for m, v in d["stolen_still_held_at_most"].items())
            unspent.append(f"  - {d['address']} ({d['chain']}): holds {_trim(format_units(held, d['decimals']))} {unit}; "
                           f"stolen funds still there at most {at_most}")
    since = packet.get("incident_since")
    inc_since = f" (from {since[:10]})" if since else ""
    values = {
        "entity": packet["entity"], "country": packet["country"] or "unknown",
        "incident": packet["incident"], "incident_since": inc_since,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "amounts": "\n".join(amounts) or "  (none)",
        "unspent": "\n".join(unspent) or "  (nothing is still held at those addresses)",
        "models": "poison (every coin that touched stolen funds counts whole), haircut (in proportion) and FIFO "
                  "(first in, first out)",
        "bundle_file": packet["bundle"]["file"], "bundle_sha256": packet["bundle"]["sha256"],
        "manifest_sha256": packet["bundle"]["manifest_sha256"],
        "requester": "", "contact": "", "case_reference": "",
        **(fields or {}),
    }
    return string.Template(template).safe_substitute(values)


def _packet_csv(p: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["entity", "chain", "address", "asset", "model", "amount", "txid", "height", "block_hash", "time",
                "held_now"])
    for d in p["deposits"]:
        for a in d["arrivals"]:
            for m, v in a["by_model"].items():
                w.writerow([p["entity"], d["chain"], d["address"], d["asset"], m, format_units(int(v), d["decimals"]),
                            a["txid"], a["height"], a["block_hash"], a["time"],
                            format_units(int(d["held_now"]), d["decimals"])])
    return buf.getvalue()


_CSS = """body{font:14px/1.45 Georgia,serif;max-width:52em;margin:2em auto;color:#111}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #999}
table{border-collapse:collapse;width:100%;font:12px/1.3 monospace;margin:.6em 0}
td,th{border:1px solid #bbb;padding:3px 5px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
td.n{white-space:nowrap}
pre.letter{white-space:pre-wrap;font:14px/1.5 Georgia,serif;border:1px solid #ccc;padding:1em}
.meta{color:#444;font-size:12px}@media print{h2{page-break-after:avoid}table{page-break-inside:auto}}"""


def _packet_html(p: Mapping[str, Any], text: str) -> str:
    e = html.escape

    def unit(d: Mapping[str, Any]) -> str:
        return next((a["symbol"] for a in p["amounts"] if a["asset"] == d["asset"] and a["symbol"]), d["asset"])

    rows = []
    for d in p["deposits"]:
        for a in d["arrivals"]:
            amounts = "<br>".join(f"{e(m)}: {e(_trim(format_units(int(a['by_model'][m]), d['decimals'])))}"
                                  for m in p["models"] if m in a["by_model"])
            rows.append(f"<tr><td class=n>{e(d['chain'])}</td><td>{e(d['address'])}</td><td class=n>{e(unit(d))}</td>"
                        f"<td class=n>{amounts}</td><td>{e(a['txid'])}</td><td class=n>{e(str(a['height']))}</td>"
                        f"<td>{e(a['time'] or '')}</td></tr>")
    held = "".join(f"<tr><td class=n>{e(d['chain'])}</td><td>{e(d['address'])}</td><td class=n>{e(unit(d))}</td>"
                   f"<td class=n>{e(_trim(format_units(int(d['held_now']), d['decimals'])))}</td><td class=n>"
                   + "<br>".join(f"{e(m)}: {e(_trim(format_units(int(v), d['decimals'])))}"
                                 for m, v in d["stolen_still_held_at_most"].items()) + "</td></tr>"
                   for d in p["deposits"])
    amounts = "".join(f"<tr><td>{e(a['chain'])}</td><td>{e(a['symbol'] or a['asset'])}</td>"
                      + "".join(f"<td>{e(a['by_model'][m]['display']) if m in a['by_model'] else '-'}</td>"
                                for m in p["models"]) + "</tr>" for a in p["amounts"])
    paths = "".join(f"<tr><td>{e(x['model'])}</td><td>{e(x['chain'])}</td><td>{x['path']}</td><td>"
                    + " &rarr; ".join(e(f"{t['txid']} (h {t.get('height')})") for t in x["transactions"])
                    + "</td></tr>" for x in p["paths"])
    b = p["bundle"]
    pins = ", ".join(f"{x['chain']} at {x['height']}" for x in b["pinned"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Freeze request: {e(p['entity'])}</title>
<style>{_CSS}</style></head><body>
<h1>Freeze request: {e(p['entity'])}</h1>
<p class="meta">{e(p['category'])}, {e(p['country'] or 'country unknown')}; incident {e(p['incident'])}.
Cut from evidence bundle {e(b['file'])} (SHA-256 {e(b['sha256'])}), pinned at {e(pins)}; tags as of
{e(b['tags_as_of'])}.</p>
<h2>Letter</h2><pre class="letter">{e(text)}</pre>
<h2>Amounts received, by taint model</h2>
<table><tr><th>chain</th><th>asset</th>{''.join(f'<th>{e(m)}</th>' for m in p['models'])}</tr>{amounts}</table>
<h2>Deposits (transactions, heights, times)</h2>
<table><tr><th>chain</th><th>address</th><th>asset</th><th>amount by model</th><th>transaction</th><th>height</th>
<th>time (UTC)</th></tr>{''.join(rows)}</table>
<h2>Still held at those addresses</h2>
<table><tr><th>chain</th><th>address</th><th>asset</th><th>held</th><th>stolen funds still there, at most</th></tr>
{held}</table>
<h2>Paths from the theft</h2>
<table><tr><th>model</th><th>chain</th><th>#</th><th>transactions</th></tr>{paths}</table>
</body></html>
"""


def pdf_converter() -> list[str] | None:
    """The command that prints an HTML file to PDF, when one is installed (headless Chromium or wkhtmltopdf)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        exe = shutil.which(name)
        if exe:
            return [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer"]
    exe = shutil.which("wkhtmltopdf")
    return [exe] if exe else None


def to_pdf(html_path: Path, pdf_path: Path, converter: list[str]) -> bool:
    if converter[0].endswith("wkhtmltopdf"):
        cmd = [*converter, "--quiet", str(html_path), str(pdf_path)]
    else:
        cmd = [*converter, f"--print-to-pdf={pdf_path}", html_path.resolve().as_uri()]
    try:
        subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return pdf_path.exists() and pdf_path.stat().st_size > 0


def freeze_requests(ws: Workspace, incident: str, out: Path | str, *, bundle: Path | str | None = None,
                    template: Path | str | None = None, fields: Mapping[str, str] | None = None,
                    pdf: bool | None = None, progress: Progress | None = None, **export: Any) -> Packets:
    """Export the bundle (to ``bundle``, default ``OUT/evidence-bundle.zip``) and write one packet per
    receiving entity under ``OUT/packets/`` plus ``OUT/index.*``. ``export``: export_bundle's options.
    ``pdf``: None = when a converter is installed."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tpl_path = Path(template) if template else TEMPLATE
    try:
        tpl = tpl_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{tpl_path}: no such letter template") from None
    exported = export_bundle(ws, incident, Path(bundle) if bundle else out / "evidence-bundle.zip",
                             progress=progress, **export)
    packets = build_packets(exported)
    converter = pdf_converter() if pdf is not False else None
    if pdf and converter is None:
        raise UsageError("--pdf: no HTML-to-PDF converter installed (chromium or wkhtmltopdf)")
    index = []
    for i, p in enumerate(packets, 1):
        d = out / "packets" / f"{i:02d}-{_slug(p['entity'])}"
        d.mkdir(parents=True, exist_ok=True)
        text = letter(p, tpl, fields)
        p["letter"] = text
        (d / "packet.json").write_bytes(canonical_json(p))
        (d / "packet.csv").write_text(_packet_csv(p), encoding="utf-8")
        (d / "letter.txt").write_text(text, encoding="utf-8")
        (d / "packet.html").write_text(_packet_html(p, text), encoding="utf-8")
        has_pdf = bool(converter) and to_pdf(d / "packet.html", d / "packet.pdf", converter)  # type: ignore[arg-type]
        index.append({"rank": i, "entity": p["entity"], "category": p["category"], "country": p["country"],
                      "usd_primary": p["usd_primary"],
                      "amounts": "; ".join(f"{a['chain']} {a['by_model'][p['primary_model']]['display']} "
                                           f"{a['symbol'] or a['asset']}" for a in p["amounts"]
                                           if p["primary_model"] in a["by_model"]),
                      "deposit_addresses": len({(x["chain"], x["address"]) for x in p["deposits"]}),
                      "folder": str(d.relative_to(out)), "pdf": has_pdf})
    doc = {"incident": exported.report.incident.name, "primary_model": exported.report.primary,
           "bundle": {"file": str(exported.path), "sha256": exported.sha256,
                      "manifest_sha256": exported.manifest_sha256}, "packets": index}
    (out / "index.json").write_bytes(canonical_json(doc))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(index[0]) if index else ["rank", "entity"], lineterminator="\n")
    w.writeheader()
    w.writerows(index)
    (out / "index.csv").write_text(buf.getvalue(), encoding="utf-8")
    e = html.escape
    def usd(v: float | None) -> str:
        return "" if v is None else f"${v:,.2f}"

    rows = "".join(f"<tr><td>{r['rank']}</td><td><a href=\"{e(r['folder'])}/packet.html\">{e(r['entity'])}</a></td>"
                   f"<td>{e(r['category'])}</td><td>{e(r['country'] or '')}</td><td>{e(r['amounts'])}</td>"
                   f"<td>{usd(r['usd_primary'])}</td><td>{r['deposit_addresses']}</td></tr>" for r in index)
    (out / "index.html").write_text(
        f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Freeze requests: "
        f"{e(doc['incident'])}</title><style>{_CSS}</style></head><body><h1>Freeze requests: {e(doc['incident'])}</h1>"
        f"<p class=\"meta\">Bundle {e(exported.path.name)} (SHA-256 {e(exported.sha256)}); amounts under the "
        f"{e(doc['primary_model'])} model, sorted by amount.</p><table><tr><th>#</th><th>entity</th><th>category</th>"
        f"<th>country</th><th>amount</th><th>USD</th><th>deposit addresses</th></tr>{rows}</table></body></html>\n",
        encoding="utf-8")
    return Packets(out, exported, packets, out / "index.json")


__all__ = ["RECEIVING_CATEGORIES", "Packets", "build_packets", "freeze_requests", "letter", "pdf_converter"]

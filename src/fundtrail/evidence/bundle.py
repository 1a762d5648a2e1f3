"""``evidence export``: one zip that pins everything a report depends on (docs/evidence.md).

The report is built on an as-of view of the workspace (trace/asof.py) pinned at every chain's current tip
(height and hash) and at the export time for tags, so :func:`fundtrail.evidence.verify.replay` later runs
exactly the same code on exactly the same view, whatever the workspace has ingested or imported since.

Bundle layout::

    manifest.json            format, versions, command and parameters, chains (height + hash), tag sources
                             (datasets, files, digests, import times), incident, export time, results
                             summary, SHA-256 of every other file
    manifest.sig             Ed25519 signature over manifest.json (when signed)
    signer.pub.pem           the signer's public key (when signed)
    SHA256SUMS               the same digests in sha256sum's format
    report/report.{html,json,csv}
    paths/paths.{json,csv}   evidence paths: transactions with chain, height, block hash and time
    raw/CHAIN/TXID.hex       Bitcoin transactions as serialised in their block
    raw/CHAIN/TXID.json      EVM transactions as the node's JSON-RPC gives them (with block and receipt)
    tags/deciding.{json,csv} the tags that decided each endpoint address, with their sources
    methodology/             methodology.md (what was run, measured accuracy) + tracing.md, heuristics.md
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import subprocess
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

import fundtrail
from fundtrail.errors import EvidenceError, UsageError
from fundtrail.evidence import rawtx
from fundtrail.evidence.chaindata import locate
from fundtrail.evidence.checks import check_raw
from fundtrail.incidents import get_incident
from fundtrail.model.amount import format_units
from fundtrail.progress import NullProgress, Progress
from fundtrail.report.model import Report
from fundtrail.store import Workspace
from fundtrail.trace.asof import AsOfWorkspace, as_of, tag_pins

FORMAT = "fundtrail-evidence"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
SIGNER = "signer.pub.pem"
SUMS = "SHA256SUMS"
UNLISTED = (MANIFEST, SIGNATURE, SIGNER)  # the files the manifest cannot list (it or its signature)
ZIP_TIME = (2000, 1, 1, 0, 0, 0)  # fixed entry times: the same content gives the same zip entries


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def iso(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical_json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, default=str, ensure_ascii=False) + "\n").encode()


@dataclass(frozen=True, slots=True)
class Exported:
    path: Path
    manifest: dict[str, Any]
    report: Report
    sha256: str  # of the zip file
    manifest_sha256: str
    view: Workspace


# --- versions and pins ------------------------------------------------------------------------------------

def git_commit() -> dict[str, Any]:
    """The git commit of the fundtrail source in use (when it runs from a checkout), and whether it has
    uncommitted changes."""
    src = Path(fundtrail.__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return {"git_commit": None, "git_dirty": None}
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--", "."], capture_output=True,
                               text=True, timeout=20)
        return {"git_commit": head.stdout.strip(), "git_dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}


def chain_pins(ws: Workspace) -> list[dict[str, Any]]:
    """Every chain of the workspace with the height and hash it was read to, and its clustering state."""
    out = []
    for name, state in sorted(ws.chains().items()):
        h = state.get("tip_height")
        if h is None:
            continue
        setting = ws.setting(f"cluster:{name}") or {}
        out.append({"chain": name, "kind": state.get("kind"), "network": state.get("network"),
                    "chain_id": state.get("chain_id"), "height": int(h), "hash": state.get("tip_hash"),
                    "clustered_through": setting.get("height"),
                    "change_heuristics": setting.get("change_heuristics", [] if setting else None),
                    "cluster_kind": setting.get("kind")})
    return out


def _file_digest(path: str) -> dict[str, Any]:
    p = Path(path)
    try:
        return {"path": path, "sha256": sha256(p.read_bytes()), "bytes": p.stat().st_size}
    except OSError:
        return {"path": path, "sha256": None, "note": "file not found at export (the rows' digest still pins it)"}


def tag_sources(view: Workspace) -> list[dict[str, Any]]:
    pins = tag_pins(view)
    for p in pins:
        p["files"] = [_file_digest(f) for f in p["files"]]
    return pins


def coinjoin_rules(view: Workspace) -> dict[str, Any]:
    """The CoinJoin rule, the detectors' constants of this version, and the verdicts per chain at the pins;
    the deposit-address heuristic's default parameters (cluster runs do not record other values)."""
    from dataclasses import asdict

    from fundtrail.cluster import coinjoin as cj
    from fundtrail.cluster.deposit import DepositParams

    counts: dict[str, int] = {}
    if view.row_count("coinjoin_txs"):
        t = view.query("SELECT chain, count(*) AS n FROM coinjoin_txs GROUP BY chain ORDER BY chain")
        counts = dict(zip(t["chain"].to_pylist(), t["n"].to_pylist(), strict=True))
    return {"rule": "a detected CoinJoin (coinjoin_txs) keeps its inputs apart in clustering and is traced through "
                    "with haircut taint under every model",
            "whirlpool_pools_sat": list(cj.WHIRLPOOL_POOLS), "wasabi_coordinators": list(cj.WASABI_COORDINATORS),
            "wasabi2_min_output_sat": cj.WASABI2_MIN_OUTPUT, "not_multi_party": sorted(cj.NOT_MULTI_PARTY),
            "detected_per_chain": counts, "deposit_address_defaults": asdict(DepositParams())}


def actors_digest(ws: Workspace) -> str:
    t = ws.read("actors")
    rows = sorted(json.dumps(r, sort_keys=True, default=str) for r in t.to_pylist())
    return sha256("\n".join(rows).encode())


# --- contents ----------------------------------------------------------------------------------------------

def results_summary(report: Report) -> dict[str, Any]:
    """Per model: endpoints (entity, chain, asset, amount in base units) and unspent totals: what replay
    compares."""
    out: dict[str, Any] = {}
    for s in report.models:
        r = s.result
        eps = sorted(({"entity": e.entity, "category": e.category, "country": e.country, "chain": e.chain,
                       "asset": e.asset, "amount": str(e.amount)} for e in r.endpoints),
                     key=lambda x: (x["chain"], x["asset"], x["entity"], x["category"]))
        unspent: dict[tuple[str, str], int] = {}
        for h in r.unspent:
            unspent[(h.chain, h.asset)] = unspent.get((h.chain, h.asset), 0) + h.amount
        traced = sorted(({"chain": a.chain, "asset": a.asset, "amount": str(a.amount)} for a in r.traced),
                        key=lambda x: (x["chain"], x["asset"]))
        out[s.model] = {"traced": traced, "endpoints": eps,
                        "unspent": [{"chain": c, "asset": a, "amount": str(v)} for (c, a), v in sorted(unspent.items())]}
    return out


def evidence_paths(report: Report) -> list[dict[str, Any]]:
    """Every endpoint path of every model (txids; places are added by the caller)."""
    out = []
    for s in report.models:
        for e in s.result.endpoints:
            for i, p in enumerate(e.paths, 1):
                out.append({"model": s.model, "entity": e.entity, "category": e.category, "country": e.country,
                            "chain": e.chain, "asset": e.asset, "symbol": e.symbol,
                            "endpoint_amount": format_units(e.amount, e.decimals), "path": i, "paths": len(e.paths),
                            "txids": list(p)})
    return out


def _deciding_tags(view: Workspace, report: Report, at: dt.datetime | None) -> list[dict[str, Any]]:
    """For each endpoint address: the attribution that decided it (resolve_labels) and the tag rows behind
    it (the winning tags of the address, or of its cluster), with dataset, file, line and import time."""
    from fundtrail.attribution.resolve import _ORDER, enriched_sql, resolve_labels

    wanted: dict[str, set[str]] = {}
    for s in report.models:
        for e in s.result.endpoints:
            addrs = set(e.addresses) | {d.address for d in e.deposits}
            wanted.setdefault(e.chain, set()).update(a for a in addrs if a and not a.startswith("#"))
    out: list[dict[str, Any]] = []
    cols = ["chain", "address", "entity", "label", "category", "country", "confidence", "source", "dataset",
            "file", "line", "tagpack", "as_of", "imported_at", "valid_from", "valid_to", "is_cluster_definer"]
    for chain, addrs in sorted(wanted.items()):
        res = resolve_labels(view, chain, at)
        if res.num_rows == 0:
            continue
        rows = [r for r in res.to_pylist() if r["address"] in addrs]
        if not rows:
            continue
        direct = sorted({r["address"] for r in rows if r["via"] == "address"})
        clusters = sorted({int(r["cluster_id"]) for r in rows if r["via"] == "cluster" and r["cluster_id"] is not None})
        con = view.connect()
        try:
            params = {"chain": chain, "at": at or dt.datetime.now(dt.UTC)}
            tag_rows: dict[Any, dict[str, Any]] = {}
            if direct:
                con.register("want_a", pa.table({"a": pa.array(direct, pa.string())}))
                filt = "t.chain = $chain AND t.address IN (SELECT a FROM want_a)"
                for r in con.sql(f"""SELECT * FROM ({enriched_sql(filt)})
                                     QUALIFY row_number() OVER (PARTITION BY address ORDER BY {_ORDER}) = 1""",
                                 params=params).to_arrow_table().to_pylist():
                    tag_rows[("a", r["address"])] = r
            if clusters:
                con.register("want_c", pa.table({"c": pa.array(clusters, pa.int64())}))
                filt = ("t.chain = $chain AND coalesce(t.is_cluster_definer, true) AND t.address IN (SELECT a.address "
                        "FROM cluster_members m JOIN addresses a ON a.chain = m.chain AND a.address_id = m.address_id "
                        "WHERE m.chain = $chain AND m.cluster_id IN (SELECT c FROM want_c))")
                for r in con.sql(f"""SELECT e.*, m.cluster_id AS cid FROM ({enriched_sql(filt)}) e
                                     JOIN addresses a ON a.chain = e.chain AND a.address = e.address
                                     JOIN cluster_members m ON m.chain = a.chain AND m.address_id = a.address_id
                                     QUALIFY row_number() OVER (PARTITION BY m.cluster_id ORDER BY {_ORDER}) = 1""",
                                 params=params).to_arrow_table().to_pylist():
                    tag_rows[("c", int(r["cid"]))] = r
        finally:
            con.close()
        for r in sorted(rows, key=lambda r: r["address"]):
            key = ("a", r["address"]) if r["via"] == "address" else ("c", int(r["cluster_id"] or -1))
            t = tag_rows.get(key)
            out.append({"chain": chain, "address": r["address"], "entity": r["entity"], "category": r["category"],
                        "country": r["country"], "confidence": r["confidence"], "source": r["source"],
                        "via": r["via"], "cluster_id": r["cluster_id"], "sanctioned": r["sanctioned"],
                        "tag": {c: (iso(t[c]) if isinstance(t.get(c), dt.datetime) else t.get(c)) for c in cols}
                        if t else None})
    return out


def methodology(docs_dir: Path, report: Report, chains: list[dict[str, Any]], version: dict[str, Any]) -> dict[str, bytes]:
    """methodology/methodology.md and verbatim copies of docs/tracing.md and docs/heuristics.md."""
    files: dict[str, bytes] = {}
    texts: dict[str, str] = {}
    for name in ("tracing.md", "heuristics.md"):
        p = docs_dir / name
        if not p.exists():
            raise UsageError(f"{p}: the methodology needs docs/tracing.md and docs/heuristics.md "
                             "(give --docs DIR when fundtrail runs from an installed package)")
        raw = p.read_bytes()
        files[f"methodology/{name}"] = raw
        texts[name] = raw.decode("utf-8", "replace")
    figures = measured_figures(texts)
    params = report.params
    lines = [
        "# Methodology of this bundle", "",
        f"fundtrail {version['version']}" + (f", commit {version['git_commit']}" if version.get("git_commit") else "")
        + (" (with uncommitted changes)" if version.get("git_dirty") else "") + ".", "",
        "## What was run", "",
        f"- Taint models: {', '.join(report.model_names)} (primary: {report.primary}); direction "
        f"{params.get('direction')}; hop limit {params.get('max_hops')}; dust threshold "
        f"{params.get('dust') if params.get('dust') is not None else 'none'}; mixer withdrawals "
        f"{'followed' if params.get('follow_mixers') else 'not followed'}.",
        "- Rules of the models, rounding (exact to the satoshi / wei), stops, crossings and conservation: "
        "methodology/tracing.md (docs/tracing.md of this version, verbatim).",
        "- Clustering heuristics, what each assumes and where it fails: methodology/heuristics.md "
        "(docs/heuristics.md of this version, verbatim).",
        "- CoinJoin rule: a transaction detected as a CoinJoin (coinjoin_txs) keeps its inputs apart in "
        "clustering and is traced through with haircut taint under every model.",
        "- Chains (read to height and block hash; clustering state):", ""]
    for c in chains:
        lines.append(f"  - {c['chain']} ({c.get('kind')}): height {c['height']}, block {c['hash']}; clustered "
                     f"through {c.get('clustered_through')}; change heuristics "
                     f"{', '.join(c.get('change_heuristics') or []) or 'none (co-spend only)'}")
    lines += ["", "## Measured accuracy (as stated in those documents)", "",
              "These figures come from fundtrail's own measurements on simulated worlds with ground truth; the "
              "documents say what they do and do not show about real-world accuracy.", ""]
    for name, block in figures:
        lines += [f"From {name}:", "", block, ""]
    if not figures:
        lines += ["(The documents of this version state no measured figures.)", ""]
    files["methodology/methodology.md"] = "\n".join(lines).encode()
    return files


def measured_figures(texts: Mapping[str, str]) -> list[tuple[str, str]]:
    """The paragraphs of the docs that state measured accuracy (precision, recall, accuracy with a figure),
    with the captions and tables that follow them."""
    import re

    keys = re.compile(r"precision|recall|accuracy|false positive", re.I)
    figure = re.compile(r"\d\.\d")
    out = []
    for name, text in texts.items():
        blocks = [b.strip("\n") for b in text.split("\n\n")]
        i = 0
        while i < len(blocks):
            b = blocks[i]
            if keys.search(b) and figure.search(b) and not b.lstrip().startswith("#"):
                group = [b]
                while i + 1 < len(blocks) and (blocks[i + 1].lstrip().startswith("|")
                                               or blocks[i + 1].rstrip().endswith(":")):
                    i += 1
                    group.append(blocks[i])
                out.append((name, "\n\n".join(group)))
            elif keys.search(b) and b.rstrip().endswith(":") and i + 1 < len(blocks) \
                    and blocks[i + 1].lstrip().startswith("|"):
                group = [b]
                while i + 1 < len(blocks) and (blocks[i + 1].lstrip().startswith("|")
                                               or blocks[i + 1].rstrip().endswith(":")):
                    i += 1
                    group.append(blocks[i])
                out.append((name, "\n\n".join(group)))
            i += 1
    return out


def _csv(rows: list[dict[str, Any]], columns: Sequence[str]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return buf.getvalue().encode()


def default_docs_dir() -> Path:
    return Path(fundtrail.__file__).resolve().parents[2] / "docs"


# --- export ----------------------------------------------------------------------------------------------

def export_bundle(ws: Workspace, incident_name: str, out: Path | str, *,
                  models: Sequence[str] = ("poison", "haircut", "fifo"), primary: str | None = None,
                  direction: str = "forward", max_hops: int = 20, dust: int | None = None,
                  follow_mixers: bool = False, blocks_dirs: Mapping[str, Path | str] | None = None,
                  rpc: Mapping[str, str] | None = None, sign_key: Path | str | None = None,
                  docs_dir: Path | str | None = None, command: str | None = None,
                  progress: Progress | None = None, at: dt.datetime | None = None) -> Exported:
    """Export the evidence bundle of ``incident_name`` to ``out`` (a .zip). ``blocks_dirs`` /
    ``rpc``: per chain, where the raw transactions are read from (block files for Bitcoin, a JSON-RPC URL or
    recording for EVM); chains without one get no raw transactions (the manifest says so)."""
    from fundtrail.report.render import render
    from fundtrail.report.service import build_report

    progress = progress or NullProgress()
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise UsageError(f"--out {out}: an evidence bundle is a .zip file")
    incident = get_incident(ws, incident_name)
    chains = chain_pins(ws)
    if not chains:
        raise UsageError(f"workspace {ws.home} holds no chain to pin")
    now = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    view = as_of(ws, {c["chain"]: c["height"] for c in chains}, now)
    assert isinstance(view, AsOfWorkspace)
    report = build_report(view, incident.name, models=models, primary=primary, direction=direction,
                          max_hops=max_hops, dust=dust, follow_mixers=follow_mixers, progress=progress)
    version = {"version": fundtrail.__version__, **git_commit()}
    files: dict[str, bytes] = {
        "report/report.html": render(report, "html").encode(),
        "report/report.json": render(report, "json").encode(),
        "report/report.csv": render(report, "csv").encode(),
    }
    # evidence paths with their blocks
    paths = evidence_paths(report)
    places = locate(view, {t for p in paths for t in p["txids"]})
    for p in paths:
        p["transactions"] = [places[t.lower()].to_json() if t.lower() in places else
                             {"txid": t, "chain": None, "height": None, "block_hash": None, "time": None,
                              "note": "not in the workspace"} for t in p.pop("txids")]
    files["paths/paths.json"] = canonical_json(paths)
    flat = [{"model": p["model"], "entity": p["entity"], "chain": p["chain"], "asset": p["asset"],
             "endpoint_amount": p["endpoint_amount"], "path": p["path"], "hop": i, **tx}
            for p in paths for i, tx in enumerate(p["transactions"], 1)]
    files["paths/paths.csv"] = _csv(flat, ["model", "entity", "chain", "asset", "endpoint_amount", "path", "hop",
                                           "txid", "height", "block_hash", "time"])
    # raw transactions
    raw_info = _raw_transactions(view, chains, places, blocks_dirs or {}, rpc or {}, files)
    # tags that decided the endpoints
    deciding = _deciding_tags(view, report, now)
    files["tags/deciding.json"] = canonical_json(deciding)
    files["tags/deciding.csv"] = _csv([{**d, **{f"tag_{k}": v for k, v in (d["tag"] or {}).items()}} for d in deciding],
                                      ["chain", "address", "entity", "category", "country", "confidence", "source",
                                       "via", "cluster_id", "tag_dataset", "tag_file", "tag_line", "tag_as_of",
                                       "tag_imported_at", "tag_valid_from", "tag_valid_to"])
    files.update(methodology(Path(docs_dir) if docs_dir else default_docs_dir(), report, chains, version))
    manifest: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "fundtrail": version,
        "command": command or f"fundtrail evidence export {incident.name} --out {out.name}",
        "parameters": {"models": list(report.model_names), "primary": report.primary, "direction": direction,
                       "max_hops": max_hops, "dust": dust, "follow_mixers": follow_mixers,
                       "coinjoin": coinjoin_rules(view),
                       "heuristics": {c["chain"]: {"cluster_kind": c.get("cluster_kind"),
                                                   "change_heuristics": c.get("change_heuristics")} for c in chains}},
        "incident": incident.to_json(),
        "chains": chains,
        "tags": {"as_of": iso(now), "resolved_at": iso(now), "datasets": tag_sources(view),
                 "actors_sha256": actors_digest(view)},
        "raw_transactions": raw_info,
        "exported_at": iso(now),
        "results": results_summary(report),
        "files": {name: {"sha256": sha256(data), "bytes": len(data)} for name, data in sorted(files.items())},
    }
    sums = "".join(f"{sha256(data)}  {name}\n" for name, data in sorted(files.items())).encode()
    files[SUMS] = sums
    manifest["files"][SUMS] = {"sha256": sha256(sums), "bytes": len(sums)}
    mbytes = canonical_json(manifest)
    if sign_key is not None:
        from fundtrail.evidence import signing

        key = signing.load_private(sign_key)
        files[SIGNATURE] = signing.sign(key, mbytes)
        files[SIGNER] = signing.public_pem(key).encode()
    files[MANIFEST] = mbytes
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name in [MANIFEST, *sorted(n for n in files if n != MANIFEST)]:
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, files[name])
    tmp.replace(out)
    return Exported(out, manifest, report, sha256(out.read_bytes()), sha256(mbytes), view)


def _raw_transactions(view: Workspace, chains: list[dict[str, Any]], places: Mapping[str, Any],
                      blocks_dirs: Mapping[str, Path | str], rpc: Mapping[str, str],
                      files: dict[str, bytes]) -> dict[str, Any]:
    info: dict[str, Any] = {}
    kinds = {c["chain"]: c.get("kind") for c in chains}
    networks = {c["chain"]: c.get("network") for c in chains}
    by_chain: dict[str, list[Any]] = {}
    for p in places.values():
        by_chain.setdefault(p.chain, []).append(p)
    for chain, ps in sorted(by_chain.items()):
        kind = kinds.get(chain)
        got: dict[str, bytes] = {}
        if kind == "utxo" and chain in blocks_dirs:
            source = f"block files ({Path(blocks_dirs[chain]).name})"
            bf = rawtx.BlockFiles(blocks_dirs[chain], networks.get(chain) or chain)
            try:
                hexes = rawtx.bitcoin_raw(bf, [(p.txid, p.block_hash) for p in ps])
            finally:
                bf.close()
            got = {f"raw/{chain}/{t}.hex": (h + "\n").encode() for t, h in hexes.items()}
        elif kind == "utxo" and chain in rpc:
            url = rpc[chain]
            source = "Bitcoin Core JSON-RPC getblock, " + _where(url)
            hexes = rawtx.bitcoin_rpc_raw(url, [(p.txid, p.block_hash) for p in ps])
            got = {f"raw/{chain}/{t}.hex": (h + "\n").encode() for t, h in hexes.items()}
        elif kind == "evm" and chain in rpc:
            url = rpc[chain]
            source = "JSON-RPC " + _where(url)
            objs = rawtx.evm_raw(url, [(p.txid, p.height) for p in ps if p.height is not None])
            got = {f"raw/{chain}/{t}.json": canonical_json(o) for t, o in objs.items()}
        else:
            want = "--blocks-dir (or --rpc)" if kind == "utxo" else "--rpc"
            info[chain] = {"source": None, "included": 0, "missing": sorted(p.txid for p in ps),
                           "note": f"no raw transaction source given for {chain} ({want} {chain}=...)"}
            continue
        problems = [m for name, data in got.items() for m in check_raw(view, name, data, places)]
        if problems:
            raise EvidenceError(f"the raw transactions read for {chain} do not match the workspace", problems)
        files.update(got)
        have = {n.rsplit("/", 1)[1].split(".")[0] for n in got}
        info[chain] = {"source": source, "included": len(got),
                       "missing": sorted(p.txid for p in ps if p.txid not in have)}
    return info


def _where(url: str) -> str:
    """A node URL as the manifest names it: the host only (credentials and API keys in paths stay out)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return f"node at {parts.hostname}"
    return f"recording ({Path(parts.path or url).name})"


def read_bundle(path: Path | str) -> dict[str, bytes]:
    """Every file of a bundle by name (the zip is read whole: bundles are small)."""
    p = Path(path)
    try:
        with zipfile.ZipFile(p) as z:
            return {i.filename: z.read(i.filename) for i in z.infolist() if not i.is_dir()}
    except FileNotFoundError:
        raise UsageError(f"{p}: no such bundle") from None
    except (zipfile.BadZipFile, OSError) as e:
        from fundtrail.errors import InputError

        raise InputError(f"not a readable zip file: {e}", path=p) from None

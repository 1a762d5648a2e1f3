"""Evidence exports of the service (``POST /v1/incidents/{name}/evidence``, docs/evidence.md).

One export is one folder under ``HOME/service/evidence/``, named by the incident, the time and a random
suffix (never by anything the caller gives as a path): ``bundle.zip`` (written by the same
:func:`fundtrail.evidence.bundle.export_bundle` as ``fundtrail evidence export``), ``export.json`` (what the
API answered), and, when freeze requests were asked for, the packets folder of
:func:`fundtrail.evidence.freeze.freeze_requests` with ``freeze-requests.zip`` (that folder zipped).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import shlex
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fundtrail.errors import FieldError, NotFoundError
from fundtrail.evidence.bundle import Exported, export_bundle, sha256
from fundtrail.evidence.freeze import freeze_requests
from fundtrail.incidents import list_incidents
from fundtrail.store import Workspace

MODELS = ("poison", "haircut", "fifo")
BUNDLE = "bundle.zip"
PACKETS = "freeze-requests"
PACKETS_ZIP = "freeze-requests.zip"
META = "export.json"
EXPORT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,60}-[0-9]{8}t[0-9]{6}z-[0-9a-f]{8}$")


def exports_dir(home: Path | str) -> Path:
    return Path(home) / "service" / "evidence"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "incident"


def _options(models: Sequence[str] | None, primary: str | None) -> tuple[tuple[str, ...], str]:
    ms = tuple(dict.fromkeys(models or MODELS))
    if not ms:
        raise FieldError("models", "models: name at least one of haircut, poison, fifo (or leave it out for all)")
    for m in ms:
        if m not in MODELS:
            raise FieldError("models", f"models: {m!r} is not one of haircut, poison, fifo")
    if primary is None:
        primary = "haircut" if "haircut" in ms else ms[0]
    elif primary not in ms:
        raise FieldError("primary", f"primary: {primary!r} is not among the exported models ({', '.join(ms)})")
    return ms, primary


def raw_sources(ws: Workspace, sources: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Where the raw transactions can be read, from the sources the service follows (``--source``,
    monitor/sources.py): block directories per Bitcoin chain, JSON-RPC URLs per EVM chain (Bitcoin Core RPC
    sources give none: the bundle reads raw Bitcoin transactions from block files)."""
    from fundtrail.monitor.sources import parse_sources

    chains = ws.chains()
    blocks: dict[str, str] = {}
    rpc: dict[str, str] = {}
    for s in parse_sources(tuple(sources)):
        if s.kind == "evm" and s.name in chains:
            rpc[s.name] = s.location
        elif s.kind == "blocks":
            for name, st in chains.items():
                if st.get("kind") == "utxo" and (name == s.name or st.get("network") == s.name):
                    blocks.setdefault(name, s.location)
    return blocks, rpc


def _zip_folder(folder: Path, out: Path) -> None:
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            z.write(f, f"{PACKETS}/{f.relative_to(folder).as_posix()}")
    tmp.replace(out)


def export_incident(ws: Workspace, home: Path | str, incident: str, *, user: str | None,
                    models: Sequence[str] | None = None, primary: str | None = None, max_hops: int = 20,
                    with_freeze_requests: bool = False, sources: Sequence[str] = (),
                    at: dt.datetime | None = None) -> dict[str, Any]:
    """Export ``incident``'s evidence bundle (and its freeze-request packets) into a new export folder;
    the summary the API answers with (also kept as ``export.json``). ``sources``: the service's followed
    sources, where the raw transactions are read (:func:`raw_sources`)."""
    if incident not in {i.name for i in list_incidents(ws)}:
        raise NotFoundError(f"no incident named {incident!r}")
    ms, prim = _options(models, primary)
    now = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    eid = f"{_slug(incident)}-{now:%Y%m%dt%H%M%Sz}-{secrets.token_hex(4)}"
    d = exports_dir(home) / eid
    d.mkdir(parents=True)
    cmd = shlex.join(["fundtrail", "evidence", "freeze-requests" if with_freeze_requests else "export", incident,
                      "--out", PACKETS if with_freeze_requests else BUNDLE,
                      *[x for m in ms for x in ("--model", m)], "--max-hops", str(max_hops)])
    blocks, rpc = raw_sources(ws, sources)
    opts: dict[str, Any] = {"models": ms, "primary": prim, "max_hops": max_hops, "command": cmd,
                            "blocks_dirs": blocks, "rpc": rpc}
    try:
        packets_info = None
        if with_freeze_requests:
            p = freeze_requests(ws, incident, d / PACKETS, bundle=d / BUNDLE, pdf=False, **opts)
            e: Exported = p.bundle
            _zip_folder(d / PACKETS, d / PACKETS_ZIP)
            data = (d / PACKETS_ZIP).read_bytes()
            packets_info = {"packets": len(p.packets), "sha256": sha256(data), "bytes": len(data),
                            "download": f"/v1/evidence/{eid}/freeze-requests"}
        else:
            e = export_bundle(ws, incident, d / BUNDLE, **opts)
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise
    m = e.manifest
    meta = {
        "id": eid, "incident": incident, "created": m["exported_at"], "created_by": user,
        "sha256": e.sha256, "bytes": e.path.stat().st_size, "manifest_sha256": e.manifest_sha256,
        "parameters": {"models": list(ms), "primary": prim, "max_hops": max_hops,
                       "freeze_requests": with_freeze_requests},
        "pins": {"chains": [{"chain": c["chain"], "height": c["height"], "hash": c["hash"]} for c in m["chains"]],
                 "tags_as_of": m["tags"]["as_of"], "tag_datasets": len(m["tags"]["datasets"])},
        "raw_transactions": {c: {"included": i["included"], "missing": len(i["missing"])}
                             for c, i in sorted(m["raw_transactions"].items())},
        "files": len(m["files"]), "signed": False,
        "download": f"/v1/evidence/{eid}",
        "freeze_requests": packets_info,
    }
    (d / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def find_export(home: Path | str, eid: str) -> tuple[dict[str, Any], Path]:
    """The summary and folder of export ``eid`` (404 when there is none)."""
    d = exports_dir(home) / eid
    if not EXPORT_ID.match(eid) or not (d / META).is_file():
        raise NotFoundError(f"no evidence export {eid!r}")
    return json.loads((d / META).read_text(encoding="utf-8")), d


def export_file(home: Path | str, eid: str, part: str = "bundle") -> tuple[Path, str]:
    """The file to download for ``part`` (``bundle`` or ``freeze-requests``) and its download name."""
    meta, d = find_export(home, eid)
    if part == "bundle":
        return d / BUNDLE, f"{eid}.zip"
    if not meta.get("freeze_requests"):
        raise NotFoundError(f"evidence export {eid!r} has no freeze-request packets (export again with "
                            "freeze_requests: true)")
    return d / PACKETS_ZIP, f"{eid}-freeze-requests.zip"


__all__ = ["export_file", "export_incident", "exports_dir", "find_export"]

"""``evidence verify``: every digest, the signature, the raw transactions against the workspace's chain
data, and (``--replay``) the trace re-run on the workspace as of the bundle's pins.

Nothing here trusts the bundle: the manifest's digests are recomputed over the files as found, a file the
manifest does not list is a problem, the signature is checked over the exact bytes of ``manifest.json``,
and each raw transaction is re-hashed (its txid) and compared with the workspace's record of it (same
chain, same height, same block hash, same output values / sender, receiver and value).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fundtrail.errors import FundtrailError
from fundtrail.evidence.bundle import (
    FORMAT,
    MANIFEST,
    SIGNATURE,
    SIGNER,
    SUMS,
    UNLISTED,
    read_bundle,
    results_summary,
    sha256,
)
from fundtrail.evidence.chaindata import block_hash, locate
from fundtrail.evidence.checks import check_raw
from fundtrail.store import Workspace


@dataclass(slots=True)
class Verification:
    """What verify found: ``problems`` name each mismatching file, transaction or digest (empty: verified)."""

    bundle: str
    manifest: dict[str, Any] = field(default_factory=dict)
    checked_files: int = 0
    checked_raw: int = 0
    checked_paths: int = 0
    signer: str | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    replayed: bool = False
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.differences

    def summary(self) -> list[str]:
        m = self.manifest
        inc = (m.get("incident") or {}).get("name")
        lines = [f"bundle {self.bundle}: incident {inc}, exported {m.get('exported_at')} by fundtrail "
                 f"{(m.get('fundtrail') or {}).get('version')}",
                 f"  {self.checked_files} file digests checked; signature: "
                 + (f"valid (signer key sha256 {self.signer})" if self.signer else "none"),
                 f"  {self.checked_raw} raw transactions and {self.checked_paths} path transactions checked "
                 "against the workspace"]
        for c in m.get("chains", []):
            lines.append(f"  pinned: {c['chain']} at height {c['height']} ({c['hash']})")
        if self.replayed:
            lines.append("  replay: " + ("same endpoints and amounts under every model" if not self.differences
                                         else f"{len(self.differences)} difference(s)"))
        lines += [f"  note: {n}" for n in self.notes]
        return lines


def verify_bundle(path: Path | str, ws: Workspace | None = None, *, key: Path | str | None = None,
                  replay: bool = False) -> Verification:
    """Verify a bundle (see the module docstring). ``ws``: the workspace whose chain data the transactions
    are checked against (None: digests and signature only). ``key``: a public key file the signature must
    be made with. ``replay``: re-run the trace as of the pins and compare."""
    files = read_bundle(path)
    v = Verification(str(path))
    mbytes = files.get(MANIFEST)
    if mbytes is None:
        v.problems.append(f"{MANIFEST}: missing from the bundle")
        return v
    try:
        manifest = json.loads(mbytes)
    except ValueError as e:
        v.problems.append(f"{MANIFEST}: not valid JSON ({e})")
        return v
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        v.problems.append(f"{MANIFEST}: not a {FORMAT} manifest")
        return v
    v.manifest = manifest
    listed: dict[str, Any] = manifest.get("files") or {}
    # digests
    for name, meta in sorted(listed.items()):
        data = files.get(name)
        if data is None:
            v.problems.append(f"{name}: listed in the manifest but missing from the bundle")
            continue
        got = sha256(data)
        if got != meta.get("sha256"):
            v.problems.append(f"{name}: SHA-256 {got} differs from the manifest's {meta.get('sha256')}")
        v.checked_files += 1
    for name in sorted(set(files) - set(listed) - set(UNLISTED)):
        v.problems.append(f"{name}: in the bundle but not listed in the manifest")
    if SUMS in files:
        for line in files[SUMS].decode("utf-8", "replace").splitlines():
            digest, _, name = line.partition("  ")
            if name and listed.get(name, {}).get("sha256") != digest:
                v.problems.append(f"{SUMS}: the digest of {name} differs from the manifest's")
    # signature
    sig, pub = files.get(SIGNATURE), files.get(SIGNER)
    if sig is not None or pub is not None or key is not None:
        _check_signature(v, mbytes, sig, pub, key)
    if v.signer is not None and key is None:
        v.notes.append(f"the signature was checked with the key inside the bundle ({SIGNER}); give --key with the "
                       "investigator's published key to know who signed")
    if ws is None:
        v.notes.append("no workspace: raw transactions and paths not checked against chain data")
        return v
    _check_chain_data(v, files, ws)
    if replay:
        v.replayed = True
        v.differences = replay_bundle(manifest, ws)
    return v


def _check_signature(v: Verification, mbytes: bytes, sig: bytes | None, pub: bytes | None,
                     key: Path | str | None) -> None:
    from fundtrail.evidence import signing

    if sig is None:
        v.problems.append(f"{SIGNATURE}: missing (the bundle is not signed)")
        return
    embedded = None
    if pub is not None:
        try:
            embedded = signing.load_public(pub.decode("utf-8", "replace"), SIGNER)
        except FundtrailError as e:
            v.problems.append(f"{SIGNER}: not a readable Ed25519 public key ({e})")
            return
    if key is not None:
        kp = Path(key)
        try:
            pk = signing.load_public(kp.read_text(), str(kp))
        except (OSError, FundtrailError) as e:
            v.problems.append(f"--key {kp}: not a readable Ed25519 public key ({e})")
            return
        if embedded is not None and signing.fingerprint(embedded) != signing.fingerprint(pk):
            v.problems.append(f"{SIGNER}: not the key given with --key ({kp})")
    elif embedded is not None:
        pk = embedded
    else:
        v.problems.append(f"{SIGNER}: missing: give the signer's public key with --key")
        return
    if signing.verify(pk, mbytes, sig):
        v.signer = signing.fingerprint(pk)
    else:
        v.problems.append(f"{SIGNATURE}: the signature over {MANIFEST} does not verify with "
                          + (SIGNER if key is None else f"the key {Path(key).name}"))


def _check_chain_data(v: Verification, files: Mapping[str, bytes], ws: Workspace) -> None:
    m = v.manifest
    known = ws.chains()
    for c in m.get("chains", []):
        if c["chain"] not in known:
            v.problems.append(f"chain {c['chain']}: not in the workspace {ws.home}")
            continue
        tip = known[c["chain"]].get("tip_height")
        if tip is None or tip < c["height"]:
            v.problems.append(f"chain {c['chain']}: the workspace is at height {tip}, below the pinned {c['height']}")
            continue
        h, _ = block_hash(ws, c["chain"], int(c["height"]))
        if h != (c.get("hash") or "").lower():
            v.problems.append(f"chain {c['chain']}: block {c['height']} is {h} in the workspace, "
                              f"{c.get('hash')} in the bundle (reorganised or another chain)")
    paths: list[dict[str, Any]] = []
    if "paths/paths.json" in files:
        try:
            paths = json.loads(files["paths/paths.json"])
        except ValueError as e:
            v.problems.append(f"paths/paths.json: not valid JSON ({e})")
    stated: dict[str, dict[str, Any]] = {}
    claims: set[tuple[str, Any, Any, Any]] = set()
    for p in paths:
        for t in p.get("transactions", []):
            if t.get("txid"):
                txid = str(t["txid"]).lower()
                stated.setdefault(txid, t)
                claims.add((txid, t.get("chain"), t.get("height"), t.get("block_hash") or None))
    raw_names = [n for n in files if n.startswith("raw/")]
    wanted = set(stated) | {n.rsplit("/", 1)[1].rsplit(".", 1)[0].lower() for n in raw_names}
    places = locate(ws, wanted)
    for txid, chain, height, bh in sorted(claims, key=str):
        pl = places.get(txid)
        if pl is None:
            v.problems.append(f"paths/paths.json: transaction {txid} is not in the workspace")
        elif height != pl.height or bh != pl.block_hash or (chain and chain != pl.chain):
            v.problems.append(f"paths/paths.json: transaction {txid} is at {pl.chain} height {pl.height} block "
                              f"{pl.block_hash} in the workspace, not height {height} block {bh}")
    v.checked_paths = len(stated)
    for name in sorted(raw_names):
        txid = name.rsplit("/", 1)[1].rsplit(".", 1)[0].lower()
        v.problems += check_raw(ws, name, files[name], places, stated.get(txid))
        v.checked_raw += 1
    for chain, info in sorted((m.get("raw_transactions") or {}).items()):
        if info.get("missing"):
            v.notes.append(f"{chain}: {len(info['missing'])} path transaction(s) have no raw copy in the bundle"
                           + (f" ({info['note']})" if info.get("note") else ""))


def replay_bundle(manifest: Mapping[str, Any], ws: Workspace) -> list[str]:
    """Re-run the bundle's report on ``ws`` as of its pins; the differences (none expected)."""
    from fundtrail.report.service import build_report
    from fundtrail.trace.asof import as_of, tag_pins

    p = manifest.get("parameters") or {}
    heights = {c["chain"]: int(c["height"]) for c in manifest.get("chains", [])}
    tags = manifest.get("tags") or {}
    view = as_of(ws, heights, tags.get("as_of"))
    diffs: list[str] = []
    pinned = {d["dataset"]: d for d in tags.get("datasets", [])}
    now = {d["dataset"]: d for d in tag_pins(view)}
    for ds in sorted(set(pinned) | set(now)):
        a, b = pinned.get(ds), now.get(ds)
        if a is None:
            diffs.append(f"tags: dataset {ds} is known as of {tags.get('as_of')} in the workspace but not in the bundle")
        elif b is None:
            diffs.append(f"tags: dataset {ds} of the bundle is gone from the workspace")
        elif a.get("rows_sha256") != b.get("rows_sha256"):
            diffs.append(f"tags: dataset {ds} as of {tags.get('as_of')} differs from the bundle's (rows digest "
                         f"{b.get('rows_sha256')} vs {a.get('rows_sha256')}: a snapshot was re-imported over)")
    incident = (manifest.get("incident") or {}).get("name")
    report = build_report(view, incident, models=p.get("models") or ("poison", "haircut", "fifo"),
                          primary=p.get("primary"), direction=p.get("direction", "forward"),
                          max_hops=int(p.get("max_hops", 20)), dust=p.get("dust"),
                          follow_mixers=bool(p.get("follow_mixers", False)))
    diffs += compare_results(manifest.get("results") or {}, results_summary(report))
    return diffs


def compare_results(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Differences in traced amounts, endpoints (entity, chain, asset, amount) and unspent totals."""
    out: list[str] = []
    for model in sorted(set(old) | set(new)):
        a, b = old.get(model), new.get(model)
        if a is None or b is None:
            out.append(f"{model}: model {'missing from the replay' if b is None else 'not in the bundle'}")
            continue
        for section, keyf in (("traced", lambda x: (x["chain"], x["asset"])),
                              ("endpoints", lambda x: (x["entity"], x["category"], x["chain"], x["asset"])),
                              ("unspent", lambda x: (x["chain"], x["asset"]))):
            ea = {keyf(x): x["amount"] for x in a.get(section, [])}
            eb = {keyf(x): x["amount"] for x in b.get(section, [])}
            for k in sorted(set(ea) | set(eb), key=str):
                if ea.get(k) != eb.get(k):
                    out.append(f"{model}: {section} {' / '.join(str(x) for x in k)}: bundle {ea.get(k, 'none')}, "
                               f"replay {eb.get(k, 'none')}")
    return out


__all__ = ["Verification", "compare_results", "replay_bundle", "verify_bundle"]

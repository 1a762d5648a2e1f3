"""The Etherscan label dump (brianleect/etherscan-labels).

* ``etherscan_combinedAccountLabels.json``: ``{address: {"name": str, "labels": [slug, …]}}``.
* ``accounts/<slug>.json``: ``{address: name}`` for one label slug (the file's stem).

The name (``Binance 14``, ``Tornado.Cash: 1 ETH``) is the tag's label; the entity is the name without a
trailing number or ``: detail`` (``Binance``, ``Tornado.Cash``). The slugs map into the taxonomy
(taxonomy.ETHERSCAN_LABEL); the most specific one wins. Confidence: ``web_crawl``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fundtrail.attribution import taxonomy as T
from fundtrail.attribution.confidence import level_value
from fundtrail.attribution.records import TAG_SCHEMA, Issue, Parsed, Snapshot, date_in_name, now, ts
from fundtrail.attribution.tagpack import file_date
from fundtrail.errors import TagFileError
from fundtrail.model.address import eip55

SOURCE = "etherscan"
CONFIDENCE_NAME = "web_crawl"
_PAREN = re.compile(r"\s\(")
MAX_NAME = 256


def entity_of(name: str | None) -> str | None:
    """``Binance 14`` -> ``Binance``, ``Tornado.Cash: 1 ETH`` -> ``Tornado.Cash``, ``X (old)`` -> ``X``.
    Linear time (string scans, no backtracking regex over the name)."""
    if not name:
        return None
    full = name.strip()[:MAX_NAME]
    e = full.split(":", 1)[0]
    m = _PAREN.search(e) if e.endswith(")") else None
    if m:
        e = e[: m.start()]
    else:
        body = e.rstrip("0123456789")
        if body != e and body[-1:].isspace():
            e = body
    e = e.strip()
    return e or full


def _load(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TagFileError(f"not valid JSON: {e.msg}", path=path, line=e.lineno) from e
    if not isinstance(doc, dict):
        raise TagFileError("not an Etherscan label file (expected an object keyed by address)", path=path)
    return doc


def _lines(path: Path) -> dict[str, int]:
    """The line of each address key (the dump is one line; then every address is on line 1)."""
    text = path.read_text(encoding="utf-8")
    if text.count("\n") <= 1:
        return {}
    out: dict[str, int] = {}
    for no, t in enumerate(text.splitlines(), 1):
        m = re.match(r'\s*"(0x[0-9a-fA-F]{40})"\s*:', t)
        if m:
            out.setdefault(m[1], no)
    return out


def _validate_evm(addrs: pa.Array) -> tuple[np.ndarray, list[str | None]]:
    """Vectorised EVM validation: (valid mask, reason per invalid address). EIP-55 only for mixed case."""
    ok = pc.match_substring_regex(addrs, r"^0x[0-9a-fA-F]{40}$").to_numpy(zero_copy_only=False)
    lower = pc.utf8_lower(addrs)
    upper_body = pc.utf8_upper(pc.utf8_slice_codeunits(addrs, 2))
    body = pc.utf8_slice_codeunits(addrs, 2)
    mixed = ok & ~pc.equal(addrs, lower).to_numpy(zero_copy_only=False) & \
        ~pc.equal(body, upper_body).to_numpy(zero_copy_only=False)
    reasons: list[str | None] = [None] * len(addrs)
    py = addrs.to_pylist()
    for i in np.flatnonzero(mixed):
        if eip55(py[i]) != py[i]:
            ok[i] = False
            reasons[i] = "EIP-55 checksum mismatch"
    for i in np.flatnonzero(~ok):
        reasons[i] = reasons[i] or "not a 0x-prefixed 40-hex-digit address"
    return ok, reasons


def _snapshot(path: Path, addresses: list[str], names: list[str | None], labels: list[list[str]],
              dataset: str, as_of: dt.datetime | None, fmt: str, out: Parsed) -> None:
    snap = ts(as_of) or date_in_name(path) or file_date(path)
    n = len(addresses)
    addr = pa.array(addresses, pa.string())
    ok, reasons = _validate_evm(addr)
    lines = _lines(path)
    line_of = [lines.get(a, 1 if not lines else None) for a in addresses]
    for i in np.flatnonzero(~ok):
        out.issues.append(Issue(str(path), line_of[i], str(reasons[i]), address=addresses[i]))
    cats = [T.from_etherscan(lb) for lb in labels]
    sanctioned = [any(x in T.ETHERSCAN_SANCTIONED for x in lb) for lb in labels]
    label = [nm if nm else (lb[0] if lb else None) for nm, lb in zip(names, labels, strict=True)]
    entity = [entity_of(nm) for nm in names]
    imported = now()
    t = pa.table({
        "chain": pa.array(["ethereum"] * n, pa.string()),
        "address": pc.utf8_lower(addr),
        "label": pa.array(label, pa.string()),
        "category": pa.array(cats, pa.string()),
        "entity": pa.array(entity, pa.string()),
        "source": pa.array([SOURCE] * n, pa.string()),
        "confidence": pa.array(np.full(n, level_value(CONFIDENCE_NAME))),
        "confidence_name": pa.array([CONFIDENCE_NAME] * n, pa.string()),
        "source_category": pa.array([",".join(lb) for lb in labels], pa.string()),
        "is_cluster_definer": pa.array(np.ones(n, bool)),
        "tagpack": pa.array([path.name] * n, pa.string()),
        "file": pa.array([str(path)] * n, pa.string()),
        "line": pa.array(line_of, pa.int64()),
        "imported_at": pa.array([imported] * n, TAG_SCHEMA.field("imported_at").type),
        "as_of": pa.array([snap] * n, TAG_SCHEMA.field("as_of").type),
        "dataset": pa.array([dataset] * n, pa.string()),
        "asset": pa.array(["ETH"] * n, pa.string()),
        "sanctioned": pa.array(sanctioned, pa.bool_()),
    }).filter(pa.array(ok))
    from fundtrail.store.schema import conform

    out.snapshots.append(Snapshot(dataset, snap, conform(t, TAG_SCHEMA, "tags"), fmt, str(path)))


def read_combined(path: Path, *, as_of: dt.datetime | None = None) -> Parsed:
    doc = _load(path)
    out = Parsed()
    addresses = list(doc)
    names: list[str | None] = []
    labels: list[list[str]] = []
    for a in addresses:
        v = doc[a]
        if isinstance(v, dict):
            names.append(v.get("name") or None)
            labels.append([str(x) for x in v.get("labels") or []])
        else:
            names.append(str(v) or None)
            labels.append([])
    _snapshot(path, addresses, names, labels, f"etherscan:{path.stem}", as_of, "etherscan-combined", out)
    return out


def read_accounts(path: Path, *, as_of: dt.datetime | None = None) -> Parsed:
    """One label's accounts: ``{address: name}``; the label slug is the file's stem."""
    doc = _load(path)
    out = Parsed()
    slug = path.stem
    addresses = list(doc)
    names = [str(doc[a]) or None for a in addresses]
    _snapshot(path, addresses, names, [[slug]] * len(addresses), f"etherscan:accounts:{slug}", as_of,
              "etherscan-accounts", out)
    return out

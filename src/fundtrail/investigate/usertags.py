"""Tags people add in the UI, and their export as a GraphSense TagPack.

A user's tags live in one CSV file per user, ``HOME/usertags/<user>.csv`` (attribution's CSV format, with
``source`` = ``user:<name>`` and the note in an extra column the reader ignores). Adding a tag appends a row
and re-imports the whole file through :func:`fundtrail.attribution.service.import_paths` (dataset
``csv:usertags-<user>``), so the tag joins attribution at once, with its history, exactly like any other
source; this module writes nothing else.
"""

from __future__ import annotations

import csv
import datetime as dt
import fcntl
import io
from pathlib import Path
from typing import Any

import yaml

from fundtrail.attribution import taxonomy as T
from fundtrail.attribution.countries import country_code
from fundtrail.attribution.service import import_paths
from fundtrail.errors import FieldError
from fundtrail.investigate.conn import connection
from fundtrail.store import Workspace

COLUMNS = ("address", "chain", "label", "category", "entity", "country", "source", "confidence",
           "is_cluster_definer", "note")


def user_source(user: str) -> str:
    return f"user:{user}"


def _file(ws: Workspace, user: str) -> Path:
    d = ws.home / "usertags"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"usertags-{user}.csv"


def add_tag(ws: Workspace, user: str, *, chain: str, address: str, label: str, category: str,
            entity: str | None = None, country: str | None = None, confidence: float = 0.5,
            note: str | None = None, cluster: bool = False) -> dict[str, Any]:
    """Append a tag to ``user``'s file and import it; the row as stored."""
    address, label = address.strip(), label.strip()
    if not address:
        raise FieldError("address", "is required")
    if not label or len(label) > 200:
        raise FieldError("label", "1-200 characters")
    cat, _ = T.normalize_category(category)
    if cat not in T.CATEGORIES:
        raise FieldError("category", f"unknown category {category!r}")
    cc = None
    if country:
        cc = country_code(country)
        if cc is None:
            raise FieldError("country", f"{country!r} is not an ISO 3166 alpha-2 code or a known name")
    if not 0 <= float(confidence) <= 1:
        raise FieldError("confidence", "must be between 0 and 1")
    if ws.chain(chain) is None:
        raise FieldError("chain", f"unknown chain {chain!r}")
    row = {"address": address, "chain": chain, "label": label, "category": cat, "entity": (entity or label).strip(),
           "country": cc or "", "source": user_source(user), "confidence": f"{float(confidence):g}",
           "is_cluster_definer": "true" if cluster else "false", "note": (note or "").strip()[:1000]}
    path = _file(ws, user)
    with open(path.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            new = not path.exists()
            with open(path, "a", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=COLUMNS)
                if new:
                    w.writeheader()
                w.writerow(row)
            stats = import_paths(ws, [path], as_of=dt.datetime.now(dt.UTC))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    errors = [i for i in stats.issues if getattr(i, "level", "error") == "error"]
    if errors:
        raise FieldError("tag", f"attribution refused the tag: {errors[0]}")
    return row


def user_tags(ws: Workspace, user: str | None = None) -> list[dict[str, Any]]:
    """Tags added in the UI as attribution holds them now (all users, or one)."""
    with connection(ws) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "tags" not in tables:
            return []
        where = "source = $s" if user else "source LIKE 'user:%'"
        rows = con.execute(f"SELECT chain, address, label, category, entity, country, source, confidence, "
                           f"valid_from, valid_to, is_cluster_definer FROM tags WHERE {where} "
                           f"ORDER BY source, chain, address", {"s": user_source(user)} if user else {}).fetchall()
    cols = ("chain", "address", "label", "category", "entity", "country", "source", "confidence", "valid_from",
            "valid_to", "is_cluster_definer")
    return [dict(zip(cols, r, strict=True)) for r in rows]


_CURRENCY = {"bitcoin": "BTC", "regtest": "BTC", "testnet": "BTC", "testnet4": "BTC", "signet": "BTC",
             "ethereum": "ETH", "simeth": "ETH", "litecoin": "LTC", "bitcoin_cash": "BCH", "zcash": "ZEC"}


def tagpack(ws: Workspace, user: str | None = None, creator: str = "fundtrail") -> str:
    """The UI's tags as a GraphSense TagPack (YAML)."""
    tags = []
    for t in user_tags(ws, user):
        if t["valid_to"] is not None:
            continue
        tag = {"address": t["address"], "currency": _CURRENCY.get(t["chain"], t["chain"].upper()),
               "label": t["entity"] or t["label"], "category": t["category"],
               "confidence": "manual_verification" if (t["confidence"] or 0) >= 0.9 else "forensic",
               "source": t["source"], "is_cluster_definer": bool(t["is_cluster_definer"])}
        if t["country"]:
            tag["country"] = t["country"]
        tags.append(tag)
    doc = {"title": f"fundtrail user tags{' of ' + user if user else ''}", "creator": creator,
           "description": "Tags added by investigators in the fundtrail web UI",
           "lastmod": dt.date.today().isoformat(), "is_public": False, "tags": tags}
    buf = io.StringIO()
    yaml.safe_dump(doc, buf, sort_keys=False, allow_unicode=True)
    return buf.getvalue()

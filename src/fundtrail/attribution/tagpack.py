"""GraphSense TagPacks and ActorPacks (YAML).

A TagPack is a header plus ``tags``; every tag field (label, category, currency, network, confidence,
source, actor, abuse, concepts, is_cluster_definer, context, lastmod) may be given in the header and is
then inherited by each tag unless the tag overrides it. Confidence is a named level (confidence.py).
``is_cluster_definer`` defaults to false, as in GraphSense: such tags label their address only.
An ActorPack lists actors with ``id``, ``label``, ``categories``, ``jurisdictions`` (ISO 3166 alpha-2),
``uri``, ``aliases`` and ``context``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from fundtrail.attribution import chains as C
from fundtrail.attribution import taxonomy as T
from fundtrail.attribution.confidence import DEFAULT_LEVEL, parse_confidence
from fundtrail.attribution.records import (
    ACTOR_SCHEMA,
    Issue,
    Parsed,
    Snapshot,
    TagBuilder,
    date_in_name,
    now,
    ts,
)
from fundtrail.errors import TagFileError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

TAG_FIELDS = ("label", "category", "currency", "network", "confidence", "source", "actor", "abuse",
              "concepts", "is_cluster_definer", "context", "lastmod")


def load_yaml(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            return yaml.load(fh, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise TagFileError(f"not valid YAML: {getattr(e, 'problem', e)}", path=path,
                           line=mark.line + 1 if mark is not None else None) from e
    except OSError as e:
        raise TagFileError(f"cannot read: {e}", path=path) from e


def file_date(path: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(path.stat().st_mtime), dt.UTC)


def _tag_lines(path: Path) -> list[int]:
    """The line number of each ``- address:``-style list item under ``tags:`` (1-based), in order."""
    lines: list[int] = []
    in_tags = False
    indent = None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for no, text in enumerate(fh, 1):
            if not in_tags:
                if text.startswith("tags:"):
                    in_tags = True
                continue
            stripped = text.lstrip(" ")
            if not stripped.strip() or stripped.startswith("#"):
                continue
            ind = len(text) - len(stripped)
            if ind == 0 and not stripped.startswith("-"):
                break  # next top-level key
            if stripped.startswith("- "):
                if indent is None:
                    indent = ind
                if ind == indent:
                    lines.append(no)
    return lines


def read_tagpack(path: Path, doc: dict[str, Any] | None = None, *, as_of: dt.datetime | None = None) -> Parsed:
    doc = load_yaml(path) if doc is None else doc
    if not isinstance(doc, dict) or not isinstance(doc.get("tags"), list):
        raise TagFileError("not a TagPack (no 'tags' list)", path=path)
    out = Parsed()
    header = {k: v for k, v in doc.items() if k != "tags"}
    title = str(header.get("title") or path.stem)
    snap_date = ts(as_of) or ts(header.get("lastmod")) or date_in_name(path) or file_date(path)
    dataset = f"graphsense:{path.stem}"
    b = TagBuilder(path, source=str(header.get("source") or "graphsense"), dataset=dataset, issues=out.issues)
    lines = _tag_lines(path)
    imported = now()
    inherited = {k: header.get(k) for k in TAG_FIELDS if k in header}
    for i, tag in enumerate(doc["tags"]):
        line = lines[i] if i < len(lines) else None
        if not isinstance(tag, dict):
            out.issues.append(Issue(str(path), line, "tag is not a mapping"))
            continue
        t = {**inherited, **tag}
        addr = t.get("address")
        if addr is None:
            what = "a transaction tag (tx_hash)" if t.get("tx_hash") else "a tag without an address"
            out.issues.append(Issue(str(path), line, f"{what}: not imported", level="warning"))
            continue
        addr = str(addr)
        code = str(t.get("network") or t.get("currency") or "")
        if not code:
            out.issues.append(Issue(str(path), line, "no currency/network: cannot tell the chain", address=addr))
            continue
        chain = C.chain_for_asset(code, addr)
        try:
            conf, conf_name = parse_confidence(t.get("confidence") or DEFAULT_LEVEL["graphsense"])
        except ValueError as e:
            out.issues.append(Issue(str(path), line, str(e), address=addr))
            continue
        concepts = t.get("concepts") or []
        if isinstance(concepts, str):
            concepts = [concepts]
        category = T.from_graphsense(t.get("category"), t.get("abuse"), concepts)
        src_cat = ";".join(x for x in [str(t.get("category") or ""),
                                       *(f"concept={c}" for c in concepts),
                                       f"abuse={t['abuse']}" if t.get("abuse") else ""] if x) or None
        sanctioned = (category == T.SANCTIONED or str(t.get("abuse") or "").lower() == "sanction"
                      or "sanction" in [str(c).lower() for c in concepts] or _is_ofac_source(t.get("source")))
        label = t.get("label")
        actor = t.get("actor")
        b.add(chain=chain, address=addr, line=line,
              label=str(label) if label is not None else (str(actor) if actor else title),
              category=category, entity=str(label) if label is not None else (str(actor) if actor else None),
              confidence=conf, confidence_name=conf_name or str(t.get("confidence") or "unknown"),
              source_category=src_cat, actor=str(actor) if actor else None,
              is_cluster_definer=bool(t.get("is_cluster_definer") or False),
              tagpack=title, imported_at=imported, as_of=snap_date, asset=code.upper(),
              sanctioned=sanctioned, uri=str(t["source"]) if t.get("source") else None)
    out.snapshots.append(Snapshot(dataset, snap_date, b.table(), "graphsense-tagpack", str(path)))
    return out


def _is_ofac_source(src: object) -> bool:
    s = str(src or "").lower()
    return "treasury.gov" in s and ("ofac" in s or "sanction" in s or "recent-actions" in s)


def read_actorpack(path: Path, doc: dict[str, Any] | None = None, *, as_of: dt.datetime | None = None) -> Parsed:
    doc = load_yaml(path) if doc is None else doc
    if not isinstance(doc, dict) or not isinstance(doc.get("actors"), list):
        raise TagFileError("not an ActorPack (no 'actors' list)", path=path)
    out = Parsed()
    snap = ts(as_of) or ts(doc.get("lastmod")) or date_in_name(path) or file_date(path)
    cols: dict[str, list[Any]] = {f.name: [] for f in ACTOR_SCHEMA}
    seen: set[str] = set()
    for i, a in enumerate(doc["actors"]):
        if not isinstance(a, dict) or not a.get("id"):
            out.issues.append(Issue(str(path), None, f"actor #{i + 1} has no id"))
            continue
        aid = str(a["id"])
        if aid in seen:
            out.issues.append(Issue(str(path), None, f"actor {aid!r} is listed twice; the first is kept",
                                    level="warning"))
            continue
        seen.add(aid)
        cats = [str(c) for c in a.get("categories") or []]
        countries = [str(c).upper() for c in a.get("jurisdictions") or []]
        cols["actor"].append(aid)
        cols["label"].append(str(a.get("label") or aid))
        cols["category"].append(T.most_specific(T.GRAPHSENSE_CATEGORY.get(c) for c in cats))
        cols["countries"].append(countries)
        cols["uri"].append(str(a["uri"]) if a.get("uri") else None)
        cols["source"].append(f"graphsense-actorpack:{path.name}")
        ctx = a.get("context")
        cols["context"].append(json.dumps(ctx, default=str, sort_keys=True) if ctx else None)
        cols["categories"].append(cats)
        cols["aliases"].append([str(x) for x in a.get("aliases") or []])
        cols["as_of"].append(snap)
    out.actors = pa.table({k: pa.array(v, ACTOR_SCHEMA.field(k).type) for k, v in cols.items()},
                          schema=ACTOR_SCHEMA)
    return out

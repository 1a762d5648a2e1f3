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
    clip,
    date_in_name,
    now,
    ts,
)
from fundtrail.errors import TagFileError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

TAG_FIELDS = ("label", "category", "currency", "network", "confidence", "source", "actor", "abuse",
              "concepts", "is_cluster_definer", "context", "lastmod")


#: bounds checked on the parsed node graph before any Python value is built (aliases are shared nodes: a
#: few hundred bytes can stand for gigabytes once stringified)
MAX_FILE_BYTES = 256 << 20
MAX_ALIASES = 1000
MAX_EXPANDED = 64 << 20  # nodes plus scalar characters, counting every alias use in full


def _check_expansion(root: yaml.Node, path: Path) -> None:
    """Refuse alias bombs: count alias uses and the fully expanded size of the document in linear time
    (sizes are memoised per node), and refuse recursive aliases."""
    size: dict[int, int] = {}
    aliases = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    active: set[int] = set()
    while stack:
        node, done = stack.pop()
        k = id(node)
        if done:
            active.discard(k)
            if isinstance(node, yaml.ScalarNode):
                total = 1 + len(node.value)
            elif isinstance(node, yaml.SequenceNode):
                total = 1 + sum(size[id(c)] for c in node.value)
            else:
                total = 1 + sum(size[id(a)] + size[id(b)] for a, b in node.value)
            size[k] = total
            if total > MAX_EXPANDED:
                raise TagFileError(f"YAML expands to more than {MAX_EXPANDED:,} nodes and characters through "
                                   "its aliases: refused", path=path)
            continue
        if k in size:
            aliases += 1
            if aliases > MAX_ALIASES:
                raise TagFileError(f"YAML uses more than {MAX_ALIASES} aliases: refused", path=path)
            continue
        if k in active:
            raise TagFileError("YAML with a recursive alias: refused", path=path)
        active.add(k)
        stack.append((node, True))
        if isinstance(node, yaml.SequenceNode):
            stack += [(c, False) for c in node.value]
        elif isinstance(node, yaml.MappingNode):
            for a, b in node.value:
                stack += [(a, False), (b, False)]


def load_yaml(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise TagFileError(f"larger than {MAX_FILE_BYTES >> 20} MiB: not read as a tag file", path=path)
        data = path.read_bytes()
        loader = _Loader(data)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if b"&" in data:  # no '&', no anchor, no alias: nothing to expand (the common case, fast)
                _check_expansion(node, path)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise TagFileError(f"not valid YAML: {getattr(e, 'problem', e)}", path=path,
                           line=mark.line + 1 if mark is not None else None) from e
    except OSError as e:
        raise TagFileError(f"cannot read: {e}", path=path) from e


def _text(v: Any, field: str, limit: int = 1024) -> str | None:
    """A scalar field as text (None when absent); a list or mapping where text belongs is an error."""
    if v is None:
        return None
    if isinstance(v, (list, dict, set, tuple)):
        raise ValueError(f"{field}: expected a single value, found a {type(v).__name__}")
    t = str(v)
    if len(t) > limit:
        raise ValueError(f"{field}: longer than {limit} characters")
    return t


def _texts(v: Any, field: str) -> list[str]:
    """A list of scalars (a single scalar counts as a list of one)."""
    if v is None:
        return []
    items = v if isinstance(v, list) else [v]
    return [t for t in (_text(x, field) for x in items) if t is not None]


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
    try:
        title = _text(header.get("title"), "title") or path.stem
    except ValueError as e:
        raise TagFileError(str(e), path=path) from None
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
        try:
            _add_tag(b, t, line, title=title, imported=imported, snap_date=snap_date, issues=out.issues)
        except ValueError as e:
            out.issues.append(Issue(str(path), line, str(e)))
    out.snapshots.append(Snapshot(dataset, snap_date, b.table(), "graphsense-tagpack", str(path)))
    return out


def _add_tag(b: TagBuilder, t: dict[str, Any], line: int | None, *, title: str, imported: dt.datetime,
             snap_date: dt.datetime, issues: list[Issue]) -> None:
    path = b.path
    addr = _text(t.get("address"), "address", 256)
    if addr is None:
        what = "a transaction tag (tx_hash)" if t.get("tx_hash") else "a tag without an address"
        issues.append(Issue(path, line, f"{what}: not imported", level="warning"))
        return
    code = _text(t.get("network"), "network", 32) or _text(t.get("currency"), "currency", 32) or ""
    if not code:
        issues.append(Issue(path, line, "no currency/network: cannot tell the chain", address=addr))
        return
    chain = C.chain_for_asset(code, addr)
    conf_text = _text(t.get("confidence"), "confidence", 64)
    conf, conf_name = parse_confidence(conf_text or DEFAULT_LEVEL["graphsense"])
    concepts = _texts(t.get("concepts"), "concepts")
    category_text = _text(t.get("category"), "category", 64)
    abuse = _text(t.get("abuse"), "abuse", 64)
    source = _text(t.get("source"), "source")
    category = T.from_graphsense(category_text, abuse, concepts)
    src_cat = ";".join(x for x in [category_text or "", *(f"concept={c}" for c in concepts),
                                   f"abuse={abuse}" if abuse else ""] if x) or None
    sanctioned = (category == T.SANCTIONED or (abuse or "").lower() == "sanction"
                  or "sanction" in [c.lower() for c in concepts] or _is_ofac_source(source))
    label = _text(t.get("label"), "label")
    actor = _text(t.get("actor"), "actor", 128)
    b.add(chain=chain, address=addr, line=line,
          label=label if label is not None else (actor or title),
          category=category, entity=label if label is not None else (actor or None),
          confidence=conf, confidence_name=conf_name or (conf_text or "unknown"),
          source_category=src_cat, actor=actor or None,
          is_cluster_definer=bool(t.get("is_cluster_definer") or False),
          tagpack=title, imported_at=imported, as_of=snap_date, asset=code.upper(),
          sanctioned=sanctioned, uri=source)


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
        try:
            aid = _text(a["id"], "id", 128) or ""
            if aid in seen:
                out.issues.append(Issue(str(path), None, f"actor {clip(aid)!r} is listed twice; the first is kept",
                                        level="warning"))
                continue
            cats = _texts(a.get("categories"), "categories")
            countries = [c.upper() for c in _texts(a.get("jurisdictions"), "jurisdictions")]
            label = _text(a.get("label"), "label") or aid
            uri = _text(a.get("uri"), "uri")
            aliases = _texts(a.get("aliases"), "aliases")
            ctx = a.get("context")
            context = json.dumps(ctx, default=str, sort_keys=True) if ctx else None
        except (ValueError, TypeError) as e:
            out.issues.append(Issue(str(path), None, f"actor #{i + 1}: {e}"))
            continue
        seen.add(aid)
        cols["actor"].append(aid)
        cols["label"].append(label)
        cols["category"].append(T.most_specific(T.GRAPHSENSE_CATEGORY.get(c) for c in cats))
        cols["countries"].append(countries)
        cols["uri"].append(uri)
        cols["source"].append(f"graphsense-actorpack:{path.name}")
        cols["context"].append(context)
        cols["categories"].append(cats)
        cols["aliases"].append(aliases)
        cols["as_of"].append(snap)
        for extra in ("dataset", "tier", "importer", "imported_at", "digest"):
            cols[extra].append(None)
    out.actors = pa.table({k: pa.array(v, ACTOR_SCHEMA.field(k).type) for k, v in cols.items()},
                          schema=ACTOR_SCHEMA)
    out.actor_dataset = f"graphsense:{path.stem}"
    out.path = str(path)
    return out

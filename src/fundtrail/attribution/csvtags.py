"""Plain CSV tags with the contract's header ``address,chain,label,category,entity,country,source,confidence``.

The last five columns may be empty. Optional extra columns: ``valid_from``, ``valid_to`` (ISO dates),
``is_cluster_definer`` (true/false; default true), ``program``, ``sanctioned``, ``actor``. ``category`` is a
fundtrail category or a GraphSense/Etherscan word (mapped; the word is kept in ``source_category``);
``confidence`` is 0..1, 0..100 or a GraphSense level name; empty means ``unknown`` (0.05).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.csv as pacsv

from fundtrail.attribution import taxonomy as T
from fundtrail.attribution.confidence import DEFAULT_LEVEL, parse_confidence
from fundtrail.attribution.countries import country_code
from fundtrail.attribution.records import Issue, Parsed, Snapshot, TagBuilder, date_in_name, now, ts
from fundtrail.attribution.tagpack import file_date
from fundtrail.errors import TagFileError

HEADER = ("address", "chain", "label", "category", "entity", "country", "source", "confidence")
OPTIONAL = ("valid_from", "valid_to", "is_cluster_definer", "program", "sanctioned", "actor")


def _bool(v: str | None, default: bool) -> bool:
    if v is None or str(v).strip() == "":
        return default
    return str(v).strip().lower() in ("1", "true", "yes", "y", "t")


def read_csv(path: Path, *, as_of: dt.datetime | None = None) -> Parsed:
    try:
        table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(autogenerate_column_names=False),
                               convert_options=pacsv.ConvertOptions(
                                   column_types={c: "string" for c in HEADER + OPTIONAL},
                                   strings_can_be_null=True))
    except Exception as e:  # pyarrow raises ArrowInvalid with the line in its message
        raise TagFileError(f"not a readable CSV: {e}", path=path) from e
    names = [c.strip().lower() for c in table.column_names]
    missing = [c for c in HEADER[:3] if c not in names]
    if missing:
        raise TagFileError(f"CSV header lacks {missing}; expected {','.join(HEADER)}", path=path, line=1)
    table = table.rename_columns(names)
    out = Parsed()
    dataset = f"csv:{path.stem}"
    snap = ts(as_of) or date_in_name(path) or file_date(path)
    b = TagBuilder(path, source="csv", dataset=dataset, issues=out.issues)
    imported = now()
    cols = {c: table[c].to_pylist() if c in names else [None] * table.num_rows for c in HEADER + OPTIONAL}
    for i in range(table.num_rows):
        line = i + 2
        addr, chain = cols["address"][i], cols["chain"][i]
        if not addr or not chain:
            out.issues.append(Issue(str(path), line, "address and chain are required", address=addr))
            continue
        try:
            conf, conf_name = parse_confidence(cols["confidence"][i] or DEFAULT_LEVEL["csv"])
        except ValueError as e:
            out.issues.append(Issue(str(path), line, str(e), address=addr))
            continue
        category, src_cat = T.normalize_category(cols["category"][i])
        country = cols["country"][i]
        cc = country_code(country) if country else None
        if country and cc is None:
            out.issues.append(Issue(str(path), line, f"country {country!r} is not an ISO 3166 alpha-2 code "
                                    "or a known name; left empty", address=addr, level="warning"))
        sanctioned = _bool(cols["sanctioned"][i], category == T.SANCTIONED) or bool(cols["program"][i])
        b.add(chain=chain.strip().lower(), address=addr, line=line, reroute=False,
              label=cols["label"][i] or cols["entity"][i], category=category, entity=cols["entity"][i],
              country=cc, confidence=conf, confidence_name=conf_name or (None if cols["confidence"][i]
                                                                          else DEFAULT_LEVEL["csv"]),
              source=cols["source"][i] or "csv", source_category=src_cat, actor=cols["actor"][i],
              is_cluster_definer=_bool(cols["is_cluster_definer"][i], True), program=cols["program"][i],
              tagpack=path.name, imported_at=imported, as_of=snap, sanctioned=sanctioned,
              valid_from=ts(cols["valid_from"][i]), valid_to=ts(cols["valid_to"][i]))
    out.snapshots.append(Snapshot(dataset, snap, b.table(), "csv", str(path)))
    return out

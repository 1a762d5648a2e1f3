"""FBI address lists (one address a line), e.g. the Bybit theft addresses of PSA I-022625-PSA.

The Bybit list (``fbi_psa250226_bybit_eth_addresses.txt``) is attributed by the FBI to North Korea's
TraderTraitor actors (also known as Lazarus Group): each address becomes a ``theft_perpetrator`` tag,
entity ``Lazarus Group``, actor ``lazarusgroup``, country KP, confidence ``authority_data``. These are
attributions, not sanctions listings: ``sanctioned`` is false.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from fundtrail.attribution import taxonomy as T
from fundtrail.attribution.confidence import level_value
from fundtrail.attribution.records import Parsed, Snapshot, TagBuilder, date_in_name, now, ts
from fundtrail.attribution.tagpack import file_date


@dataclass(frozen=True, slots=True)
class FbiList:
    pattern: str  # matched against the file name
    chain: str
    label: str
    entity: str
    actor: str
    country: str
    category: str
    uri: str
    published: dt.datetime


KNOWN_LISTS: tuple[FbiList, ...] = (
    FbiList(r"fbi.*bybit", "ethereum", "Bybit theft 2025-02-21 (FBI PSA I-022625-PSA, TraderTraitor)",
            "Lazarus Group", "lazarusgroup", "KP", T.THEFT_PERPETRATOR,
            "https://www.ic3.gov/PSA/2025/PSA250226", dt.datetime(2025, 2, 26, tzinfo=dt.UTC)),
)


def known_list(path: Path) -> FbiList | None:
    for k in KNOWN_LISTS:
        if re.search(k.pattern, path.name, re.IGNORECASE):
            return k
    return None


def read_fbi_list(path: Path, *, as_of: dt.datetime | None = None) -> Parsed:
    k = known_list(path)
    if k is None:
        from fundtrail.errors import TagFileError

        raise TagFileError("not a known FBI address list", path=path)
    out = Parsed()
    dataset = f"fbi:{path.stem}"
    snap = ts(as_of) or date_in_name(path) or k.published or file_date(path)
    b = TagBuilder(path, source="FBI", dataset=dataset, issues=out.issues)
    imported = now()
    for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        a = text.strip()
        if not a or a.startswith("#"):
            continue
        b.add(chain=k.chain, address=a, line=line, reroute=False, label=k.label, category=k.category,
              entity=k.entity, country=k.country, confidence=level_value("authority_data"),
              confidence_name="authority_data", source_category="theft (FBI attribution: DPRK)",
              actor=k.actor, is_cluster_definer=True, imported_at=imported, as_of=snap,
              asset="ETH", sanctioned=False, uri=k.uri)
    out.snapshots.append(Snapshot(dataset, snap, b.table(), "fbi-list", str(path)))
    return out

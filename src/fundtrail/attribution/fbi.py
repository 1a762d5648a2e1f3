"""FBI address lists (one address a line), e.g. the Bybit theft addresses of PSA I-022625-PSA.

A list is recognised by its SHA-256 digest, never by its file name: fundtrail pins the digest of every
list it knows (:data:`KNOWN_LISTS`), and a file with that exact content is imported as the authoritative
dataset ``fbi:<id>``. A file merely named like an FBI list is not an FBI list.

The Bybit list (``fbi_psa250226_bybit_eth_addresses.txt``) is attributed by the FBI to North Korea's
TraderTraitor actors (also known as Lazarus Group): each address becomes a ``theft_perpetrator`` tag,
entity ``Lazarus Group``, actor ``lazarusgroup``, country KP, confidence ``authority_data``. These are
attributions, not sanctions listings: ``sanctioned`` is false.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from fundtrail.attribution import taxonomy as T
from fundtrail.attribution.confidence import level_value
from fundtrail.attribution.records import Parsed, Snapshot, TagBuilder, now, ts


@dataclass(frozen=True, slots=True)
class FbiList:
    id: str  # the dataset is fbi:<id>
    sha256: str  # digest of the list's text (pinned)
    chain: str
    label: str
    entity: str
    actor: str
    country: str
    category: str
    uri: str
    published: dt.datetime


KNOWN_LISTS: tuple[FbiList, ...] = (
    FbiList("bybit-2025", "f223dc67676135b8a30aa1f4af5550fecdf247ffdcac458ab177fb781687c27d", "ethereum", "Bybit theft 2025-02-21 (FBI PSA I-022625-PSA, TraderTraitor)",
            "Lazarus Group", "lazarusgroup", "KP", T.THEFT_PERPETRATOR,
            "https://www.ic3.gov/PSA/2025/PSA250226", dt.datetime(2025, 2, 26, tzinfo=dt.UTC)),
)


_BY_DIGEST = {k.sha256: k for k in KNOWN_LISTS}
MAX_LIST_BYTES = 1 << 20


def known_list(path: Path) -> FbiList | None:
    """The pinned FBI list whose digest ``path`` has, or None."""
    try:
        if path.stat().st_size > MAX_LIST_BYTES:
            return None
        return _BY_DIGEST.get(hashlib.sha256(path.read_bytes()).hexdigest())
    except OSError:
        return None


def read_fbi_list(path: Path, *, as_of: dt.datetime | None = None) -> Parsed:
    k = known_list(path)
    if k is None:
        from fundtrail.errors import TagFileError

        raise TagFileError("not a known FBI address list", path=path)
    out = Parsed()
    dataset = f"fbi:{k.id}"
    snap = ts(as_of) or k.published
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
    out.snapshots.append(Snapshot(dataset, snap, b.table(), "fbi-list", str(path), publication=dataset,
                                  builtin=dataset))
    return out

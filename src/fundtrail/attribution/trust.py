"""Trust tiers and dataset identity: assigned from how the data arrived, never from what a file says.

Tiers (highest first; the winner rule ranks by tier before confidence, see resolve.py):

* ``authoritative``: an official publication (OFAC SDN, the FBI Bybit list) that came from ``tags fetch``
  of its official URL, or from a file whose SHA-256 an admin pinned (``tags import --as ofac:sdn
  --sha256 HEX FILE``) or that fundtrail itself pins (:data:`PINNED`).
* ``owner``: the workspace owner's own lists (the CLI user who owns the workspace; an admin in the
  service). Binding for screening by default.
* ``curated``: public third-party datasets fetched from their configured source (GraphSense TagPacks,
  the Etherscan label dump, the per-asset OFAC mirror lists).
* ``user``: any other user's import. A reason to review, never binding by default.

Dataset ids are namespaced: ``ofac:sdn``, ``fbi:bybit-2025`` (authoritative only), ``graphsense:...``,
``etherscan:...``, ``ofac:asset:XBT`` (written by ``tags fetch`` only) and ``user:NAME:LIST`` for
everything else, where NAME is the importer and LIST is ``--as LIST`` (default: the kind of file, e.g.
``ofac-sdn`` for every copy of the SDN list, ``csv-<stem>`` for a CSV). A file can therefore never write
into another importer's dataset, whatever its name, ``source``, ``confidence`` or date says.

A self-declared confidence is capped by the tier (:data:`CONFIDENCE_CAP`), so no file lifts its own
rows above what its tier allows.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fundtrail.errors import UsageError
from fundtrail.principal import Principal

AUTHORITATIVE = "authoritative"
OWNER = "owner"
CURATED = "curated"
USER = "user"
TIERS = (AUTHORITATIVE, OWNER, CURATED, USER)
#: rank used by the winner rule; rows written before tiers existed (null tier) rank as ``owner``: only
#: the workspace's CLI user could import then
RANK = {AUTHORITATIVE: 4, OWNER: 3, CURATED: 2, USER: 1}
LEGACY_RANK = RANK[OWNER]
#: tiers whose tags bind by default (``sanctioned`` in resolved attributions); others are reasons to review
BINDING = (AUTHORITATIVE, OWNER)
#: below authority_data (0.6, what OFAC and the FBI get) for every tier but the authoritative one
CONFIDENCE_CAP = {AUTHORITATIVE: 1.0, OWNER: 0.55, CURATED: 0.5, USER: 0.4}

#: publications that only an authoritative import may write under their own name
AUTHORITATIVE_DATASETS = re.compile(r"(ofac:sdn|fbi:[a-z0-9][a-z0-9.-]{0,63})\Z")
#: namespaces reserved for ``tags fetch`` (curated) and authoritative datasets
RESERVED = ("ofac:", "fbi:", "graphsense:", "etherscan:", "csv:")
#: datasets ``tags fetch`` writes from the built-in URLs of public third-party sources
CURATED_NAMESPACES = ("graphsense:", "etherscan:", "ofac:asset:")
LOCAL_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")

#: the SDN list's publication id: every copy (sdn.csv, SDN.XML, sdn_advanced.xml, a JSON mirror) is a
#: version of it, ordered by the list's own publish date
OFAC_SDN = "ofac:sdn"


def tier_sql(col: str = "tier") -> str:
    """SQL of a tier column's rank (null: legacy rows, ranked as ``owner``)."""
    cases = " ".join(f"WHEN '{t}' THEN {r}" for t, r in RANK.items())
    return f"(CASE {col} {cases} ELSE {LEGACY_RANK} END)"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class Provenance:
    """How the files of one import arrived.

    ``fetched``: from ``tags fetch`` (``source_url`` set); ``official``: every URL was the source's
    built-in official URL (only then can a fetch be authoritative); ``pinned``: SHA-256 digests an admin
    gave on the command line (``--sha256``); ``as_name``: the dataset the importer asked for (``--as``).
    """

    principal: Principal
    fetched: bool = False
    official: bool = False
    fetch_source: str | None = None
    source_url: str | None = None
    pinned: frozenset[str] = frozenset()
    as_name: str | None = None
    confirm: bool = False

    @staticmethod
    def of_import(principal: Principal, *, as_name: str | None = None, sha256: Iterable[str] = (),
                  confirm: bool = False) -> Provenance:
        pins = frozenset(h.strip().lower() for h in sha256 if h and h.strip())
        for h in pins:
            if not re.fullmatch(r"[0-9a-f]{64}", h):
                raise UsageError(f"--sha256 {h!r}: not 64 hexadecimal digits")
        if pins and not principal.is_admin:
            raise UsageError(f"--sha256: only an admin may pin an authoritative list ({principal.name} is "
                             f"{principal.role})")
        if as_name is not None:
            as_name = as_name.strip()
            if pins:
                if not AUTHORITATIVE_DATASETS.match(as_name):
                    raise UsageError(f"--as {as_name!r} with --sha256: pinned imports write an authoritative "
                                     "dataset (ofac:sdn or fbi:<list>)")
            else:
                own = f"user:{principal.name}:"
                local = as_name[len(own):] if as_name.startswith(own) else as_name
                if as_name.startswith(("user:", *RESERVED)) and local == as_name:
                    raise UsageError(f"--as {as_name!r}: that dataset is not yours. Authoritative datasets are "
                                     "written by 'tags fetch' or an admin's pinned import (--as ofac:sdn "
                                     "--sha256 HEX); your own lists are user:"
                                     f"{principal.name}:NAME")
                if not LOCAL_NAME.match(local):
                    raise UsageError(f"--as {as_name!r}: a list name is lower-case letters, digits, '.', '_', "
                                     "'-' (at most 64)")
                as_name = local
        elif pins:
            raise UsageError("--sha256 needs --as: the authoritative dataset the pinned file is a copy of "
                             "(ofac:sdn or fbi:<list>)")
        return Provenance(principal, pinned=pins, as_name=as_name, confirm=confirm)


@dataclass(frozen=True, slots=True)
class Placement:
    dataset: str
    tier: str
    publication: str | None


def place(natural: str, publication: str | None, digests: Iterable[str], prov: Provenance,
          builtin: str | None = None, files: Iterable[str] = ()) -> Placement:
    """Where a snapshot read from files with ``digests`` goes, and its tier.

    ``natural`` is the reader's name for the list (``ofac:sdn``, ``graphsense:<pack>`` …); ``builtin`` an
    authoritative dataset whose digest fundtrail itself pins and that the files match (the FBI list).
    """
    digests = list(digests)
    if builtin is not None and not prov.pinned:
        return Placement(builtin, AUTHORITATIVE, builtin)
    if prov.pinned:
        target = prov.as_name or ""
        names = list(files) or [""] * len(digests)
        missing = [(f, d) for f, d in zip(names, digests, strict=True) if d not in prov.pinned]
        if missing:
            f, d = missing[0]
            raise UsageError(f"{f + ': ' if f else ''}SHA-256 {d} is not among the pinned --sha256 digests "
                             "(every file read, e.g. an sdn_comments.csv found beside sdn.csv, must be pinned): "
                             "nothing was imported")
        if target != (builtin or natural):
            raise UsageError(f"--as {target}: these files are a copy of {builtin or natural!r}, not of "
                             f"{target!r}")
        return Placement(target, AUTHORITATIVE, publication or natural)
    if prov.fetched and prov.official:  # only the built-in URLs; any other URL is the user's own import
        if natural == OFAC_SDN:  # a full copy of the SDN list from OFAC itself
            return Placement(OFAC_SDN, AUTHORITATIVE, publication)
        if natural.startswith(CURATED_NAMESPACES):
            return Placement(natural, CURATED, publication)
    p = prov.principal
    local = prov.as_name or default_local(natural, publication)
    return Placement(f"user:{p.name}:{local}", OWNER if p.is_admin else USER, publication)


def default_local(natural: str, publication: str | None) -> str:
    """An importer's list name when ``--as`` is not given: the kind of list (every full copy of the SDN
    list is ``ofac-sdn``, a per-asset extract ``ofac-asset-xbt``; other files ``<reader>-<file stem>``),
    inside the importer's own namespace."""
    base = "ofac-sdn" if natural == OFAC_SDN else natural
    local = re.sub(r"[^a-z0-9._-]+", "-", base.lower()).strip("-.")[:64] or "list"
    return local if LOCAL_NAME.match(local) else "list"


def cap_confidence(value: float | None, tier: str) -> float | None:
    if value is None:
        return None
    return min(float(value), CONFIDENCE_CAP[tier])

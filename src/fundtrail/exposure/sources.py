"""Risk groups: the sets of addresses exposure is measured against.

A group is one risky entity (or one incident) on every chain it has addresses on: its category, name,
country, and, for sanctioned entities, the window in which the listing was valid (``sanctioned_from`` /
``sanctioned_to``; an address delisted since is still a group: historical exposure, marked so). Groups come
from attribution (``resolve_labels`` for the categories, the sanctions tags for the windows) and from the
stored incidents (category ``stolen_funds``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pyarrow as pa

from fundtrail.attribution.resolve import resolve_labels
from fundtrail.attribution.trust import BINDING, OWNER
from fundtrail.incidents import list_incidents
from fundtrail.store import Workspace
from fundtrail.store.addresses import AddressBook

#: attribution categories that make an address a risk source
RISK_CATEGORIES = frozenset({"mixer", "darknet_market", "ransomware", "scam", "theft_perpetrator"})
#: the category of an incident's funds
STOLEN = "stolen_funds"
#: where exposure propagation stops (as the trace's sinks): services, and pools that mix everyone's funds
SERVICE_STOP, POOL_STOP = 1, 2
POOL_CATEGORIES = frozenset({"mixer", "bridge"})


@dataclass(frozen=True, slots=True)
class Group:
    gid: int
    category: str
    entity: str
    country: str | None
    sanctioned: bool
    sanctioned_from: dt.datetime | None
    sanctioned_to: dt.datetime | None
    source: str  # "tags" | "incident"

    def to_row(self) -> dict[str, object]:
        return {"gid": self.gid, "category": self.category, "entity": self.entity, "country": self.country,
                "sanctioned": self.sanctioned, "sanctioned_from": self.sanctioned_from,
                "sanctioned_to": self.sanctioned_to, "source": self.source}


@dataclass(slots=True)
class ChainSources:
    """Per chain: the address ids of each group, incident seeds, stop kinds and the resolved labels."""

    chain: str
    members: dict[int, list[int]] = field(default_factory=dict)  # gid -> address ids
    since: dict[int, int] = field(default_factory=dict)  # gid -> unix seconds (incidents)
    seed_txids: dict[int, list[str]] = field(default_factory=dict)  # gid -> txids (incident tx seeds)
    stop: dict[int, int] = field(default_factory=dict)  # address id -> SERVICE_STOP | POOL_STOP
    labels: pa.Table | None = None


def _window_key(f: dt.datetime | None, t: dt.datetime | None) -> tuple[str, str]:
    return (f.isoformat() if f else "", t.isoformat() if t else "")


def sanction_windows(ws: Workspace, chain: str) -> pa.Table:
    """Every binding sanctions tag of ``chain`` with its validity (current and delisted): chain, address,
    entity, source, valid_from, valid_to, joined to address ids. Binding: datasets of the authoritative and
    owner tiers (attribution/trust.py; rows from before tiers existed rank as owner). A co-user's or a curated
    source's sanctions claim makes no sanctioned group: it reaches screening only as a category, a reason to
    review (docs/security.md)."""
    con = ws.connect()
    try:
        return con.sql("""
            SELECT t.chain, t.address, a.address_id, coalesce(t.entity, t.label) AS entity, t.source,
                   t.valid_from, t.valid_to, t.country
            FROM tags t LEFT JOIN addresses a ON a.chain = t.chain AND a.address = t.address
            WHERE t.chain = $chain AND (coalesce(t.sanctioned, false) OR t.category = 'sanctioned')
              AND list_contains($binding, coalesce(t.tier, $owner))
        """, params={"chain": chain, "owner": OWNER, "binding": list(BINDING)}).to_arrow_table()
    finally:
        con.close()


def collect(ws: Workspace, chains: list[str], at: dt.datetime | None = None) -> tuple[list[Group],
                                                                                      dict[str, ChainSources]]:
    """The risk groups over ``chains`` and, per chain, their members and the stop kinds."""
    groups: dict[tuple, Group] = {}
    out: dict[str, ChainSources] = {}

    def gid_of(key: tuple, **kw: object) -> int:
        g = groups.get(key)
        if g is None:
            g = Group(gid=len(groups), **kw)  # type: ignore[arg-type]
            groups[key] = g
        return g.gid

    for chain in chains:
        cs = ChainSources(chain)
        lab = resolve_labels(ws, chain, at)
        cs.labels = lab
        cols = {c: lab[c].to_pylist() for c in ("address_id", "entity", "category", "country", "sanctioned",
                                                "is_service")}
        for i, aid in enumerate(cols["address_id"]):
            if aid is None:
                continue
            cat = (cols["category"][i] or "other").lower()
            if cols["is_service"][i]:
                cs.stop[aid] = SERVICE_STOP
            elif cat in POOL_CATEGORIES:
                cs.stop[aid] = POOL_STOP
            if cat in RISK_CATEGORIES and not cols["sanctioned"][i]:
                ent = cols["entity"][i] or cat
                g = gid_of(("tags", cat, ent, "", ""), category=cat, entity=ent, country=cols["country"][i],
                           sanctioned=False, sanctioned_from=None, sanctioned_to=None, source="tags")
                cs.members.setdefault(g, []).append(int(aid))
        # sanctioned addresses: own sanctions tags (any time), and cluster members resolved as sanctioned
        win = sanction_windows(ws, chain)
        wrows = win.to_pylist()
        by_addr: dict[int, tuple[dt.datetime | None, dt.datetime | None, str, str | None]] = {}
        for r in wrows:
            if r["address_id"] is None:
                continue
            f, t = r["valid_from"], r["valid_to"]
            prev = by_addr.get(r["address_id"])
            if prev is not None:  # the widest window over the address's sanctions tags
                f = None if (prev[0] is None or f is None) else min(prev[0], f)
                t = None if (prev[1] is None or t is None) else max(prev[1], t)
            by_addr[int(r["address_id"])] = (f, t, r["entity"] or "sanctioned", r["country"])
        label_by_id = {int(a): i for i, a in enumerate(cols["address_id"]) if a is not None}
        for i, aid in enumerate(cols["address_id"]):
            if aid is not None and cols["sanctioned"][i] and int(aid) not in by_addr:
                by_addr[int(aid)] = (None, None, cols["entity"][i] or "sanctioned", cols["country"][i])
        for aid, (f, t, ent, ctry) in by_addr.items():
            li = label_by_id.get(aid)
            cat = (cols["category"][li] or "sanctioned").lower() if li is not None else "sanctioned"
            name = (cols["entity"][li] if li is not None and cols["entity"][li] else ent)
            country = (cols["country"][li] if li is not None and cols["country"][li] else ctry)
            g = gid_of(("sanction", cat, name) + _window_key(f, t), category=cat, entity=name, country=country,
                       sanctioned=True, sanctioned_from=f, sanctioned_to=t, source="tags")
            cs.members.setdefault(g, []).append(aid)
        out[chain] = cs
    # incidents: their seeds on each chain
    for inc in list_incidents(ws):
        g = gid_of(("incident", inc.name), category=STOLEN, entity=inc.name, country=None, sanctioned=False,
                   sanctioned_from=None, sanctioned_to=None, source="incident")
        for s in inc.seeds:
            cs = out.get(s.chain)
            if cs is None:
                continue
            if s.address is not None:
                ids = AddressBook(ws, s.chain).lookup([s.address]).tolist()
                cs.members.setdefault(g, []).extend(int(i) for i in ids if i >= 0)
            elif s.txid is not None:
                cs.seed_txids.setdefault(g, []).append(s.txid)
            if inc.since is not None:
                cs.since[g] = int(inc.since.timestamp())
    return sorted(groups.values(), key=lambda g: g.gid), out

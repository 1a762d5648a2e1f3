"""Incidents: a named theft (or other case) with the seeds a trace starts from.

An incident is stored as one row of the global table ``incidents`` (see docs/schema.md) and is what
``fundtrail report INCIDENT`` traces and reports on. Seeds are addresses and/or transactions (optionally
one output ``TXID:N``) on one or more chains; every address is validated and normalised for its chain
(``model.address.normalize``) when the incident is created, so a typo fails then, not in the report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from dataclasses import replace as replace_
from datetime import UTC, date, datetime

import pyarrow as pa

from fundtrail.errors import AddressError, NotFoundError, UsageError
from fundtrail.model.address import normalize
from fundtrail.model.chain import BITCOIN_NETWORKS
from fundtrail.model.trace import Seed
from fundtrail.principal import Principal, cli_principal
from fundtrail.store import GLOBAL, Workspace, writes
from fundtrail.store import schema as S

TABLE = "incidents"
# one strict pattern, anchored with \Z (``$`` would let a trailing newline through)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}\Z")


@dataclass(frozen=True, slots=True)
class Incident:
    name: str
    chains: tuple[str, ...]
    seeds: tuple[Seed, ...]
    actor: str | None = None
    since: datetime | None = None
    created: datetime | None = None
    description: str | None = None
    owner: str | None = None  # who created it (principal name); None: created before owners existed

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(s.address for s in self.seeds if s.address is not None)

    @property
    def txids(self) -> tuple[str, ...]:
        return tuple(s.txid for s in self.seeds if s.txid is not None)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name, "chains": list(self.chains), "seeds": [s.to_json() for s in self.seeds],
            "actor": self.actor, "since": _iso(self.since), "created": _iso(self.created),
            "description": self.description, "owner": self.owner,
        }


def _iso(t: datetime | None) -> str | None:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t is not None else None


def is_utxo_chain(chain: str) -> bool:
    return any(n.chain == chain for n in BITCOIN_NETWORKS.values())


def parse_when(text: str | date | datetime | None, *, field: str = "since") -> datetime | None:
    """``2023-02-01``, ``2023-02-01T10:00:00[Z|+hh:mm]`` or a date/datetime -> an aware UTC datetime."""
    if text is None or text == "":
        return None
    if isinstance(text, datetime):
        return text.replace(tzinfo=UTC) if text.tzinfo is None else text.astimezone(UTC)
    if isinstance(text, date):
        return datetime(text.year, text.month, text.day, tzinfo=UTC)
    t = text.strip()
    try:
        if len(t) == 10:
            d = date.fromisoformat(t)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{field}: {text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def normalize_txid(chain: str, text: str) -> str:
    t = text.strip().lower()
    body = t[2:] if t.startswith("0x") else t
    if not _HEX64.match(body):
        raise UsageError(f"transaction {text!r} ({chain}): not a 64-hex-digit transaction id")
    return body if is_utxo_chain(chain) else "0x" + body


def _split_chain_prefix(text: str, chains: Sequence[str]) -> tuple[str | None, str]:
    """``ethereum:0xabc`` -> (``ethereum``, ``0xabc``) when the prefix is one of the incident's chains."""
    if ":" in text:
        head, rest = text.split(":", 1)
        if head in chains:
            return head, rest
    return None, text


def _address_seed(text: str, chains: Sequence[str]) -> Seed:
    chain, body = _split_chain_prefix(text, chains)
    if chain is not None:
        return Seed(chain=chain, address=normalize(chain, body))
    fits: list[tuple[str, str]] = []
    errors: list[AddressError] = []
    for c in chains:
        try:
            fits.append((c, normalize(c, body)))
        except AddressError as e:
            errors.append(e)
    if not fits:
        if len(errors) == 1:
            raise errors[0]
        raise AddressError(f"not valid on any of the incident's chains ({', '.join(chains)})", address=text)
    if len(fits) > 1:
        raise UsageError(f"address {text!r} is valid on several of the incident's chains "
                         f"({', '.join(c for c, _ in fits)}); write it as CHAIN:ADDRESS")
    c, a = fits[0]
    return Seed(chain=c, address=a)


def _tx_seed(text: str, chains: Sequence[str]) -> Seed:
    chain, body = _split_chain_prefix(text, chains)
    n: int | None = None
    if ":" in body:
        body, n_text = body.rsplit(":", 1)
        try:
            n = int(n_text)
        except ValueError:
            raise UsageError(f"transaction {text!r}: output index {n_text!r} is not a number") from None
        if n < 0:
            raise UsageError(f"transaction {text!r}: output index must not be negative")
    if chain is None:
        if len(chains) > 1:
            raise UsageError(f"transaction {text!r}: the incident has several chains ({', '.join(chains)}); "
                             "write it as CHAIN:TXID")
        chain = chains[0]
    if n is not None and not is_utxo_chain(chain):
        raise UsageError(f"transaction {text!r}: an output index (TXID:N) only applies to UTXO chains")
    return Seed(chain=chain, txid=normalize_txid(chain, body), n=n)


def check_name(name: str) -> str:
    """``name`` if it is a valid incident name (letters, digits, '.', '_', '-'; at most 100), else UsageError."""
    if not isinstance(name, str) or not NAME.match(name):
        raise UsageError(f"incident name {name!r}: use letters, digits, '.', '_' or '-' (at most 100, starting "
                         "with a letter or digit)")
    return name


def make_incident(name: str, chain: str | Sequence[str], addresses: Iterable[str] = (),
                  txids: Iterable[str] = (), actor: str | None = None,
                  since: str | date | datetime | None = None, description: str | None = None,
                  created: datetime | None = None, owner: str | None = None) -> Incident:
    """Validate and build an incident (nothing is stored)."""
    check_name(name)
    chains = (chain,) if isinstance(chain, str) else tuple(chain)
    chains = tuple(dict.fromkeys(c.strip() for c in chains if c and c.strip()))
    if not chains:
        raise UsageError("an incident needs at least one chain (--chain)")
    seeds: list[Seed] = [_address_seed(a, chains) for a in addresses]
    seeds += [_tx_seed(t, chains) for t in txids]
    if not seeds:
        raise UsageError(f"incident {name!r}: give at least one seed address (--address) or transaction (--tx)")
    seeds = list(dict.fromkeys(seeds))
    return Incident(name=name, chains=chains, seeds=tuple(seeds), actor=actor or None,
                    since=parse_when(since), created=created or datetime.now(UTC).replace(microsecond=0),
                    description=description or None, owner=owner)


def _to_arrow(incidents: Sequence[Incident]) -> pa.Table:
    rows = [{
        "name": i.name, "chains": list(i.chains),
        "seeds": [{"chain": s.chain, "address": s.address, "txid": s.txid, "n": s.n} for s in i.seeds],
        "actor": i.actor, "since": i.since, "created": i.created, "description": i.description,
        "owner": i.owner,
    } for i in incidents]
    return pa.Table.from_pylist(rows, schema=S.schema_of(TABLE))


def _from_row(r: dict[str, object]) -> Incident:
    seeds = tuple(Seed(chain=s["chain"], address=s["address"], txid=s["txid"], n=s["n"])  # type: ignore[index]
                  for s in (r["seeds"] or []))  # type: ignore[union-attr]
    return Incident(name=r["name"], chains=tuple(r["chains"] or ()), seeds=seeds,  # type: ignore[arg-type]
                    actor=r["actor"], since=r["since"], created=r["created"],  # type: ignore[arg-type]
                    description=r["description"], owner=r.get("owner"))  # type: ignore[arg-type]


def list_incidents(ws: Workspace) -> list[Incident]:
    """Every stored incident, in creation order."""
    rows = ws.read(TABLE, GLOBAL).to_pylist()
    out = [_from_row(r) for r in rows]
    out.sort(key=lambda i: (i.created or datetime.min.replace(tzinfo=UTC), i.name))
    return out


def get_incident(ws: Workspace, name: str) -> Incident:
    for i in list_incidents(ws):
        if i.name == name:
            return i
    known = ", ".join(i.name for i in list_incidents(ws)) or "none yet"
    raise NotFoundError(f"no incident named {name!r} in {ws.home} (incidents: {known})")


def _may_change(inc: Incident, principal: Principal) -> None:
    if principal.is_admin or (inc.owner is not None and inc.owner == principal.name):
        return
    whose = f"{inc.owner}'s" if inc.owner else "an incident without an owner (only an admin may change it)"
    raise UsageError(f"incident {inc.name!r} is {whose}: {principal.name} ({principal.role}) may not replace "
                     "or delete it")


@writes("incident")
def save_incident(ws: Workspace, incident: Incident, *, replace: bool = False,
                  principal: Principal | None = None) -> Incident:
    """Store ``incident``. A name that differs from a stored one only in case is refused (lookalikes);
    ``replace`` overwrites an incident of the same name only for its owner or an admin."""
    who = principal or cli_principal(ws.home)
    with ws.transaction() as txn:
        current = [_from_row(r) for r in ws.read(TABLE, GLOBAL).to_pylist()]
        for i in current:
            if i.name != incident.name and i.name.casefold() == incident.name.casefold():
                raise UsageError(f"incident name {incident.name!r} differs from the existing {i.name!r} only in "
                                 "case: choose another name")
        same = [i for i in current if i.name == incident.name]
        if same:
            if not replace:
                raise UsageError(f"incident {incident.name!r} already exists (use --replace to overwrite it)")
            _may_change(same[0], who)
            current = [i for i in current if i.name != incident.name]
        if same and same[0].owner:
            incident = replace_(incident, owner=same[0].owner)  # a replacement keeps the case's owner
        elif incident.owner is None:
            incident = replace_(incident, owner=who.name)
        txn.replace(TABLE, GLOBAL, _to_arrow([*current, incident]))
    return incident


def create_incident(ws: Workspace, name: str, chain: str | Sequence[str], addresses: Iterable[str] = (),
                    txids: Iterable[str] = (), actor: str | None = None,
                    since: str | date | datetime | None = None, *, description: str | None = None,
                    replace: bool = False, principal: Principal | None = None) -> Incident:
    """Validate, store and return an incident owned by ``principal`` (default: the CLI user). Chains need
    not be ingested yet."""
    who = principal or cli_principal(ws.home)
    inc = make_incident(name, chain, addresses, txids, actor=actor, since=since, description=description,
                        owner=who.name)
    return save_incident(ws, inc, replace=replace, principal=who)


@writes("incident delete")
def delete_incident(ws: Workspace, name: str, *, principal: Principal | None = None) -> None:
    who = principal or cli_principal(ws.home)
    with ws.transaction() as txn:
        current = [_from_row(r) for r in ws.read(TABLE, GLOBAL).to_pylist()]
        same = [i for i in current if i.name == name]
        if not same:
            raise NotFoundError(f"no incident named {name!r} in {ws.home}")
        _may_change(same[0], who)
        kept = [i for i in current if i.name != name]
        txn.replace(TABLE, GLOBAL, _to_arrow(kept) if kept else None)

"""The incident catalogue: publicly documented incidents with their date, victim, actor, reported loss and
sources, read from CSV, JSON or YAML (``fundtrail incident import FILE``).

Each row is stored in the global table ``incident_catalogue`` (what ``fundtrail stats`` reports as the
*reported* figures, with their sources); a row with at least one seed address or transaction also becomes
an incident (``fundtrail.incidents``) that ``report`` and ``stats`` trace. Rows are validated as a whole
before anything is stored: every address must be valid for its chain (``model.address.normalize``), every
row must cite at least one source URL, dates are ``YYYY-MM-DD`` or ``YYYY-MM``. Errors name the file, the
row and the field.

The shipped catalogue (``fundtrail/data/incidents/dprk.yaml``, :func:`shipped_catalogue`) lists thefts
attributed to North Korean actors with the seed addresses their public sources publish.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa

from fundtrail.errors import AddressError, InputError, UsageError
from fundtrail.incidents import Incident, make_incident, save_incident
from fundtrail.model.address import normalize
from fundtrail.store import GLOBAL, Workspace, writes
from fundtrail.store import schema as S

TABLE = "incident_catalogue"
KINDS = ("theft", "holdings")
_DATE = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")
_URL = re.compile(r"^https?://\S+$")
_HEX64 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")



@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    name: str
    date: datetime
    date_precision: str  # day | month
    victim: str | None
    actor: str | None
    kind: str
    chains: tuple[str, ...]
    addresses: tuple[tuple[str, str], ...]  # (chain, address as stored)
    txids: tuple[tuple[str, str], ...]
    reported_loss_usd: float | None
    reported_loss_note: str | None
    sources: tuple[str, ...]
    seed_note: str | None = None

    @property
    def has_seeds(self) -> bool:
        return bool(self.addresses or self.txids)

    def incident(self) -> Incident:
        """The incident a trace starts from (only for rows with seeds). It traces from the theft's day on
        (``since``); a ``holdings`` row traces everything its addresses received."""
        chains = tuple(dict.fromkeys([*self.chains, *(c for c, _ in self.addresses), *(c for c, _ in self.txids)]))
        return make_incident(self.name, chains, addresses=[f"{c}:{a}" for c, a in self.addresses],
                             txids=[f"{c}:{t}" for c, t in self.txids], actor=self.actor,
                             since=self.date if self.kind == "theft" else None,
                             description=f"{self.victim or ''} ({self.kind}; catalogue)".strip())

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "date": self.date.strftime("%Y-%m-%d"), "date_precision": self.date_precision,
                "victim": self.victim, "actor": self.actor, "kind": self.kind, "chains": list(self.chains),
                "addresses": [{"chain": c, "address": a} for c, a in self.addresses],
                "txids": [{"chain": c, "txid": t} for c, t in self.txids],
                "reported_loss_usd": self.reported_loss_usd, "reported_loss_note": self.reported_loss_note,
                "sources": list(self.sources), "seed_note": self.seed_note}


# --- reading -------------------------------------------------------------------------------------------

def shipped_catalogue() -> Path:
    """The catalogue that ships with fundtrail (DPRK-attributed thefts, with sources)."""
    return Path(str(resources.files("fundtrail") / "data" / "incidents" / "dprk.yaml"))


def _text(v: Any) -> str | None:
    if v is None:
        return None
    t = str(v).strip()
    return t or None


def _list(v: Any, *, sep: str = ";") -> list[str]:
    if v is None or v == "":
        return []
    if isinstance(v, str):
        return [x.strip() for x in re.split(rf"[{re.escape(sep)}\n]", v) if x.strip()]
    if isinstance(v, list | tuple):
        return [str(x).strip() for x in v if x is not None and str(x).strip()]
    return [str(v).strip()]


def _seeds(v: Any, path: str, row: int, field: str) -> list[tuple[str, str]]:
    """``{chain: [a, …]}``, ``[{chain, address|txid}]``, or ``CHAIN:VALUE`` strings (``;``-separated)."""
    out: list[tuple[str, str]] = []
    if v is None or v == "" or v == {}:
        return out
    if isinstance(v, dict):
        for chain, items in v.items():
            for x in _list(items):
                out.append((str(chain).strip(), x))
        return out
    items = v if isinstance(v, list) else _list(v)
    for x in items:
        if isinstance(x, dict):
            val = x.get("address") if field == "addresses" else x.get("txid")
            if not x.get("chain") or not val:
                raise InputError(f"row {row}: each entry needs 'chain' and '{field[:-2] if field == 'addresses' else 'txid'}'",
                                 path=path, field=field)
            out.append((str(x["chain"]).strip(), str(val).strip()))
        else:
            s = str(x).strip()
            if ":" not in s:
                raise InputError(f"row {row}: {s!r} must be written CHAIN:VALUE", path=path, field=field)
            c, val = s.split(":", 1)
            out.append((c.strip(), val.strip()))
    return out


def _date(v: Any, path: str, row: int) -> tuple[datetime, str]:
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)), "day"
    if hasattr(v, "year") and hasattr(v, "day"):
        return datetime(v.year, v.month, v.day, tzinfo=UTC), "day"
    m = _DATE.match(str(v or "").strip())
    if not m:
        raise InputError(f"row {row}: date {v!r} is not YYYY-MM-DD or YYYY-MM", path=path, field="date")
    try:
        d = datetime(int(m[1]), int(m[2]), int(m[3] or 1), tzinfo=UTC)
    except ValueError as e:
        raise InputError(f"row {row}: date {v!r}: {e}", path=path, field="date") from None
    return d, "day" if m[3] else "month"


def _entry(raw: dict[str, Any], path: str, row: int) -> CatalogueEntry:
    name = _text(raw.get("name"))
    if not name:
        raise InputError(f"row {row}: no name", path=path, field="name")
    where = f"row {row} ({name})"
    date, precision = _date(raw.get("date"), path, row)
    if _text(raw.get("date_precision")) not in (None, "day", "month"):
        raise InputError(f"{where}: date_precision must be day or month", path=path, field="date_precision")
    precision = _text(raw.get("date_precision")) or precision
    kind = _text(raw.get("kind")) or "theft"
    if kind not in KINDS:
        raise InputError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}", path=path, field="kind")
    sources = tuple(_list(raw.get("sources"), sep=" ;"))
    if not sources:
        raise InputError(f"{where}: every row must cite at least one source (URL)", path=path, field="sources")
    for s in sources:
        if not _URL.match(s):
            raise InputError(f"{where}: source {s!r} is not an http(s) URL", path=path, field="sources")
    addresses = []
    for chain, a in _seeds(raw.get("addresses"), path, row, "addresses"):
        try:
            addresses.append((chain, normalize(chain, a)))
        except AddressError as e:
            raise InputError(f"{where}: {e}", path=path, field="addresses") from None
    txids = []
    for chain, t in _seeds(raw.get("txids"), path, row, "txids"):
        if not _HEX64.match(t):
            raise InputError(f"{where}: transaction {t!r} ({chain}) is not 64 hex digits", path=path, field="txids")
        body = t.lower().removeprefix("0x")
        txids.append((chain, body if chain in ("bitcoin", "testnet", "signet", "regtest") else "0x" + body))
    loss = raw.get("reported_loss_usd")
    if loss in (None, ""):
        loss_v = None
    else:
        try:
            loss_v = float(str(loss).replace(",", "").replace("_", ""))
        except ValueError:
            raise InputError(f"{where}: reported_loss_usd {loss!r} is not a number", path=path,
                             field="reported_loss_usd") from None
        if loss_v < 0:
            raise InputError(f"{where}: reported_loss_usd must not be negative", path=path, field="reported_loss_usd")
    chains = tuple(dict.fromkeys([*_list(raw.get("chains")), *(c for c, _ in addresses), *(c for c, _ in txids)]))
    e = CatalogueEntry(name=name, date=date, date_precision=precision, victim=_text(raw.get("victim")),
                       actor=_text(raw.get("actor")), kind=kind, chains=chains,
                       addresses=tuple(dict.fromkeys(addresses)), txids=tuple(dict.fromkeys(txids)),
                       reported_loss_usd=loss_v, reported_loss_note=_text(raw.get("reported_loss_note")),
                       sources=sources, seed_note=_text(raw.get("seed_note")))
    if e.has_seeds:
        try:
            e.incident()  # the name pattern and seeds as incidents.py checks them
        except UsageError as err:
            raise InputError(f"{where}: {err}", path=path, field="name") from None
    elif not e.seed_note:
        e = replace(e, seed_note="no seed address published in the cited sources")
    return e


def parse_catalogue(path: str | Path, text: str | None = None) -> list[CatalogueEntry]:
    """Read a catalogue file (``.csv``, ``.json``, ``.yaml``/``.yml``) into validated entries."""
    p = Path(path)
    try:
        data = text if text is not None else p.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", path=p) from None
    suffix = p.suffix.lower()
    rows: list[dict[str, Any]]
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(data))
        if not reader.fieldnames or "name" not in reader.fieldnames:
            raise InputError("CSV header must name the columns (at least name,date,sources)", path=p, line=1)
        rows = [dict(r) for r in reader]
    elif suffix in (".json", ".yaml", ".yml"):
        try:
            if suffix == ".json":
                doc = json.loads(data)
            else:
                import yaml

                doc = yaml.safe_load(data)
        except (ValueError, Exception) as e:  # noqa: BLE001 - json and yaml raise their own error types
            line = getattr(getattr(e, "problem_mark", None), "line", None)
            raise InputError(f"not valid {suffix[1:].upper()}: {e}", path=p,
                             line=(line + 1) if line is not None else getattr(e, "lineno", None)) from None
        rows = doc.get("incidents") if isinstance(doc, dict) else doc
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise InputError("expected a list of incidents (or {incidents: [...]})", path=p, field="incidents")
    else:
        raise InputError("unknown catalogue format: use .csv, .json, .yaml or .yml", path=p)
    out = [_entry(r, str(p), i) for i, r in enumerate(rows, 1)]
    seen: set[str] = set()
    for e in out:
        if e.name in seen:
            raise InputError(f"incident {e.name!r} appears twice", path=p, field="name")
        seen.add(e.name)
    return out


# --- storing -------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CatalogueImport:
    path: str
    entries: int
    incidents: tuple[str, ...]  # rows with seeds, created or replaced as incidents
    without_seeds: tuple[str, ...]


def _to_arrow(entries: Sequence[CatalogueEntry], file: str, when: datetime) -> pa.Table:
    rows = [{**e.to_json(), "date": e.date, "imported": when, "file": file,
             "addresses": [{"chain": c, "address": a} for c, a in e.addresses],
             "txids": [{"chain": c, "txid": t} for c, t in e.txids]} for e in entries]
    return pa.Table.from_pylist(rows, schema=S.schema_of(TABLE))


def _from_row(r: dict[str, Any]) -> CatalogueEntry:
    return CatalogueEntry(
        name=r["name"], date=r["date"], date_precision=r["date_precision"] or "day", victim=r["victim"],
        actor=r["actor"], kind=r["kind"] or "theft", chains=tuple(r["chains"] or ()),
        addresses=tuple((x["chain"], x["address"]) for x in r["addresses"] or ()),
        txids=tuple((x["chain"], x["txid"]) for x in r["txids"] or ()),
        reported_loss_usd=r["reported_loss_usd"], reported_loss_note=r["reported_loss_note"],
        sources=tuple(r["sources"] or ()), seed_note=r["seed_note"])


def list_catalogue(ws: Workspace) -> list[CatalogueEntry]:
    """Every imported catalogue row, by date."""
    rows = ws.read(TABLE, GLOBAL).to_pylist()
    return sorted((_from_row(r) for r in rows), key=lambda e: (e.date, e.name))


@writes("incident import")
def import_entries(ws: Workspace, entries: Iterable[CatalogueEntry], *, file: str = "") -> CatalogueImport:
    """Store catalogue rows (replacing rows of the same name) and create or replace the incidents of the
    rows with seeds. Everything is validated before anything is written."""
    entries = list(entries)
    incidents = [e.incident() for e in entries if e.has_seeds]
    now = datetime.now(UTC).replace(microsecond=0)
    names = {e.name for e in entries}
    with ws.transaction() as txn:
        current = [r for r in ws.read(TABLE, GLOBAL).to_pylist() if r["name"] not in names]
        table = _to_arrow(entries, file, now)
        if current:
            table = pa.concat_tables([pa.Table.from_pylist(current, schema=S.schema_of(TABLE)), table])
        txn.replace(TABLE, GLOBAL, table)
    for inc in incidents:
        save_incident(ws, inc, replace=True)
    return CatalogueImport(file, len(entries), tuple(i.name for i in incidents),
                           tuple(e.name for e in entries if not e.has_seeds))


def import_catalogue(ws: Workspace, path: str | Path) -> CatalogueImport:
    return import_entries(ws, parse_catalogue(path), file=str(path))

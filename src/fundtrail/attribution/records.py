"""What the readers produce: tag rows (as Arrow), snapshots of a dataset, issues and import statistics."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from fundtrail.attribution import chains as C
from fundtrail.errors import AddressError
from fundtrail.store import schema as S

TAG_SCHEMA: pa.Schema = S.SCHEMAS["tags"]
ACTOR_SCHEMA: pa.Schema = S.SCHEMAS["actors"]

UTC = dt.UTC


@dataclass(frozen=True, slots=True)
class Issue:
    """Something in an input file that was not imported as written (or not at all)."""

    path: str
    line: int | None
    message: str
    address: str | None = None
    level: str = "error"  # error: row skipped | warning: imported with a note
    skipped: bool = False  # the whole file (or snapshot) was not imported

    def __str__(self) -> str:
        where = self.path + (f":{self.line}" if self.line is not None else "")
        return f"{where}: {self.level}: {clip(self.message, 400)}"


def clip(text: object, n: int = 120) -> str:
    """``text`` shortened to ``n`` characters, control characters shown escaped: what issue messages may
    quote of an input file."""
    t = str(text)
    t = "".join(c if c.isprintable() else repr(c)[1:-1] for c in t[: n + 1])
    return t if len(t) <= n else t[: n - 1] + "…"


@dataclass(slots=True)
class Snapshot:
    """The tags one dataset held on one date (a file, or a pair such as sdn.csv + sdn_comments.csv)."""

    dataset: str
    as_of: dt.datetime
    tags: pa.Table
    format: str
    path: str
    #: the publication this is a copy of (every SDN list format: ``ofac:sdn``); copies of one publication
    #: are versions of one list, ordered by the list's own date
    publication: str | None = None
    #: an authoritative dataset whose digest fundtrail pins and that this file matches (fbi.py)
    builtin: str | None = None
    extra_files: tuple[str, ...] = ()  # read together with ``path`` (sdn_comments.csv)
    #: rows whose address the source lower-cased (base58 lost its case): restored from earlier versions
    #: of the same list when they hold the address, else reported (ofac.read_address_json)
    case_lost: list[tuple[int | None, str, dict]] = field(default_factory=list)


@dataclass(slots=True)
class Parsed:
    snapshots: list[Snapshot] = field(default_factory=list)
    actors: pa.Table | None = None
    issues: list[Issue] = field(default_factory=list)
    actor_dataset: str | None = None  # the reader's name for the ActorPack's list
    path: str | None = None


@dataclass(slots=True)
class ImportStats:
    files: int = 0
    tags: int = 0  # rows read (observations) over all files
    actors: int = 0
    by_format: dict[str, int] = field(default_factory=dict)  # format -> tag rows
    by_dataset: dict[str, int] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    added: int = 0  # history: tags that a newer snapshot added
    delisted: int = 0  # history: tags that a newer snapshot no longer holds
    versions: list[dict] = field(default_factory=list)  # the dataset versions this import stored
    unchanged: int = 0  # snapshots already stored with the same digest (nothing to do)

    @property
    def skipped(self) -> list[Issue]:
        """Files and snapshots not imported at all (partial success)."""
        return [i for i in self.issues if i.skipped]

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "error"]


class TagBuilder:
    """Collects tag rows column by column (cheap appends), validating addresses on the way."""

    COLS = [f.name for f in TAG_SCHEMA]

    def __init__(self, path: str | Path, *, source: str, dataset: str, issues: list[Issue]) -> None:
        self.path = str(path)
        self.source = source
        self.dataset = dataset
        self.issues = issues
        self._cols: dict[str, list[Any]] = {c: [] for c in self.COLS}

    def __len__(self) -> int:
        return len(self._cols["address"])

    def add(self, *, chain: str, address: str, line: int | None, validate: bool = True,
            reroute: bool = True, **fields: Any) -> bool:
        """Validate ``address`` for ``chain`` and add a row; on a bad address record an issue, return False.

        With ``reroute``, an address that is not valid for ``chain`` but is valid for another chain
        (OFAC lists a Tron address under XBT) is imported on that chain with a warning.
        """
        note = fields.pop("note", None)
        stored = address.strip()
        if validate:
            try:
                checked = C.check(chain, stored)
                stored = checked.address
                if not checked.validated:
                    note = _join(note, f"address not validated (no validator for chain {chain!r})")
            except AddressError as e:
                other = C.guess_chain(stored) if reroute else None
                if other is None or other == chain:
                    self.issues.append(Issue(self.path, line, clip(e.message, 200), address=clip(address)))
                    return False
                msg = f"listed as {chain} but is a valid {other} address; imported on {other}"
                self.issues.append(Issue(self.path, line, msg, address=address, level="warning"))
                stored = C.validate(other, stored)
                chain = other
                note = _join(note, msg)
        row = {"chain": chain, "address": stored, "line": line, "file": self.path, "source": self.source,
               "dataset": self.dataset, "note": note, **fields}
        for c in self.COLS:
            self._cols[c].append(row.get(c))
        return True

    def table(self) -> pa.Table:
        return pa.table({c: pa.array(v, TAG_SCHEMA.field(c).type) for c, v in self._cols.items()},
                        schema=TAG_SCHEMA)


def _join(a: str | None, b: str | None) -> str | None:
    if not a:
        return b
    if not b:
        return a
    return f"{a}; {b}"


def ts(d: dt.date | dt.datetime | str | None) -> dt.datetime | None:
    """A date (or datetime, or ISO text) as a UTC datetime at second precision."""
    if d is None or d == "":
        return None
    if isinstance(d, str):
        d = parse_date(d)
        if d is None:
            return None
    if isinstance(d, dt.datetime):
        return (d if d.tzinfo else d.replace(tzinfo=UTC)).astimezone(UTC).replace(microsecond=0)
    return dt.datetime(d.year, d.month, d.day, tzinfo=UTC)


_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}


def parse_date(text: str) -> dt.datetime | None:
    """ISO dates/datetimes, MM/DD/YYYY (OFAC), DD Mon YYYY; None when it is none of these."""
    t = text.strip()
    try:
        return ts(dt.datetime.fromisoformat(t.replace("Z", "+00:00")))
    except ValueError:
        pass
    m = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", t)
    if m:
        return dt.datetime(int(m[3]), int(m[1]), int(m[2]), tzinfo=UTC)
    m = re.fullmatch(r"(\d{1,2}) ([A-Za-z]{3})[a-z]* (\d{4})", t)
    if m and m[2].lower() in _MONTHS:
        return dt.datetime(int(m[3]), _MONTHS[m[2].lower()], int(m[1]), tzinfo=UTC)
    return None


def date_in_name(path: Path) -> dt.datetime | None:
    """A YYYY-MM-DD (or YYYYMMDD) date in the file's name or its folder's, e.g. ``sdn-2025-02-26.json``."""
    for part in (path.name, path.parent.name):
        m = re.search(r"(20\d\d|19\d\d)-?(\d\d)-?(\d\d)", part)
        if m:
            try:
                return dt.datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=UTC)
            except ValueError:
                continue
    return None


def now() -> dt.datetime:
    return dt.datetime.now(UTC).replace(microsecond=0)

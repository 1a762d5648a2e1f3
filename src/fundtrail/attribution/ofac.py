"""OFAC SDN list readers: sdn.csv (+ sdn_comments.csv), SDN.XML, sdn_advanced.xml, the per-asset
address lists (``sanctioned_addresses_XXX.txt``) and the address -> SDN entry JSON.

Every reader yields :class:`SdnEntry` records (name, type, programs, country hints, listing date where the
source has one, and the digital-currency addresses with the line each came from); :func:`entries_snapshot`
turns them into tag rows: category ``sanctioned``, ``sanctioned`` true, the SDN name as entity and label,
the programs in ``program``, the entity's country, confidence ``authority_data``.

* sdn.csv cuts each entry's remarks at 1,000 characters; sdn_comments.csv continues them (same entry
  number). The two are joined before the addresses are read, so an address cut in two at the boundary
  comes out whole.
* The JSON of thomasgregg/crypto-sanctions-list lower-cases every address: base58 addresses (legacy
  Bitcoin, Litecoin, Tron …) lose their case and cannot be restored from it; they are reported, never
  imported in a corrupted form.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from fundtrail.attribution import chains as C
from fundtrail.attribution import taxonomy as T
from fundtrail.attribution import xmlsafe
from fundtrail.attribution.confidence import level_value
from fundtrail.attribution.countries import country_code, program_country, remarks_country
from fundtrail.attribution.records import Issue, Parsed, Snapshot, TagBuilder, clip, date_in_name, now, ts
from fundtrail.attribution.tagpack import file_date
from fundtrail.errors import TagFileError

SOURCE = "OFAC SDN"
CONFIDENCE_NAME = "authority_data"
REMARKS_CUT = 1000
#: every SDN list format is a copy of this one publication (trust.OFAC_SDN)
PUBLICATION = "ofac:sdn"
#: longest text kept from one field (a name, an address); real SDN fields are far shorter
MAX_FIELD = 512

# linear-time patterns: bounded runs, no nested or adjacent overlapping quantifiers
_DCA = re.compile(r"Digital Currency Address - ([A-Za-z0-9]{1,16})\s{1,8}([^;\s]{1,256})")
_WEBSITE = re.compile(r"Website\s{1,8}([^;\s]{1,256})")
_LINKED = re.compile(r"Linked To:[ ]{0,8}([^;]{1,256})")


@dataclass(slots=True)
class SdnEntry:
    uid: str
    name: str
    sdn_type: str | None  # individual | entity | vessel | aircraft
    programs: list[str]
    line: int | None
    addresses: list[tuple[str, str, int | None]] = field(default_factory=list)  # (asset code, address, line)
    websites: list[str] = field(default_factory=list)
    nationality: str | None = None  # ISO alpha-2
    other_country: str | None = None  # e.g. country of registration
    listed: dt.datetime | None = None
    linked_to: list[str] = field(default_factory=list)

    @property
    def country(self) -> str | None:
        prog = program_country(self.programs)
        if (self.sdn_type or "").lower() == "individual":
            return self.nationality or prog or self.other_country
        return prog or self.other_country or self.nationality


def actor_slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _split_programs(text: str | None) -> list[str]:
    if not text:
        return []
    return [p.strip() for p in re.split(r"\]\s*\[|,", text.strip().strip("[]")) if p.strip()]


def entries_snapshot(entries: list[SdnEntry], *, path: Path, dataset: str, as_of: dt.datetime, fmt: str,
                     issues: list[Issue], extra_files: tuple[str, ...] = ()) -> Snapshot:
    b = TagBuilder(path, source=SOURCE, dataset=dataset, issues=issues)
    imported = now()
    conf = level_value(CONFIDENCE_NAME)
    for e in entries:
        program = ", ".join(e.programs) or None
        country = e.country
        note_parts = [f"SDN uid {e.uid}"]
        if e.linked_to:
            note_parts.append("linked to " + ", ".join(e.linked_to))
        for code, addr, line in e.addresses:
            chain = C.chain_for_asset(code, addr)
            b.add(chain=chain, address=addr, line=line, label=e.name, category=T.SANCTIONED, entity=e.name,
                  country=country, confidence=conf, confidence_name=CONFIDENCE_NAME,
                  source_category=f"Digital Currency Address - {code}", actor=actor_slug(e.name),
                  is_cluster_definer=True, program=program, imported_at=imported, as_of=as_of,
                  asset=code.upper(), sanctioned=True, uri=e.websites[0] if e.websites else None,
                  valid_from=e.listed, note="; ".join(note_parts))
    return Snapshot(dataset, as_of, b.table(), fmt, str(path), publication=PUBLICATION, extra_files=extra_files)


def _parse_remarks(e: SdnEntry, remarks: str, line: int | None) -> None:
    for code, addr in _DCA.findall(remarks):
        e.addresses.append((code.upper(), addr.rstrip(".,"), line))
    e.websites += [w.rstrip(".,") for w in _WEBSITE.findall(remarks)]
    e.linked_to += [x.strip().rstrip(".").strip() for x in _LINKED.findall(remarks)]
    nat, other = remarks_country(remarks)
    e.nationality = e.nationality or nat
    e.other_country = e.other_country or other


# --- sdn.csv + sdn_comments.csv -------------------------------------------------------------------------

def _null(v: str) -> str | None:
    v = v.strip()
    return None if v in ("-0-", "") else v


def read_comments(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with open(path, encoding="latin-1", newline="") as fh:
        for row in csv.reader(fh):
            if len(row) >= 2 and row[0].strip().isdigit():
                out[row[0].strip()] = out.get(row[0].strip(), "") + row[1]
    return out


def read_sdn_csv(path: Path, comments: Path | None = None, *, as_of: dt.datetime | None = None) -> Parsed:
    out = Parsed()
    extra = read_comments(comments) if comments is not None else {}
    used: set[str] = set()
    entries: list[SdnEntry] = []
    with open(path, encoding="latin-1", newline="") as fh:
        reader = csv.reader(fh)
        start = 1
        for row in reader:
            line = start
            start = reader.line_num + 1
            if len(row) == 1 and row[0].strip() in ("\x1a", ""):
                continue  # DOS end-of-file marker
            if len(row) != 12 or not row[0].strip().isdigit():
                out.issues.append(Issue(str(path), line, f"not an sdn.csv row ({len(row)} fields)"))
                continue
            uid = row[0].strip()
            remarks = _null(row[11]) or ""
            if uid in extra:
                if len(remarks) >= REMARKS_CUT - 5 or not remarks.rstrip().endswith("."):
                    remarks += extra[uid]
                    used.add(uid)
                else:
                    out.issues.append(Issue(str(comments), None, f"entry {uid}: sdn.csv's remark is complete "
                                            f"({len(remarks)} characters); its comment is not appended (the "
                                            "comments file may be from another list date)", level="warning"))
                    used.add(uid)
            elif len(remarks) >= REMARKS_CUT and "Digital Currency Address" in remarks:
                out.issues.append(Issue(str(path), line, f"entry {uid}: remarks are cut at {REMARKS_CUT} "
                                        "characters and no sdn_comments.csv continues them: addresses past "
                                        "the cut are missing", level="warning"))
            if "Digital Currency Address" not in remarks:
                continue
            e = SdnEntry(uid, row[1].strip()[:MAX_FIELD], _null(row[2]) or "entity",
                         _split_programs(_null(row[3])), line)
            _parse_remarks(e, remarks, line)
            entries.append(e)
    if comments is not None:
        for uid in sorted(set(extra) - used):
            if "Digital Currency Address" in extra[uid]:
                out.issues.append(Issue(str(comments), None, f"entry {uid} is not in {path.name}; its "
                                        "comment is not imported", level="warning"))
    snap = ts(as_of) or date_in_name(path) or file_date(path)
    out.snapshots.append(entries_snapshot(entries, path=path, dataset="ofac:sdn", as_of=snap,
                                          fmt="ofac-sdn-csv", issues=out.issues,
                                          extra_files=(str(comments),) if comments is not None else ()))
    return out


# --- SDN.XML --------------------------------------------------------------------------------------------

def read_sdn_xml(path: Path, *, as_of: dt.datetime | None = None) -> Parsed:
    """The classic SDN.XML (``sdnList`` of ``sdnEntry``), read with expat so every address has its line."""
    out = Parsed()
    entries: list[SdnEntry] = []
    stack: list[str] = []
    text: list[str] = []
    cur: dict = {}
    ident: dict = {}
    publish: list[str] = []
    p = xmlsafe.parser()

    def start(name: str, attrs: dict) -> None:
        local = name.rsplit(":", 1)[-1].rsplit("}", 1)[-1]
        stack.append(local)
        text.clear()
        if local == "sdnEntry":
            cur.clear()
            cur.update(line=p.CurrentLineNumber, programs=[], ids=[], nat=None, cit=None, addr_country=None)
        elif local == "id" and "sdnEntry" in stack:
            ident.clear()
            ident["line"] = p.CurrentLineNumber

    def chars(data: str) -> None:
        text.append(data)

    def end(name: str) -> None:
        local = stack.pop()
        val = "".join(text).strip()
        text.clear()
        parent = stack[-1] if stack else ""
        if local == "Publish_Date":
            publish.append(val)
        if "sdnEntry" not in stack and local != "sdnEntry":
            return
        if local in ("uid", "firstName", "lastName", "sdnType") and parent == "sdnEntry":
            cur[local] = val
        elif local == "program":
            cur["programs"].append(val)
        elif parent == "id" and local in ("idType", "idNumber"):
            ident[local] = val
        elif local == "id":
            cur["ids"].append(dict(ident))
        elif local == "country" and parent == "nationality":
            cur["nat"] = cur["nat"] or val
        elif local == "country" and parent == "citizenship":
            cur["cit"] = cur["cit"] or val
        elif local == "country" and parent == "address":
            cur["addr_country"] = cur["addr_country"] or val
        elif local == "sdnEntry":
            name_ = ", ".join(x for x in (cur.get("lastName"), cur.get("firstName")) if x)
            e = SdnEntry(cur.get("uid", "?"), name_, (cur.get("sdnType") or "entity").lower(),
                         cur["programs"], cur["line"])
            for i in cur["ids"]:
                t = i.get("idType", "")
                if t.startswith("Digital Currency Address - "):
                    e.addresses.append((t.rsplit(" ", 1)[-1].upper(), i.get("idNumber", ""), i["line"]))
                elif t == "Website":
                    e.websites.append(i.get("idNumber", ""))
            e.nationality = country_code(cur["nat"]) or country_code(cur["cit"])
            e.other_country = country_code(cur["addr_country"])
            if e.addresses:
                entries.append(e)

    p.StartElementHandler = start
    p.EndElementHandler = end
    p.CharacterDataHandler = chars
    xmlsafe.parse_file(p, path)
    snap = ts(as_of) or (ts(publish[0]) if publish else None) or date_in_name(path) or file_date(path)
    out.snapshots.append(entries_snapshot(entries, path=path, dataset="ofac:sdn", as_of=snap,
                                          fmt="ofac-sdn-xml", issues=out.issues))
    return out


# --- sdn_advanced.xml -------------------------------------------------------------------------------------

def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if _local(c.tag) == name]


def _iter(el: ET.Element, name: str):
    return (c for c in el.iter() if _local(c.tag) == name)


def _date(el: ET.Element | None) -> dt.datetime | None:
    if el is None:
        return None
    parts = {_local(c.tag): (c.text or "").strip() for c in el}
    try:
        return dt.datetime(int(parts["Year"]), int(parts.get("Month") or 1), int(parts.get("Day") or 1),
                           tzinfo=dt.UTC)
    except (KeyError, ValueError):
        return None


def read_sdn_advanced(path: Path, *, as_of: dt.datetime | None = None) -> Parsed:
    """OFAC's Advanced Sanctions Data Standard XML: reference value sets give feature types (which one is
    ``Digital Currency Address - XBT``), countries, programs; each DistinctParty's Profile has the names and
    features; SanctionsEntries give the programs (SanctionsMeasure comments) and listing dates
    (EntryEvent dates)."""
    out = Parsed()
    root = xmlsafe.parse_tree(path)
    feature_types: dict[str, str] = {}
    countries: dict[str, str] = {}
    subtypes: dict[str, str] = {}
    for el in root.iter():
        tag = _local(el.tag)
        if tag == "FeatureType":
            feature_types[el.get("ID", "")] = (el.text or "").strip()
        elif tag == "Country" and el.get("ID"):
            countries[el.get("ID", "")] = el.get("ISO2") or country_code(el.text) or ""
        elif tag == "PartySubType":
            subtypes[el.get("ID", "")] = (el.text or "").strip().lower()
    loc_country: dict[str, str] = {}
    for loc in _iter(root, "Location"):
        for lc in _iter(loc, "LocationCountry"):
            cid = countries.get(lc.get("CountryID", ""))
            if cid:
                loc_country[loc.get("ID", "")] = cid
    programs: dict[str, list[str]] = {}
    listed: dict[str, dt.datetime] = {}
    for se in _iter(root, "SanctionsEntry"):
        pid = se.get("ProfileID", "")
        for m in _iter(se, "SanctionsMeasure"):
            for c in _children(m, "Comment"):
                if c.text and c.text.strip():
                    programs.setdefault(pid, []).append(c.text.strip())
        for ev in _iter(se, "EntryEvent"):
            d = _date(next(iter(_children(ev, "Date")), None))
            if d is not None and (pid not in listed or d < listed[pid]):
                listed[pid] = d
    entries: list[SdnEntry] = []
    for profile in _iter(root, "Profile"):
        pid = profile.get("ID", "")
        name = None
        for alias in _iter(profile, "Alias"):
            if alias.get("Primary") == "true":
                parts = [(v.text or "").strip() for v in _iter(alias, "NamePartValue")]
                name = " ".join(p for p in parts if p)
                break
        e = SdnEntry(pid, name or pid, subtypes.get(profile.get("PartySubTypeID", ""), "entity"),
                     list(dict.fromkeys(programs.get(pid, []))), None, listed=listed.get(pid))
        for feat in _children(profile, "Feature"):
            ftype = feature_types.get(feat.get("FeatureTypeID", ""), "")
            details = [(d.text or "").strip() for d in _iter(feat, "VersionDetail")]
            if ftype.startswith("Digital Currency Address - "):
                for d in details:
                    e.addresses.append((ftype.rsplit(" ", 1)[-1].upper(), d, None))
            elif ftype == "Website":
                e.websites += details
            elif ftype in ("Nationality Country", "Citizenship Country", "Nationality of Registration"):
                for vl in _iter(feat, "VersionLocation"):
                    e.nationality = e.nationality or loc_country.get(vl.get("LocationID", ""))
            elif "Location" in ftype or "Registration" in ftype:
                for vl in _iter(feat, "VersionLocation"):
                    e.other_country = e.other_country or loc_country.get(vl.get("LocationID", ""))
        if e.addresses:
            entries.append(e)
    issue_date = None
    for el in root:
        if _local(el.tag) == "DateOfIssue":
            issue_date = _date(el)
    snap = ts(as_of) or issue_date or date_in_name(path) or file_date(path)
    out.snapshots.append(entries_snapshot(entries, path=path, dataset="ofac:sdn", as_of=snap,
                                          fmt="ofac-sdn-advanced", issues=out.issues))
    return out


# --- per-asset lists (sanctioned_addresses_XBT.txt) ---------------------------------------------------

ASSET_LIST_NAME = re.compile(r"sanctioned_addresses_([A-Za-z0-9]{1,16})\.(?:txt|json)\Z")
LIST_PROBE = 20  # lines looked at to tell an address list from another file


def read_asset_list(path: Path, *, as_of: dt.datetime | None = None) -> Parsed:
    """One asset's sanctioned addresses, one a line (0xB10C/ofac-sanctioned-digital-currency-addresses).
    The lists name no entity: each tag is labelled ``OFAC SDN list (XBT)``."""
    m = ASSET_LIST_NAME.search(path.name)
    if not m:
        raise TagFileError("not a sanctioned_addresses_<ASSET>.txt list", path=path)
    code = m[1].upper()
    out = Parsed()
    dataset = f"ofac:asset:{code}"
    b = TagBuilder(path, source=SOURCE, dataset=dataset, issues=out.issues)
    snap = ts(as_of) or date_in_name(path) or file_date(path)
    imported = now()
    conf = level_value(CONFIDENCE_NAME)
    if path.suffix == ".json":
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TagFileError(f"not valid JSON: {clip(e, 80)}", path=path) from None
        if not isinstance(doc, list):
            raise TagFileError("not a JSON list of addresses", path=path)
        items = [(i + 1, str(a)) for i, a in enumerate(doc)]
    else:
        items = []
        with open(path, "rb") as fh:
            for i, raw in enumerate(fh, 1):
                try:
                    items.append((i, raw.decode("utf-8").strip()))
                except UnicodeDecodeError:
                    out.issues.append(Issue(str(path), i, "not UTF-8 text: line skipped"))
    bad = 0
    seen = 0
    for line, addr in items:
        if not addr or addr.startswith("#"):
            continue
        seen += 1
        ok = b.add(chain=C.chain_for_asset(code, addr), address=addr, line=line,
                   label=f"OFAC SDN list ({code})", category=T.SANCTIONED, confidence=conf,
                   confidence_name=CONFIDENCE_NAME, source_category=f"Digital Currency Address - {code}",
                   is_cluster_definer=True, imported_at=imported, as_of=snap, asset=code, sanctioned=True)
        bad += not ok
        if seen == LIST_PROBE and bad * 2 > seen:
            break
    if seen and bad * 2 > min(seen, LIST_PROBE):
        # not an address list (a misnamed file, a symlink to something else): say so without quoting it
        raise TagFileError(f"not an address list ({bad} of its first {min(seen, LIST_PROBE)} lines are not "
                           f"{code} addresses); nothing imported from it", path=path)
    # an extract of the SDN list: its own dataset (a list of one asset is not a version of the whole
    # list), but a newer version of the SDN list in a higher tier supersedes it (resolve.enriched_sql)
    out.snapshots.append(Snapshot(dataset, snap, b.table(), "ofac-asset-list", str(path), publication=PUBLICATION))
    return out


# --- address -> entity JSON (thomasgregg/crypto-sanctions-list) ---------------------------------------

_BASE58_CHAINS = {"bitcoin", "litecoin", "tron", "dash", "zcash", "bitcoin_sv", "bitcoin_gold", "verge",
                  "dogecoin", "ripple", "monero", "bitcoin_cash"}


def read_address_json(path: Path, *, as_of: dt.datetime | None = None) -> Parsed:
    out = Parsed()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TagFileError(f"not valid JSON: {e.msg}", path=path, line=e.lineno) from e
    meta = doc.get("metadata") or {}
    snap = ts(as_of) or ts(meta.get("sdnListDate")) or date_in_name(path) or file_date(path)
    lines: dict[str, int] = {}
    for no, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = re.match(r'\s{4}"([^"]+)": \{', text)
        if m:
            lines.setdefault(m[1], no)
    by_uid: dict[tuple[str, str], SdnEntry] = {}
    lost: dict[tuple[str, str], SdnEntry] = {}
    if not isinstance(doc.get("addresses") or {}, dict):
        raise TagFileError("'addresses' is not an object keyed by address", path=path)
    for addr, rec in (doc.get("addresses") or {}).items():
        line = lines.get(addr)
        if not isinstance(rec, dict) or not isinstance(rec.get("entries") or [], list):
            out.issues.append(Issue(str(path), line, "an address record that is not an object with 'entries'",
                                    address=clip(addr)))
            continue
        for ent in rec.get("entries") or []:
            if not isinstance(ent, dict):
                out.issues.append(Issue(str(path), line, "an entry that is not an object", address=clip(addr)))
                continue
            code = str(ent.get("type") or rec.get("type") or "").rsplit(" ", 1)[-1].upper()[:16]
            chain = C.chain_for_asset(code, addr)
            into = by_uid
            if addr == addr.lower() and addr != addr.upper() and not addr.startswith("0x"):
                try:
                    C.validate(chain, addr)
                except Exception:
                    if chain in _BASE58_CHAINS:
                        into = lost  # restored from an earlier version of the list, or reported (service)
            key = (str(ent.get("uid"))[:64], str(ent.get("entity"))[:MAX_FIELD])
            e = into.get(key)
            if e is None:
                e = SdnEntry(key[0], str(ent.get("entity") or "?")[:MAX_FIELD], None,
                             _split_programs(str(ent.get("program") or "")[:MAX_FIELD]), line)
                into[key] = e
            e.addresses.append((code, addr, line))
    snapshot = entries_snapshot(list(by_uid.values()), path=path, dataset="ofac:sdn", as_of=snap,
                                fmt="ofac-address-json", issues=out.issues)
    snapshot.case_lost = list(lost.values())
    out.snapshots.append(snapshot)
    return out


CASE_LOST = ("the source lower-cased this base58 address and no version of the list holds it with its case, "
             "so it is not used (import sdn.csv, SDN.XML or the per-asset lists for it; it is restored then)")
#: marks the stored rows of such addresses (``note``); they count once a version gives the case
CASE_LOST_NOTE = "address lower-cased by the source"


def case_lost_rows(snap: Snapshot, issues: list[Issue]) -> pa.Table | None:
    """The rows of a JSON mirror copy's lower-cased base58 addresses, as written and marked
    (:data:`CASE_LOST_NOTE`). They are stored with the version and count only while some version of the
    same list holds the address with its case (service._resolve_case), so a lossy copy never looks like
    a delisting of every legacy Bitcoin address, whatever order the copies are imported in."""
    if not snap.case_lost:
        return None
    b = TagBuilder(snap.path, source=SOURCE, dataset=snap.dataset, issues=issues)
    imported = now()
    conf = level_value(CONFIDENCE_NAME)
    for e in snap.case_lost:
        program = ", ".join(e.programs) or None
        for code, addr, line in e.addresses:
            b.add(chain=C.chain_for_asset(code, addr), address=addr, line=line, validate=False, label=e.name,
                  category=T.SANCTIONED, entity=e.name, confidence=conf, confidence_name=CONFIDENCE_NAME,
                  source_category=f"Digital Currency Address - {code}", actor=actor_slug(e.name),
                  is_cluster_definer=True, program=program, imported_at=imported, as_of=snap.as_of,
                  asset=code.upper(), sanctioned=True, note=f"SDN uid {e.uid}; {CASE_LOST_NOTE}")
    return b.table()

"""Importing tag files into a workspace: detect each file's format, read it, place each snapshot in its
dataset by how it arrived (trust.py), store it as a new version, rebuild the history of the datasets it
touched, all in one transaction.

Versions are append-only (``tag_snapshots``): a snapshot of a date the dataset already holds with other
content, or one that delists more than :data:`DELIST_SHARE` of the previous version's tags, is refused
unless the caller confirms (``--confirm``); a confirmed replacement keeps the replaced version (marked
``superseded``) and records that it was confirmed. Importing the same content again changes nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from fundtrail.attribution import chains as C
from fundtrail.attribution import csvtags, detect, etherscan, fbi, history, ofac, tagpack
from fundtrail.attribution import trust as TR
from fundtrail.attribution.isolate import ParseLimits, run_limited
from fundtrail.attribution.records import (
    ACTOR_SCHEMA,
    ImportStats,
    Issue,
    Parsed,
    Snapshot,
    clip,
    now,
    ts,
)
from fundtrail.errors import FundtrailError, NotFoundError, TagFileError
from fundtrail.principal import cli_principal
from fundtrail.progress import NullProgress, Progress
from fundtrail.store import GLOBAL, Workspace
from fundtrail.store import schema as S

DELIST_SHARE = 0.05  # a new version delisting more than this share of the previous one needs confirm
SNAPSHOTS = "tag_snapshots"

# what a reader lets through on a malformed file (found by fuzzing: invalid UTF-8, impossible YAML dates,
# wrong JSON/YAML types, deep nesting); the file is reported as an issue and the other files still import
_FILE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError, RecursionError,
                UnicodeError, SyntaxError, MemoryError)


def guarded(read: Callable[..., Parsed]) -> Callable[..., Parsed]:
    """``read`` with any error of a malformed file turned into a TagFileError naming the file (the reason
    as :func:`_file_issue` words it)."""
    @functools.wraps(read)
    def inner(path: Path, *args: Any, **kwargs: Any) -> Parsed:
        try:
            return read(path, *args, **kwargs)
        except FundtrailError:
            raise
        except _FILE_ERRORS as e:
            raise TagFileError(_reason(e), path=path) from None
    return inner


READERS = {name: guarded(fn) for name, fn in {
    "graphsense-tagpack": tagpack.read_tagpack,
    "graphsense-actorpack": tagpack.read_actorpack,
    "ofac-sdn-xml": ofac.read_sdn_xml,
    "ofac-sdn-advanced": ofac.read_sdn_advanced,
    "ofac-asset-list": ofac.read_asset_list,
    "ofac-address-json": ofac.read_address_json,
    "etherscan-combined": etherscan.read_combined,
    "etherscan-accounts": etherscan.read_accounts,
    "fbi-list": fbi.read_fbi_list,
    "csv": csvtags.read_csv,
    "ofac-sdn-csv": ofac.read_sdn_csv,
}.items()}


def _comments_for(sdn: Path, given: list[Path]) -> Path | None:
    """The sdn_comments.csv for an sdn.csv: one given in the same import, else one beside it."""
    same_dir = [c for c in given if c.parent.resolve() == sdn.parent.resolve()]
    if same_dir:
        return same_dir[0]
    if given:
        return given[0]
    for cand in sorted(sdn.parent.glob("*.csv")):
        if cand != sdn and "comment" in cand.name.lower() and detect.detect(cand) == "ofac-sdn-comments":
            return cand
    return None


def _read_one(f: Path, fmt: str, comments: Path | None, when: dt.datetime | None) -> Parsed:
    if fmt == "ofac-sdn-csv":
        return ofac.read_sdn_csv(f, comments, as_of=when)
    return READERS[fmt](f, as_of=when)


def read_paths(paths: Sequence[Path | str], *, as_of: dt.datetime | dt.date | str | None = None,
               progress: Progress = NullProgress(),
               limits: ParseLimits | None = None) -> tuple[list[Parsed], ImportStats]:
    """Read (without storing) every tag file under ``paths``. A file that cannot be read, whatever the
    reason, is reported (file, line, reason) and skipped; the others are read. With ``limits``, each file
    is parsed in a child process with a memory and CPU limit (isolate.py): a file built to crash or
    exhaust the parser costs only its own import."""
    stats = ImportStats()
    given = [Path(p) for p in paths]
    for p in given:
        if not p.exists():
            raise NotFoundError(f"{p}: no such file or folder")
    files = detect.expand(given, stats.issues)
    formats: dict[Path, str | None] = {}
    for f in files:
        try:
            formats[f] = detect.detect(f)
        except Exception as e:  # noqa: BLE001 - any failure on hostile input is this file's, not the import's
            stats.issues.append(_file_issue(f, e))
    comments = [f for f, k in formats.items() if k == "ofac-sdn-comments"]
    sdn_csvs = [f for f, k in formats.items() if k == "ofac-sdn-csv"]
    when = ts(as_of) if as_of is not None else None
    parsed: list[Parsed] = []
    task = progress.task("reading tag files", total=len(files), unit="files")
    try:
        for f in files:
            if f not in formats:
                task.advance(1)
                continue
            fmt = formats[f]
            before = len(parsed)
            try:
                if fmt is None:
                    stats.issues.append(Issue(str(f), None, "not a tag file format fundtrail reads (skipped)",
                                              level="warning"))
                elif fmt == "ofac-sdn-comments":
                    if not sdn_csvs:
                        stats.issues.append(Issue(str(f), None, "an sdn_comments.csv without its sdn.csv: "
                                                  "import them together", level="warning"))
                else:
                    c = _comments_for(f, comments) if fmt == "ofac-sdn-csv" else None
                    if limits is None:
                        parsed.append(_read_one(f, fmt, c, when))
                    else:
                        parsed.append(run_limited(_read_one, (f, fmt, c, when), limits, path=str(f)))
                stats.files += 1
            except Exception as e:  # noqa: BLE001 - reported per file; the other files still import
                del parsed[before:]
                stats.issues.append(_file_issue(f, e))
            rows = parsed[-1].snapshots[0].tags.num_rows if len(parsed) > before and parsed[-1].snapshots else 0
            task.advance(1, tags=rows)
    finally:
        task.close()
    for p in parsed:
        stats.issues += p.issues
        for s in p.snapshots:
            stats.tags += s.tags.num_rows
            stats.by_format[s.format] = stats.by_format.get(s.format, 0) + s.tags.num_rows
        if p.actors is not None:
            stats.actors += p.actors.num_rows
            stats.by_format["graphsense-actorpack"] = stats.by_format.get("graphsense-actorpack", 0) + \
                p.actors.num_rows
    return parsed, stats


def _reason(e: BaseException) -> str:
    """Why a file could not be read, without a stack (and without quoting the file)."""
    if isinstance(e, UnicodeDecodeError):
        return f"not UTF-8 text (byte {e.start})"
    if isinstance(e, RecursionError):
        return "nested too deeply to read"
    if isinstance(e, MemoryError):
        return "too large to read"
    return f"cannot be read ({type(e).__name__}: {clip(e, 200)})"


def _file_issue(f: Path, e: BaseException) -> Issue:
    """A whole file not imported: the reason without a stack (and without quoting the file)."""
    if isinstance(e, FundtrailError):
        return Issue(str(f), getattr(e, "line", None), clip(getattr(e, "message", None) or e, 300), skipped=True)
    return Issue(str(f), None, _reason(e), skipped=True)


def import_paths(ws: Workspace, paths: Sequence[Path | str], *, as_of: dt.datetime | dt.date | str | None = None,
                 progress: Progress = NullProgress(), provenance: TR.Provenance | None = None,
                 limits: ParseLimits | None = None) -> ImportStats:
    """Import tag files (TagPacks, ActorPacks, OFAC files, Etherscan labels, FBI lists, CSV) into ``ws``.

    Folders are read recursively. ``as_of`` overrides the snapshot date each file gives (or its name, or
    its modification time). Bad rows are reported in ``ImportStats.issues`` and the rest still imports;
    so are files that cannot be read at all (``ImportStats.skipped``) and snapshots refused for want of a
    confirmation. ``provenance`` says who imports and how the files arrived (default: the CLI user,
    a plain import); it alone decides each snapshot's dataset and tier (trust.py). ``limits``: parse each
    file in a limited child process (read_paths).
    """
    prov = provenance or TR.Provenance(cli_principal(ws.home))
    parsed, stats = read_paths(paths, as_of=as_of, progress=progress, limits=limits)
    placed = _place_all(parsed, prov)
    actor_tables = _actor_tables(parsed, prov)
    task = progress.task("storing tags", total=len(placed), unit="datasets")
    con = history.connect()
    try:
        # files were read above without the writer lease (a slow parse blocks no other writer); the stored
        # versions are read, merged and written under it
        with ws.writer(purpose="tags import"), ws.transaction() as txn:
            meta = ws.read(SNAPSHOTS, GLOBAL).to_pylist()
            for dataset, by_date in sorted(placed.items()):
                _store_dataset(ws, txn, dataset, by_date, meta, prov, stats, con)
                task.advance(1)
            if stats.versions:
                txn.replace(SNAPSHOTS, GLOBAL, pa.Table.from_pylist(meta, schema=S.schema_of(SNAPSHOTS)))
            if actor_tables:
                txn.replace("actors", GLOBAL, _merge_actors(ws.read("actors", GLOBAL), actor_tables))
    finally:
        con.close()
        task.close()
    return stats


class _Version:
    """The files of one import that make one version (dataset, date)."""

    def __init__(self, placement: TR.Placement, as_of: dt.datetime) -> None:
        self.placement = placement
        self.as_of = as_of
        self.snaps: list[Snapshot] = []
        self.digests: list[str] = []
        self.files: list[str] = []


def _place_all(parsed: list[Parsed], prov: TR.Provenance) -> dict[str, dict[dt.datetime, _Version]]:
    out: dict[str, dict[dt.datetime, _Version]] = {}
    for p in parsed:
        for s in p.snapshots:
            files = [s.path, *s.extra_files]
            digests = [TR.sha256_file(Path(f)) for f in files]
            pl = TR.place(s.dataset, s.publication, digests, prov, builtin=s.builtin, files=files)
            v = out.setdefault(pl.dataset, {}).setdefault(s.as_of, _Version(pl, s.as_of))
            v.snaps.append(s)
            v.digests += digests
            v.files += files
    return out


def _actor_tables(parsed: list[Parsed], prov: TR.Provenance) -> list[pa.Table]:
    out = []
    imported = now()
    for p in parsed:
        if p.actors is None or not p.actors.num_rows:
            continue
        digest = TR.sha256_file(Path(p.path)) if p.path else None
        pl = TR.place(p.actor_dataset or "actors", None, [digest] if digest else [], prov)
        n = p.actors.num_rows
        t = p.actors
        for col, val, typ in (("dataset", pl.dataset, pa.string()), ("tier", pl.tier, pa.string()),
                              ("importer", prov.principal.name, pa.string()),
                              ("imported_at", imported, ACTOR_SCHEMA.field("imported_at").type),
                              ("digest", digest, pa.string())):
            t = t.set_column(t.schema.get_field_index(col), col, pa.array([val] * n, typ))
        out.append(t)
    return out


def _keys(t: pa.Table) -> set[tuple]:
    """The (chain, address) pairs a version lists: what a delisting is counted in (copies of one list in
    other formats spell names differently; an address leaving the list is what matters)."""
    if t.num_rows == 0:
        return set()
    return set(zip(t["chain"].to_pylist(), t["address"].to_pylist(), strict=True))


def _store_dataset(ws: Workspace, txn, dataset: str, by_date: dict[dt.datetime, _Version],  # noqa: ANN001
                   meta: list[dict], prov: TR.Provenance, stats: ImportStats,
                   con) -> None:  # noqa: ANN001
    key = history.part_key(dataset)
    old = ws.read("tag_observations", key)
    mine = [m for m in meta if m["dataset"] == dataset]
    version = max((m["version"] for m in mine), default=0)
    added_tables: list[pa.Table] = []
    for as_of, v in sorted(by_date.items()):
        pl = v.placement
        issues: list[Issue] = []
        tables = [s.tags for s in v.snaps]
        for s in v.snaps:
            lost = ofac.case_lost_rows(s, issues)
            if lost is not None:
                tables.append(lost)
        stats.issues += issues
        new = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        if any(s.case_lost for s in v.snaps):
            # version 0 marks the new rows while the whole dataset restores their case
            usable = _resolve_case(pa.concat_tables([old, *added_tables, _stamp(new, pl, prov, 0, v, "")],
                                                    promote_options="permissive"))
            usable = usable.filter(pc.equal(usable["version"], 0))
            held = {(c, a.lower()) for c, a in _keys(usable)}
            for s in v.snaps:
                for e in s.case_lost:
                    for code, addr, line in e.addresses:
                        if (C.chain_for_asset(code, addr), addr.lower()) not in held:
                            stats.issues.append(Issue(s.path, line, ofac.CASE_LOST, address=addr))
        else:
            usable = None
        digest = v.digests[0] if len(v.digests) == 1 else hashlib.sha256(
            "".join(sorted(v.digests)).encode()).hexdigest()
        current = [m for m in mine if not m["superseded"]]
        same = [m for m in current if m["as_of"] == as_of]
        if same and same[0]["digest"] == digest:
            stats.unchanged += 1
            continue
        earlier = [m for m in current if m["as_of"] < as_of]
        pred = same[0] if same else (max(earlier, key=lambda m: m["as_of"]) if earlier else None)
        new_keys = _keys(usable) if usable is not None else _keys(new)
        gone = 0
        reasons = []
        if pred is not None:
            pk = _keys(old.filter(pc.equal(old["version"], pred["version"]))) if old.num_rows else set()
            if not pk and added_tables:
                prev = pa.concat_tables(added_tables)
                pk = _keys(prev.filter(pc.equal(prev["version"], pred["version"])))
            gone = len(pk - new_keys)
            if same:
                reasons.append(f"replaces the version of {as_of.date()} (version {pred['version']}, "
                               f"sha256 {str(pred['digest'])[:12]}…)")
            if pk and gone / len(pk) > DELIST_SHARE:
                reasons.append(f"delists {gone:,} of the {len(pk):,} tags of the version of "
                               f"{pred['as_of'].date()} ({gone / len(pk):.1%}, more than {DELIST_SHARE:.0%})")
        if reasons and not prov.confirm:
            stats.issues.append(Issue(v.files[0], None, f"{dataset}: this snapshot of {as_of.date()} "
                                      f"{' and '.join(reasons)}: not imported. Check the file; re-run with "
                                      "--confirm to store it as a new version (recorded, the old version is "
                                      "kept)", skipped=True))
            continue
        version += 1
        new = history.dedupe(_stamp(new, pl, prov, version, v, digest), con)
        added_tables.append(new)
        row = {"dataset": dataset, "version": version, "as_of": as_of, "publication": pl.publication,
               "tier": pl.tier, "importer": prov.principal.name, "imported_at": now(),
               "format": ",".join(sorted({s.format for s in v.snaps})), "files": v.files, "digest": digest,
               "source_url": prov.source_url, "rows": new.num_rows,
               "added": len(new_keys - (_keys(old.filter(pc.equal(old["version"], pred["version"])))
                                        if pred is not None and old.num_rows else set())),
               "delisted": gone, "replaces": same[0]["version"] if same else None, "superseded": False,
               "superseded_by": None, "confirmed": bool(reasons),
               "note": "; ".join(reasons) if reasons else None}
        if same:
            same[0]["superseded"] = True
            same[0]["superseded_by"] = version
        meta.append(row)
        mine.append(row)
        stats.versions.append({k: row[k] for k in ("dataset", "version", "as_of", "tier", "rows", "delisted",
                                                   "confirmed")})
        stats.by_dataset[dataset] = stats.by_dataset.get(dataset, 0) + new.num_rows
    if not added_tables:
        return
    obs = pa.concat_tables([old, *added_tables]) if old.num_rows else pa.concat_tables(added_tables)
    txn.replace("tag_observations", key, obs)
    live = [m["version"] for m in mine if not m["superseded"]]
    cur = obs.filter(pc.or_kleene(pc.is_in(obs["version"], value_set=pa.array(live, pa.int64())),
                                  pc.is_null(obs["version"])))
    tags = history.rebuild(history.dedupe(_resolve_case(cur), con), con)
    txn.replace("tags", key, tags)
    stats.delisted += int(pc.sum(pc.is_valid(tags["valid_to"])).as_py() or 0) if tags.num_rows else 0
    first = pc.min(cur["as_of"]) if cur.num_rows else None
    if tags.num_rows and first is not None:
        later = pc.and_(pc.is_valid(tags["valid_from"]), pc.greater(tags["valid_from"], first))
        stats.added += int(pc.sum(later).as_py() or 0)


def _resolve_case(obs: pa.Table) -> pa.Table:
    """``obs`` with the rows of lower-cased base58 addresses (ofac.CASE_LOST_NOTE) given the case another
    row of the dataset holds them with, and without those no row holds: computed over the whole dataset
    each time, so the result does not depend on the order the versions were imported in."""
    if obs.num_rows == 0:
        return obs
    flagged = pc.fill_null(pc.match_substring(obs["note"], ofac.CASE_LOST_NOTE), False)
    if not pc.any(flagged).as_py():
        return obs
    good = obs.filter(pc.invert(flagged))
    lost = obs.filter(flagged)
    mixed = good.filter(pc.not_equal(good["address"], pc.utf8_lower(good["address"])))
    known = {(c, a.lower()): a for c, a in zip(mixed["chain"].to_pylist(), mixed["address"].to_pylist(),
                                               strict=True)}
    fixed = [known.get((c, a)) for c, a in zip(lost["chain"].to_pylist(), lost["address"].to_pylist(),
                                                 strict=True)]
    lost = lost.set_column(lost.schema.get_field_index("address"), "address", pa.array(fixed, pa.string()))
    lost = lost.filter(pc.is_valid(lost["address"]))
    return pa.concat_tables([good, lost]) if lost.num_rows else good


def _stamp(t: pa.Table, pl: TR.Placement, prov: TR.Provenance, version: int, v: _Version,
           digest: str) -> pa.Table:
    """The provenance columns of a new version's rows, and confidence capped by the tier."""
    n = t.num_rows
    by_file = dict(zip(v.files, v.digests, strict=True))
    conf = t["confidence"].to_pylist()
    capped = [TR.cap_confidence(c, pl.tier) for c in conf]
    notes = t["note"].to_pylist()
    for i, (a, b) in enumerate(zip(conf, capped, strict=True)):
        if a is not None and b is not None and b < a:
            msg = f"confidence {a:g} capped at {b:g} ({pl.tier} tier)"
            notes[i] = f"{notes[i]}; {msg}" if notes[i] else msg
    cols = {
        "dataset": pa.array([pl.dataset] * n, pa.string()),
        "tier": pa.array([pl.tier] * n, pa.string()),
        "importer": pa.array([prov.principal.name] * n, pa.string()),
        "publication": pa.array([pl.publication] * n, pa.string()),
        "digest": pa.array([by_file.get(f, digest) for f in t["file"].to_pylist()], pa.string()),
        "source_url": pa.array([prov.source_url] * n, pa.string()),
        "version": pa.array([version] * n, pa.int64()),
        "confidence": pa.array(capped, pa.float64()),
        "note": pa.array(notes, pa.string()),
    }
    for name, arr in cols.items():
        t = t.set_column(t.schema.get_field_index(name), name, arr)
    return t


def _merge_actors(old: pa.Table, new: list[pa.Table]) -> pa.Table:
    """Actors by (dataset, id): a later version of a dataset's ActorPack replaces that dataset's own
    definition of an actor; no import touches another dataset's actors."""
    rows: dict[tuple[str | None, str], dict] = {}
    for t in [old, *new]:
        for r in t.to_pylist():
            rows[(r.get("dataset"), r["actor"])] = r
    ordered = [rows[k] for k in sorted(rows, key=lambda k: (k[1], k[0] or ""))]
    return S.conform(pa.Table.from_pylist(ordered, schema=ACTOR_SCHEMA), ACTOR_SCHEMA, "actors")


def datasets(ws: Workspace) -> pa.Table:
    """One row per dataset: its snapshots (dates), tags now listed, tags delisted."""
    return ws.query("""
        SELECT dataset, count(DISTINCT as_of) AS snapshots, min(as_of) AS first_snapshot,
               max(as_of) AS last_snapshot, count(*) AS rows
        FROM tag_observations GROUP BY dataset ORDER BY dataset""")


def sources(ws: Workspace) -> pa.Table:
    """One row per dataset: tier, importer(s), publication, versions, newest date, digests, tags now held."""
    return ws.query("""
        SELECT s.dataset, any_value(s.tier) AS tier, string_agg(DISTINCT s.importer, ', ') AS importers,
               any_value(s.publication) AS publication,
               count(*) FILTER (WHERE NOT s.superseded) AS versions,
               count(*) FILTER (WHERE s.superseded) AS replaced,
               max(s.as_of) FILTER (WHERE NOT s.superseded) AS newest,
               arg_max(s.digest, s.as_of) FILTER (WHERE NOT s.superseded) AS newest_sha256,
               arg_max(s.source_url, s.as_of) FILTER (WHERE NOT s.superseded) AS newest_url,
               (SELECT count(*) FROM tags t WHERE t.dataset = s.dataset AND t.valid_to IS NULL) AS listed_now
        FROM tag_snapshots s GROUP BY s.dataset ORDER BY s.dataset""")


def dataset_history(ws: Workspace, dataset: str) -> pa.Table:
    """Every version of ``dataset``, replaced ones included, oldest first."""
    t = ws.read(SNAPSHOTS, GLOBAL)
    t = t.filter(pc.equal(t["dataset"], dataset))
    if t.num_rows == 0:
        known = sorted(set(ws.read(SNAPSHOTS, GLOBAL, columns=["dataset"])["dataset"].to_pylist()))
        raise NotFoundError(f"no dataset {dataset!r} (datasets: {', '.join(known) or 'none yet'})")
    return t.sort_by([("as_of", "ascending"), ("version", "ascending")]).drop_columns(["files"]).append_column(
        "files", pa.array([", ".join(f or []) for f in t.sort_by([("as_of", "ascending"),
                                                                  ("version", "ascending")])["files"]
                           .to_pylist()], pa.string()))

"""Importing tag files into a workspace: detect each file's format, read it, keep its snapshot, rebuild
the history of the datasets it touched, all in one transaction."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from fundtrail.attribution import csvtags, detect, etherscan, fbi, history, ofac, tagpack
from fundtrail.attribution.records import ACTOR_SCHEMA, TAG_SCHEMA, ImportStats, Issue, Parsed, Snapshot, ts
from fundtrail.errors import FundtrailError, NotFoundError, TagFileError
from fundtrail.progress import NullProgress, Progress
from fundtrail.store import GLOBAL, Workspace
from fundtrail.store import schema as S

# what a reader lets through on a malformed file (found by fuzzing: invalid UTF-8, impossible YAML dates,
# wrong JSON/YAML types, deep nesting); the file is reported as an issue and the other files still import
_FILE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError, RecursionError,
                UnicodeError, SyntaxError, MemoryError)


def guarded(read: Callable[..., Parsed]) -> Callable[..., Parsed]:
    """``read`` with any error of a malformed file turned into a TagFileError naming the file."""
    @functools.wraps(read)
    def inner(path: Path, *args: Any, **kwargs: Any) -> Parsed:
        try:
            return read(path, *args, **kwargs)
        except FundtrailError:
            raise
        except _FILE_ERRORS as e:
            raise TagFileError(f"cannot read ({type(e).__name__}: {str(e)[:200]})", path=path) from None
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


def read_paths(paths: Sequence[Path | str], *, as_of: dt.datetime | dt.date | str | None = None,
               progress: Progress = NullProgress()) -> tuple[list[Parsed], ImportStats]:
    """Read (without storing) every tag file under ``paths``."""
    stats = ImportStats()
    files = detect.expand([Path(p) for p in paths])
    for p in files:
        if not p.exists():
            raise NotFoundError(f"{p}: no such file or folder")
    formats = {f: detect.detect(f) for f in files}
    comments = [f for f, k in formats.items() if k == "ofac-sdn-comments"]
    sdn_csvs = [f for f, k in formats.items() if k == "ofac-sdn-csv"]
    when = ts(as_of) if as_of is not None else None
    parsed: list[Parsed] = []
    task = progress.task("reading tag files", total=len(files), unit="files")
    try:
        for f in files:
            fmt = formats[f]
            try:
                if fmt is None:
                    stats.issues.append(Issue(str(f), None, "not a tag file format fundtrail reads (skipped)",
                                              level="warning"))
                elif fmt == "ofac-sdn-comments":
                    if not sdn_csvs:
                        stats.issues.append(Issue(str(f), None, "an sdn_comments.csv without its sdn.csv: "
                                                  "import them together", level="warning"))
                elif fmt == "ofac-sdn-csv":
                    c = _comments_for(f, comments)
                    parsed.append(READERS["ofac-sdn-csv"](f, c, as_of=when))
                else:
                    parsed.append(READERS[fmt](f, as_of=when))
                stats.files += 1
            except FundtrailError as e:
                stats.issues.append(Issue(str(f), getattr(e, "line", None), str(e)))
            rows = parsed[-1].snapshots[0].tags.num_rows if parsed and parsed[-1].snapshots else 0
            task.advance(1, tags=rows)
    finally:
        task.close()
    for p in parsed:
        stats.issues += p.issues
        for s in p.snapshots:
            stats.tags += s.tags.num_rows
            stats.by_format[s.format] = stats.by_format.get(s.format, 0) + s.tags.num_rows
            stats.by_dataset[s.dataset] = stats.by_dataset.get(s.dataset, 0) + s.tags.num_rows
        if p.actors is not None:
            stats.actors += p.actors.num_rows
            stats.by_format["graphsense-actorpack"] = stats.by_format.get("graphsense-actorpack", 0) + \
                p.actors.num_rows
    return parsed, stats


def import_paths(ws: Workspace, paths: Sequence[Path | str], *, as_of: dt.datetime | dt.date | str | None = None,
                 progress: Progress = NullProgress()) -> ImportStats:
    """Import tag files (TagPacks, ActorPacks, OFAC files, Etherscan labels, FBI lists, CSV) into ``ws``.

    Folders are read recursively. ``as_of`` overrides the snapshot date each file gives (or its name, or
    its modification time). Bad rows are reported in ``ImportStats.issues`` and the rest still imports.
    """
    parsed, stats = read_paths(paths, as_of=as_of, progress=progress)
    groups: dict[str, list[Snapshot]] = {}
    for p in parsed:
        for s in p.snapshots:
            groups.setdefault(s.dataset, []).append(s)
    actor_tables = [p.actors for p in parsed if p.actors is not None and p.actors.num_rows]
    task = progress.task("storing tags", total=len(groups), unit="datasets")
    con = history.connect()
    try:
        # the files were read above, without the writer lease (a slow parse blocks no other writer); the
        # stored observations are read, merged and replaced under it
        with ws.writer(purpose="tags import"), ws.transaction() as txn:
            for dataset, snaps in sorted(groups.items()):
                key = history.part_key(dataset)
                old = ws.read("tag_observations", key)
                new = pa.concat_tables([s.tags for s in snaps])
                dates = pa.array(sorted({s.as_of for s in snaps}), TAG_SCHEMA.field("as_of").type)
                if old.num_rows:
                    old = old.filter(pc.invert(pc.is_in(old["as_of"], value_set=dates)))
                obs = history.dedupe(pa.concat_tables([old, new]) if old.num_rows else new, con)
                txn.replace("tag_observations", key, obs)
                tags = history.rebuild(obs, con)
                txn.replace("tags", key, tags)
                stats.delisted += int(pc.sum(pc.is_valid(tags["valid_to"])).as_py() or 0) if tags.num_rows else 0
                first = pc.min(obs["as_of"]) if obs.num_rows else None
                if tags.num_rows and first is not None:
                    later = pc.and_(pc.is_valid(tags["valid_from"]), pc.greater(tags["valid_from"], first))
                    stats.added += int(pc.sum(later).as_py() or 0)
                task.advance(1)
            if actor_tables:
                txn.replace("actors", GLOBAL, _merge_actors(ws.read("actors", GLOBAL), actor_tables))
    finally:
        con.close()
        task.close()
    return stats


def _merge_actors(old: pa.Table, new: list[pa.Table]) -> pa.Table:
    """Actors by id: a later file's actor replaces an earlier one with the same id."""
    rows: dict[str, dict] = {}
    for t in [old, *new]:
        for r in t.to_pylist():
            rows[r["actor"]] = r
    ordered = [rows[k] for k in sorted(rows)]
    return S.conform(pa.Table.from_pylist(ordered, schema=ACTOR_SCHEMA), ACTOR_SCHEMA, "actors")


def datasets(ws: Workspace) -> pa.Table:
    """One row per dataset: its snapshots (dates), tags now listed, tags delisted."""
    return ws.query("""
        SELECT dataset, count(DISTINCT as_of) AS snapshots, min(as_of) AS first_snapshot,
               max(as_of) AS last_snapshot, count(*) AS rows
        FROM tag_observations GROUP BY dataset ORDER BY dataset""")

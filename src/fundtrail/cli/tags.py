"""``fundtrail tags import|fetch|show|search|at|resolve|datasets``."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import typer

from fundtrail.cli.common import (
    CliProgress,
    HomeOpt,
    WaitOpt,
    console,
    emit_json,
    err_console,
    render_table,
    workspace,
)

tags_app = typer.Typer(help="Attribution tags: import, fetch, show, search, point-in-time questions.",
                       no_args_is_help=True)

SHOW_COLS = ["chain", "address", "entity", "label", "category", "country", "program", "confidence", "source",
             "valid_from", "valid_to", "tier", "dataset", "version"]


def _fmt(json_out: bool, csv_out: bool) -> str:
    return "json" if json_out else "csv" if csv_out else "table"


#: exit code of an import that stored what it could but skipped files or refused snapshots (TagFileError)
PARTIAL = 3


def _print_stats(stats, max_issues: int) -> None:  # noqa: ANN001
    console.print(f"{stats.files} files, {stats.tags:,} tags, {stats.actors:,} actors "
                  f"({', '.join(f'{k}: {v:,}' for k, v in sorted(stats.by_format.items()))})", markup=False)
    for v in stats.versions:
        console.print(f"stored {v['dataset']} version {v['version']} of {v['as_of'].date()} ({v['tier']}, "
                      f"{v['rows']:,} rows{', confirmed' if v['confirmed'] else ''})", markup=False,
                      highlight=False)
    if stats.unchanged:
        console.print(f"{stats.unchanged} snapshots already stored with the same content: unchanged")
    if stats.added or stats.delisted:
        console.print(f"history: {stats.added:,} tags added after a dataset's first snapshot, "
                      f"{stats.delisted:,} delisted")
    if stats.issues:
        errors = len(stats.errors)
        skipped = stats.skipped
        err_console.print(f"{errors} rows or files not imported, {len(stats.issues) - errors} warnings:")
        shown = skipped + [i for i in stats.issues if not i.skipped]  # whole files first
        for i in shown[:max_issues]:
            err_console.print(f"  {i}", highlight=False, markup=False)
        if len(stats.issues) > max_issues:
            err_console.print(f"  … {len(stats.issues) - max_issues} more (--max-issues N to see them)")
        if skipped:
            from fundtrail.errors import TagFileError  # exit code 3 (PARTIAL), translated by cli.main

            raise TagFileError(f"partial import: {len(skipped)} files or snapshots skipped; the rest is stored")


def _limits(memory_mib: int, cpu_s: int):  # noqa: ANN202
    from fundtrail.attribution.isolate import ParseLimits

    return ParseLimits(memory_bytes=memory_mib << 20, cpu_seconds=max(1, cpu_s)) if memory_mib > 0 else None


def _cols(t: pa.Table, cols: list[str]) -> pa.Table:
    return t.select([c for c in cols if c in t.column_names])


@tags_app.command("import")
def import_cmd(
    paths: list[Path] = typer.Argument(..., help="Files or folders: TagPack/ActorPack YAML, OFAC SDN files, "
                                       "Etherscan labels, FBI lists, CSV."),
    home: HomeOpt = None,
    as_of: str | None = typer.Option(None, "--as-of", help="Snapshot date of these files (default: from the "
                                     "files, their names, or their modification time)."),
    as_name: str | None = typer.Option(None, "--as", help="The dataset: NAME (your own list, stored as "
                                       "user:YOU:NAME), or with --sha256 an authoritative list (ofac:sdn)."),
    sha256: list[str] = typer.Option(None, "--sha256", help="Admin only: the pinned SHA-256 of the official "
                                     "file (repeatable); the import is refused unless every file matches."),
    confirm: bool = typer.Option(False, "--confirm", help="Store a snapshot that replaces a stored one of the "
                                 "same date or delists more than 5% of a dataset (recorded)."),
    max_issues: int = typer.Option(20, "--max-issues", help="How many problems to list."),
    parse_memory: int = typer.Option(4096, "--parse-memory", help="MiB a file's parser may allocate (each "
                                     "file is read in a limited child process); 0: no child, no limit."),
    parse_cpu: int = typer.Option(300, "--parse-cpu", help="CPU seconds a file's parser may use."),
    wait: WaitOpt = 0.0,
) -> None:
    """Import tag files into your own dataset (or, pinned by digest, an authoritative one); a newer
    snapshot of a list is a new version that records additions and delistings. Exit code 3: partial."""
    from fundtrail.attribution.service import import_paths
    from fundtrail.attribution.trust import Provenance
    from fundtrail.principal import cli_principal

    ws = workspace(home, wait=wait)
    prov = Provenance.of_import(cli_principal(ws.home), as_name=as_name, sha256=sha256 or (), confirm=confirm)
    with CliProgress() as progress:
        stats = import_paths(ws, paths, as_of=as_of, progress=progress, provenance=prov,
                             limits=_limits(parse_memory, parse_cpu))
    _print_stats(stats, max_issues)


@tags_app.command("fetch")
def fetch_cmd(
    source: str = typer.Argument(..., help="ofac | ofac-csv | ofac-advanced | ofac-lists | graphsense | "
                                 "etherscan"),
    home: HomeOpt = None,
    url: list[str] = typer.Option(None, "--url", help="Download from this URL instead (repeatable); the "
                                  "files are then your own import, not the authoritative list."),
    as_of: str | None = typer.Option(None, "--as-of", help="Snapshot date (default: from the files, or today)."),
    confirm: bool = typer.Option(False, "--confirm", help="Store a snapshot that replaces one of the same "
                                 "date or delists more than 5% of the dataset (recorded)."),
    max_issues: int = typer.Option(20, "--max-issues"),
    parse_memory: int = typer.Option(4096, "--parse-memory", help="MiB a file's parser may allocate; 0: no "
                                     "limit."),
    parse_cpu: int = typer.Option(300, "--parse-cpu", help="CPU seconds a file's parser may use."),
    wait: WaitOpt = 0.0,
) -> None:
    """Download a public tag source (when online) and import it."""
    from fundtrail.attribution.fetch import fetch

    ws = workspace(home, wait=wait)
    with CliProgress() as progress:
        stats = fetch(ws, source, urls=url or None, as_of=as_of, progress=progress, confirm=confirm,
                      limits=_limits(parse_memory, parse_cpu))
    _print_stats(stats, max_issues)


@tags_app.command("sources")
def sources_cmd(home: HomeOpt = None, json_out: bool = typer.Option(False, "--json"),
                csv_out: bool = typer.Option(False, "--csv")) -> None:
    """Every dataset: trust tier, importers, versions, newest date, digest and URL, tags listed now."""
    from fundtrail.attribution.service import sources

    render_table(sources(workspace(home)), _fmt(json_out, csv_out), title="tag datasets")


@tags_app.command("history")
def history_cmd(dataset: str = typer.Argument(..., help="A dataset id, e.g. ofac:sdn (see tags sources)."),
                home: HomeOpt = None, json_out: bool = typer.Option(False, "--json"),
                csv_out: bool = typer.Option(False, "--csv")) -> None:
    """Every version of a dataset (replaced ones too): date, importer, digest, rows, delistings."""
    from fundtrail.attribution.service import dataset_history

    render_table(dataset_history(workspace(home), dataset), _fmt(json_out, csv_out), title=f"history of {dataset}")


@tags_app.command("show")
def show_cmd(
    address: str = typer.Argument(...),
    home: HomeOpt = None,
    chain: str | None = typer.Option(None, "--chain"),
    at: str | None = typer.Option(None, "--at", help="Point in time (date); default now."),
    json_out: bool = typer.Option(False, "--json"),
    csv_out: bool = typer.Option(False, "--csv"),
) -> None:
    """The address's tags (rank 1 wins), its history, and the tags of its cluster."""
    from fundtrail.attribution.resolve import address_tags, cluster_tags

    ws = workspace(home)
    own = address_tags(ws, address, chain=chain, at=at)
    fmt = _fmt(json_out, csv_out)
    if own.num_rows == 0:
        err_console.print(f"no tags for {address}")
    else:
        render_table(_cols(own, ["rank", "valid_now", *SHOW_COLS]), fmt, title=f"tags of {address}")
    chains = sorted(set(own["chain"].to_pylist())) if own.num_rows else ([chain] if chain else [])
    for ch in chains:
        ct = cluster_tags(ws, address, ch, at=at)
        if ct.num_rows:
            render_table(_cols(ct, ["cluster_id", "rank", "is_cluster_definer", *SHOW_COLS]), fmt,
                         title=f"tags in the {ch} cluster of {address}")


@tags_app.command("search")
def search_cmd(
    text: str = typer.Argument(..., help="Part of a label, entity, actor or program; or a category."),
    home: HomeOpt = None,
    limit: int = typer.Option(100, "--limit"),
    json_out: bool = typer.Option(False, "--json"),
    csv_out: bool = typer.Option(False, "--csv"),
) -> None:
    """Find tags by name, entity, actor, program or category."""
    from fundtrail.attribution.resolve import search

    render_table(search(workspace(home), text, limit=limit), _fmt(json_out, csv_out))


@tags_app.command("at")
def at_cmd(
    address: str = typer.Argument(...),
    date: str = typer.Option(..., "--date", help="The date asked about (YYYY-MM-DD)."),
    home: HomeOpt = None,
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Was ADDRESS sanctioned on DATE, and what was it labelled then?"""
    from fundtrail.attribution.resolve import address_tags, sanctioned_at

    ws = workspace(home)
    yes, rows = sanctioned_at(ws, address, date)
    tags = address_tags(ws, address, at=date, history=False)
    if json_out:
        emit_json({"address": address, "date": date, "sanctioned": yes,
                   "sanctions": rows.to_pylist(), "tags": _cols(tags, ["rank", *SHOW_COLS]).to_pylist()})
        return
    console.print(f"{address} on {date}: {'SANCTIONED' if yes else 'not sanctioned'}", markup=False)
    review = [r for r in rows.to_pylist() if r.get("valid_now") and not r.get("binding")] if rows.num_rows else []
    if review:
        console.print("listed as sanctioned by non-binding datasets (a reason to review): "
                      + ", ".join(sorted({str(r["dataset"]) for r in review})), markup=False)
    if rows.num_rows:
        render_table(rows, title="sanctions listings (all dates)")
    if tags.num_rows:
        render_table(_cols(tags, ["rank", *SHOW_COLS]), title=f"tags valid on {date}")


@tags_app.command("resolve")
def resolve_cmd(
    chain: str = typer.Option(..., "--chain"),
    home: HomeOpt = None,
    at: str | None = typer.Option(None, "--at"),
    json_out: bool = typer.Option(False, "--json"),
    csv_out: bool = typer.Option(False, "--csv"),
) -> None:
    """The winning attribution of every tagged address (and cluster member) of a chain."""
    from fundtrail.attribution.resolve import resolve_labels

    render_table(resolve_labels(workspace(home), chain, at=at), _fmt(json_out, csv_out))


@tags_app.command("datasets")
def datasets_cmd(home: HomeOpt = None, json_out: bool = typer.Option(False, "--json")) -> None:
    """The imported datasets and their snapshots."""
    from fundtrail.attribution.service import datasets

    render_table(datasets(workspace(home)), "json" if json_out else "table")


def register(app: typer.Typer) -> None:
    app.add_typer(tags_app, name="tags")

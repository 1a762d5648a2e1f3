"""``fundtrail watch add|list|remove``: watched addresses, clusters and incidents."""

from __future__ import annotations

import json

import typer

from fundtrail.cli.common import DbOpt, HomeOpt, render_table, workspace


def register(app: typer.Typer) -> None:
    watch = typer.Typer(help="Watch addresses, clusters or incidents: an alert when their funds move.",
                        no_args_is_help=True)
    app.add_typer(watch, name="watch")

    def _book(db: str | None, home):
        from fundtrail.monitor.watches import WatchBook
        from fundtrail.service.store import open_store

        ws = workspace(home)
        return ws, WatchBook(open_store(db, ws.home))

    @watch.command("add")
    def add(chain: str = typer.Option(..., "--chain"),
            address: str = typer.Option(None, "--address"),
            cluster_id: int = typer.Option(None, "--cluster"),
            incident: str = typer.Option(None, "--incident"),
            note: str = typer.Option(None, "--note"),
            db: str = DbOpt, home: HomeOpt = None) -> None:
        """Add a watch; prints its id."""
        ws, book = _book(db, home)
        w = book.add(ws, chain, address=address, cluster_id=cluster_id, incident=incident, note=note, by="cli")
        typer.echo(w.watch_id)

    @watch.command("list")
    def list_(all_: bool = typer.Option(False, "--all", help="Include removed watches."),
              db: str = DbOpt, home: HomeOpt = None, json_out: bool = typer.Option(False, "--json")) -> None:
        """List the watches."""
        import pyarrow as pa

        _, book = _book(db, home)
        rows = [w.to_json() for w in book.list(include_removed=all_)]
        if json_out:
            for r in rows:
                typer.echo(json.dumps(r))
            return
        flat = [{"watch_id": r["watch_id"], "chain": r["chain"], "target_kind": r["target_kind"],
                 "target": r[r["target_kind"]], "from_height": r["from_height"], "note": r["note"] or "",
                 "removed": r["removed"] or ""} for r in rows]
        render_table(pa.Table.from_pylist(flat) if flat else pa.table({"watch_id": pa.array([], pa.string())}))

    @watch.command("remove")
    def remove(watch_id: str, db: str = DbOpt, home: HomeOpt = None) -> None:
        """Stop a watch (it stays listed with --all)."""
        _, book = _book(db, home)
        book.remove(watch_id)
        typer.echo(watch_id)

"""``fundtrail keys create|list|revoke``: API keys (only their hashes are stored)."""

from __future__ import annotations

import json

import typer

from fundtrail.cli.common import DbOpt, HomeOpt, render_table, service_store


def register(app: typer.Typer) -> None:
    keys = typer.Typer(help="API keys of the screening service.", no_args_is_help=True)
    app.add_typer(keys, name="keys")

    @keys.command("create")
    def create(name: str = typer.Argument(...),
               role: str = typer.Option(..., "--role", help="admin|investigator|screener|viewer"),
               rate: float = typer.Option(1000.0, "--rate", help="Requests per second allowed (429 above)."),
               db: str = DbOpt, home: HomeOpt = None) -> None:
        """Create a key; prints the secret key alone on stdout, once."""
        from fundtrail.service.auth import create_key

        secret = create_key(service_store(home, db), name, role, rate)
        typer.echo(secret)

    @keys.command("list")
    def list_(db: str = DbOpt, home: HomeOpt = None, json_out: bool = typer.Option(False, "--json")) -> None:
        """Keys with their role, prefix, rate limit and state (never the secret)."""
        import pyarrow as pa

        rows = service_store(home, db).keys()
        if json_out:
            for r in rows:
                typer.echo(json.dumps(r, default=str))
            return
        render_table(pa.Table.from_pylist(rows) if rows else pa.table({"name": pa.array([], pa.string())}))

    @keys.command("revoke")
    def revoke(name: str = typer.Argument(...), db: str = DbOpt, home: HomeOpt = None) -> None:
        """Revoke a key (requests with it get 401 within 2 seconds)."""
        service_store(home, db).revoke_key(name)

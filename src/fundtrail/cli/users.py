"""``fundtrail users create|list|reset|disable``: people who sign in to the web UI (API keys are for machines)."""

from __future__ import annotations

import json

import typer

from fundtrail.cli.common import DbOpt, HomeOpt, render_table, service_store


def register(app: typer.Typer) -> None:
    users = typer.Typer(help="Users of the web UI (/ui).", no_args_is_help=True)
    app.add_typer(users, name="users")

    @users.command("create")
    def create(name: str = typer.Argument(...),
               role: str = typer.Option(..., "--role", help="investigator|viewer|admin"),
               db: str = DbOpt, home: HomeOpt = None) -> None:
        """Create a user; prints the one-time password alone on stdout."""
        from fundtrail.service.users import create_user

        typer.echo(create_user(service_store(home, db), name, role))

    @users.command("reset")
    def reset(name: str = typer.Argument(...), db: str = DbOpt, home: HomeOpt = None) -> None:
        """A new one-time password (also lifts a lockout); printed alone on stdout."""
        from fundtrail.service.users import reset_password

        typer.echo(reset_password(service_store(home, db), name))

    @users.command("disable")
    def disable(name: str = typer.Argument(...), db: str = DbOpt, home: HomeOpt = None) -> None:
        """Disable a user and end their sessions."""
        from fundtrail.service.users import disable_user

        disable_user(service_store(home, db), name)

    @users.command("list")
    def list_(db: str = DbOpt, home: HomeOpt = None, json_out: bool = typer.Option(False, "--json")) -> None:
        """Users with their role and lock state (never a password)."""
        import pyarrow as pa

        from fundtrail.service.users import list_users

        rows = list_users(service_store(home, db))
        if json_out:
            for r in rows:
                typer.echo(json.dumps(r, default=str))
            return
        render_table(pa.Table.from_pylist(rows) if rows else pa.table({"name": pa.array([], pa.string())}))

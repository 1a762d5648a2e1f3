"""``fundtrail ingest bitcoin|evm``: the subcommands live in cli/ingest_bitcoin.py and cli/ingest_evm.py."""

from __future__ import annotations

import importlib

import typer

ingest_app = typer.Typer(help="Ingest a chain into the workspace.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    for name in ("ingest_bitcoin", "ingest_evm"):
        try:
            mod = importlib.import_module(f"fundtrail.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"fundtrail.cli.{name}":
                raise
            continue
        mod.register(ingest_app)
    app.add_typer(ingest_app, name="ingest")

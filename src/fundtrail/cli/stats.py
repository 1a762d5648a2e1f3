"""``fundtrail stats`` and ``fundtrail incident import FILE``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from fundtrail.cli.common import CliProgress, HomeOpt, WaitOpt, console, emit_json, err_console, workspace


def _split(values: list[str]) -> list[str]:
    return [x.strip() for v in values for x in v.split(",") if x.strip()]


def register(app: typer.Typer) -> None:
    @app.command("stats")
    def stats(
        by: list[str] = typer.Option(["actor,year"], "--by",
                                     help="Group by (comma-separated, repeatable): actor, year, month, incident, "
                                          "asset, chain, country, entity, category."),
        incident: list[str] = typer.Option([], "--incident", help="Only these incidents (repeatable)."),
        model: list[str] = typer.Option(["haircut"], "--model",
                                        help="Taint model(s): haircut, poison, fifo or all (comma-separated)."),
        date_from: str | None = typer.Option(None, "--from", help="Only movements from this day (YYYY-MM-DD)."),
        date_to: str | None = typer.Option(None, "--to", help="Only movements before this day (YYYY-MM-DD)."),
        max_hops: int = typer.Option(20, "--max-hops", help="Hop budget of every trace."),
        fmt: str = typer.Option("table", "--format", help="table, json, csv or html."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Write to this file instead of stdout."),
        home: HomeOpt = None,
        engine: str = typer.Option("embedded", "--engine", help="Where the traces and sums run: embedded (in "
                                   "process) or spark (one task per incident and model, sums in DataFrames)."),
        spark_master: str = typer.Option("local[*]", "--spark-master", help="Spark master URL "
                                         "(local[*], spark://host:7077, yarn, k8s://...)."),
        spark_conf: list[str] = typer.Option([], "--spark-conf", help="A Spark setting key=value (repeatable)."),
    ) -> None:
        """Stolen, cashed-out, mixed and unspent value per actor, year, asset, country … with the method."""
        from fundtrail.errors import UsageError
        from fundtrail.stats.render import FORMATS, render
        from fundtrail.stats.service import MODELS, compute_stats

        if fmt not in FORMATS:
            raise UsageError(f"--format: unknown format {fmt!r}; use {', '.join(FORMATS)}")
        models = _split(model)
        if "all" in models:
            models = list(MODELS)
        from fundtrail.engine.base import engine_spec

        spec = engine_spec(engine, spark_master, spark_conf)
        run = compute_stats
        if spec.distributed:
            import functools

            from fundtrail.stats.distributed import compute_stats as on_spark

            run = functools.partial(on_spark, spec=spec)
        with CliProgress() as progress:
            result = run(workspace(home), by=_split(by), incidents=incident, models=models,
                         date_from=date_from, date_to=date_to, max_hops=max_hops, progress=progress)
        text = render(result, fmt)
        if out is None:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
            err_console.print(f"wrote {out} ({len(text.encode()):,} bytes)", highlight=False)

    try:
        from fundtrail.cli.report import incident_app
    except ImportError:  # the incident commands are not built
        return

    @incident_app.command("import")
    def incident_import(
        file: Path | None = typer.Argument(None, help="Catalogue file (.csv, .json, .yaml)."),
        shipped: bool = typer.Option(False, "--shipped",
                                     help="Import the catalogue that ships with fundtrail (DPRK-attributed thefts)."),
        home: HomeOpt = None,
        json_out: bool = typer.Option(False, "--json", help="Print the imported rows as JSON."),
        wait: WaitOpt = 0.0,
    ) -> None:
        """Import an incident catalogue: rows with seeds become incidents; every row's reported loss and
        sources feed `fundtrail stats`."""
        from fundtrail.errors import UsageError
        from fundtrail.incidents_catalogue import import_entries, parse_catalogue, shipped_catalogue

        if (file is None) == (not shipped):
            raise UsageError("give a catalogue FILE or --shipped (not both)")
        path = shipped_catalogue() if shipped else file
        assert path is not None
        entries = parse_catalogue(path)
        res = import_entries(workspace(home, wait=wait), entries, file=str(path))
        if json_out:
            emit_json({"file": res.path, "entries": [e.to_json() for e in entries],
                       "incidents": list(res.incidents), "without_seeds": list(res.without_seeds)})
            return
        console.print(f"imported {res.entries} catalogue rows from {path}: {len(res.incidents)} incidents with "
                      f"seeds ({', '.join(res.incidents) or 'none'}); {len(res.without_seeds)} without published "
                      "seeds (reported figures only)", highlight=False)

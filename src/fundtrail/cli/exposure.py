"""``fundtrail exposure build|show``: the screening index."""

from __future__ import annotations

import json

import typer

from fundtrail.cli.common import HomeOpt, console, emit_json, workspace
from fundtrail.errors import UsageError


def register(app: typer.Typer) -> None:
    ex = typer.Typer(help="The exposure index the screening service answers from.", no_args_is_help=True)
    app.add_typer(ex, name="exposure")

    @ex.command("build")
    def build(home: HomeOpt = None,
              max_hops: int = typer.Option(6, "--max-hops", help="Hops within which exposure counts."),
              keep: int = typer.Option(50, "--keep", help="Versions to keep for replays."),
              update: bool = typer.Option(False, "--update",
                                          help="Bring the current version up to date: incrementally when only "
                                               "blocks were appended, else a full build (the reason is shown)."),
              json_out: bool = typer.Option(False, "--json"),
              engine: str = typer.Option("embedded", "--engine", help="Where the build runs: embedded (in "
                                         "process) or spark (propagation and fold on Apache Spark)."),
              spark_master: str = typer.Option("local[*]", "--spark-master", help="Spark master URL "
                                               "(local[*], spark://host:7077, yarn, k8s://...)."),
              spark_conf: list[str] = typer.Option([], "--spark-conf",
                                                   help="A Spark setting key=value (repeatable).")) -> None:
        """Build a new version of the exposure index from the workspace (blocks, tags, incidents)."""
        from fundtrail.engine.base import engine_spec

        spec = engine_spec(engine, spark_master, spark_conf)
        ws = workspace(home)
        if spec.distributed:
            if update:
                raise UsageError("--update runs in process (it extends the current version): leave out --engine spark")
            from fundtrail.exposure.distributed import build_index as build_on_spark

            path = build_on_spark(ws, spec, max_hops=max_hops, keep=keep)
        elif update:
            from fundtrail.exposure.update import update_index

            path = update_index(ws, max_hops=max_hops, keep=keep)
        else:
            from fundtrail.exposure.index import build_index

            path = build_index(ws, max_hops=max_hops, keep=keep)
        meta = json.loads((path / "meta.json").read_text())
        how = meta.get("update") or {"mode": "full", "reason": "requested"}
        if json_out:
            emit_json({k: meta.get(k) for k in ("version", "built_at", "heights", "tags_digest", "rows", "timings",
                                                 "update")})
        else:
            why = how.get("reason") or ", ".join(f"{c}: {v}" for c, v in how.get("chains", {}).items())
            console.print(f"exposure index version {meta['version']}: {meta['rows']} rows, "
                          f"{len(meta['groups'])} risk groups, heights {meta['heights']}, "
                          f"{meta['timings'].get('total')} s ({how['mode']}: {why})", highlight=False)

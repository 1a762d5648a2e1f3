"""``fundtrail exposure build|show``: the screening index."""

from __future__ import annotations

import json

import typer

from fundtrail.cli.common import HomeOpt, console, emit_json, workspace


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
              json_out: bool = typer.Option(False, "--json")) -> None:
        """Build a new version of the exposure index from the workspace (blocks, tags, incidents)."""
        from fundtrail.exposure.index import build_index
        from fundtrail.exposure.update import update_index

        ws = workspace(home)
        path = update_index(ws, max_hops=max_hops, keep=keep) if update else build_index(ws, max_hops=max_hops,
                                                                                            keep=keep)
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

"""``fundtrail serve``: the KYT screening API."""

from __future__ import annotations

import typer

from fundtrail.cli.common import HomeOpt, err_console, workspace


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(8080, "--port", help="0 picks a free port (printed)."),
        workers: int = typer.Option(2, "--workers", help="Worker processes."),
        db: str = typer.Option(None, "--db", envvar="FUNDTRAIL_DB",
                               help="Service database: sqlite:///PATH or postgresql://... "
                                    "(default: HOME/service/service.db)."),
        poll: float = typer.Option(2.0, "--poll", help="Seconds between checks for new blocks, tags, incidents."),
        max_body: int = typer.Option(2 << 20, "--max-body", help="Largest request body in bytes (413 above)."),
        follow: bool = typer.Option(False, "--follow", help="Reserved for the monitor (issue 16)."),
        home: HomeOpt = None,
    ) -> None:
        """Serve the screening API (ASGI under uvicorn) over the workspace until Ctrl-C or SIGTERM."""
        from fundtrail.errors import UsageError
        from fundtrail.service.runtime import Config
        from fundtrail.service.server import serve as run

        if workers < 1:
            raise UsageError("--workers must be 1 or more")
        if follow:
            raise UsageError("--follow needs the monitor, which this build does not include yet")
        ws = workspace(home)
        cfg = Config(home=ws.home.resolve(), db=db, workers=workers, poll=poll, max_body=max_body)

        def said(url: str) -> None:
            err_console.print(f"fundtrail API listening on {url} ({workers} workers); docs at {url}/docs",
                              highlight=False)
            typer.echo(url)

        run(cfg, host, port, on_listen=said)

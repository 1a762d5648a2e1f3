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
        follow: bool = typer.Option(False, "--follow", help="Run the monitor too (see fundtrail follow)."),
        source: list[str] = typer.Option(None, "--source", help="With --follow: evm:CHAIN=URL, "
                                         "bitcoin:NETWORK=URL or blocks:NETWORK=DIR (repeatable)."),
        webhook_host: list[str] = typer.Option(None, "--webhook-host",
                                               help="A host webhook receivers may live on (repeatable)."),
        webhook_delay: float = typer.Option(5.0, "--webhook-delay",
                                            help="Seconds before a failed delivery's second attempt (doubling)."),
        home: HomeOpt = None,
    ) -> None:
        """Serve the screening API (ASGI under uvicorn) over the workspace until Ctrl-C or SIGTERM."""
        from fundtrail.errors import UsageError
        from fundtrail.service.runtime import Config
        from fundtrail.service.server import serve as run

        if workers < 1:
            raise UsageError("--workers must be 1 or more")
        from fundtrail.monitor.sources import parse_sources

        if source and not follow:
            raise UsageError("--source needs --follow")
        parse_sources(source)
        ws = workspace(home)
        cfg = Config(home=ws.home.resolve(), db=db, workers=workers, poll=poll, max_body=max_body, follow=follow,
                     sources=tuple(source or ()), webhook_hosts=",".join(webhook_host or ()),
                     webhook_base_delay=webhook_delay)

        def said(url: str) -> None:
            err_console.print(f"fundtrail API listening on {url} ({workers} workers); docs at {url}/docs",
                              highlight=False)
            typer.echo(url)

        run(cfg, host, port, on_listen=said)

"""``fundtrail follow``: keep ingesting, re-screening and alerting without the API."""

from __future__ import annotations

import signal

import typer

from fundtrail.cli.common import HomeOpt, err_console, workspace

SourceOpt = typer.Option(None, "--source", help="evm:CHAIN=URL, bitcoin:NETWORK=URL or blocks:NETWORK=DIR "
                                                "(repeatable): what to keep ingesting from.")
HostOpt = typer.Option(None, "--webhook-host", help="A host webhook receivers may live on (repeatable).")


def register(app: typer.Typer) -> None:
    @app.command("follow")
    def follow(
        source: list[str] = SourceOpt,
        webhook_host: list[str] = HostOpt,
        db: str = typer.Option(None, "--db", envvar="FUNDTRAIL_DB", help="Service database (as for serve)."),
        poll: float = typer.Option(0.5, "--poll", help="Seconds between cycles."),
        home: HomeOpt = None,
    ) -> None:
        """Follow the chain tips: ingest new blocks, handle reorgs, scan watches, re-screen registered
        transfers, raise alerts and deliver webhooks, until Ctrl-C or SIGTERM."""
        from fundtrail.monitor.sources import parse_sources
        from fundtrail.service.monitoring import Monitor
        from fundtrail.service.runtime import Config, Runtime

        parse_sources(source)  # usage errors before anything starts
        ws = workspace(home)
        cfg = Config(home=ws.home.resolve(), db=db, poll=poll, follow=True, sources=tuple(source or ()),
                     webhook_hosts=",".join(webhook_host or ()))
        rt = Runtime.open(cfg)
        mon = Monitor(rt, poll=poll)

        def _stop(_sig, _frm) -> None:
            mon.stop()

        signal.signal(signal.SIGTERM, _stop)
        err_console.print(f"following {', '.join(source or ()) or 'the workspace'}; Ctrl-C stops", highlight=False)
        try:
            mon.run_forever()
        except KeyboardInterrupt:
            pass
        finally:
            mon.stop()
            rt.stop()

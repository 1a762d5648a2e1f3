"""The investigation web UI, served at ``/ui/`` by the service's application factory (``mount(app)``).

Server-rendered Jinja pages (``templates/``) and a little plain JavaScript (``static/``) with one graph
library vendored from npm by ``dev/vendor-js`` (``static/vendor/``: cytoscape.js with the dagre layered
layout, pinned, with their licences). The pages read through :mod:`fundtrail.investigate` and the screening
index; the case graph's JavaScript calls the same ``/v1`` endpoints scripts use. Nothing is loaded from
anywhere but the app itself (a Content-Security-Policy of ``'self'`` says so to the browser).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).resolve().parent
log = logging.getLogger("fundtrail.ui")


def mount(app: FastAPI, *, warm: bool = True) -> None:
    """Add the UI's pages and static files to ``app``; with ``warm`` (and unless ``FUNDTRAIL_UI_WARM=0``)
    build the trace graphs in a background thread so the first graph expansion is fast."""
    from fundtrail.ui import pages

    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.include_router(pages.router)
    pages.install(app)
    if warm and os.environ.get("FUNDTRAIL_UI_WARM", "1") != "0":
        threading.Thread(target=_warm, args=(app,), name="ui-warm", daemon=True).start()


def _warm(app: FastAPI) -> None:
    from fundtrail.investigate.graph import warm
    from fundtrail.service.routes.graph import _lock

    try:
        with _lock:
            chains = warm(app.state.runtime.ws)
        log.info("trace graphs ready for %s", ", ".join(chains) or "no chain")
    except Exception as e:  # noqa: BLE001 - an empty or partial workspace: expansions build on demand
        log.warning("trace graphs not prebuilt: %s", e)

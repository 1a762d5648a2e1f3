"""The investigation web UI, served at ``/ui/`` by the service's application factory (``mount(app)``).

Server-rendered Jinja pages (``templates/``) and a little plain JavaScript (``static/``) with one graph
library vendored from npm by ``dev/vendor-js`` (``static/vendor/``: cytoscape.js with the dagre layered
layout, pinned, with their licences). The pages read through :mod:`fundtrail.investigate` and the screening
index; the case graph's JavaScript calls the same ``/v1`` endpoints scripts use. Nothing is loaded from
anywhere but the app itself (a Content-Security-Policy of ``'self'`` says so to the browser).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).resolve().parent


def mount(app: FastAPI) -> None:
    from fundtrail.ui import pages

    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.include_router(pages.router)
    pages.install(app)

"""Health, readiness, metrics and the API docs page."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from fundtrail.service.deps import runtime
from fundtrail.service.docs_page import render_docs

router = APIRouter(tags=["system"])


@router.get("/v1/health", summary="Liveness")
async def health() -> dict:
    return {"status": "ok"}


@router.get("/v1/ready", summary="Readiness: the exposure index is loaded", responses={503: {}})
def ready(rt=Depends(runtime)):
    info = rt.info()
    return JSONResponse(info, status_code=200 if info["ready"] else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
def metrics(request: Request, rt=Depends(runtime)) -> PlainTextResponse:
    ix = rt.index
    gauges = {"fundtrail_index_age_seconds": rt.index_age(),
              "fundtrail_index_version": ix.version if ix else None,
              "fundtrail_index_ready": 1 if ix else 0}
    return PlainTextResponse(request.app.state.metrics.render(gauges), media_type="text/plain; version=0.0.4")


@router.get("/docs", include_in_schema=False)
def docs(request: Request) -> HTMLResponse:
    return HTMLResponse(render_docs(request.app.openapi()))

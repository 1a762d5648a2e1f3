"""Evidence bundles of an incident: export (``POST /v1/incidents/{name}/evidence``) and download."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Path
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from fundtrail.service import evidence as E
from fundtrail.service.deps import Caller, require, runtime
from fundtrail.service.routes.graph import _lock
from fundtrail.service.users import log_action

router = APIRouter(tags=["evidence"])
IncidentName = Path(min_length=1, max_length=200)
ExportId = Path(min_length=20, max_length=100, pattern=E.EXPORT_ID.pattern)
Model = Literal["poison", "haircut", "fifo"]
ZIP = {200: {"description": "The zip file", "content": {"application/zip": {}}}, 404: {}}


class EvidenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[Model] | None = Field(default=None, min_length=1, max_length=3,
                                       description="Taint models to export (default all three)")
    primary: Model | None = Field(default=None, description="The report's primary model (default haircut "
                                                            "when exported, else the first)")
    max_hops: int = Field(default=20, ge=1, le=100, description="Stop following after this many hops")
    freeze_requests: bool = Field(default=False, description="Also write one freeze-request packet per "
                                                             "receiving entity (downloadable as a zip)")


@router.post("/v1/incidents/{name}/evidence", status_code=201, responses={404: {}, 422: {}},
             summary="Export the incident's evidence bundle (and freeze-request packets); answers its digest, "
                     "pins and download URL")
def export(body: EvidenceRequest | None = None, name: str = IncidentName, c: Caller = require("investigator"),
           rt=Depends(runtime)) -> dict:
    body = body or EvidenceRequest()
    with _lock:
        meta = E.export_incident(rt.ws, rt.config.home, name, user=c.name, models=body.models,
                                 primary=body.primary, max_hops=body.max_hops,
                                 with_freeze_requests=body.freeze_requests, sources=rt.config.sources)
    log_action(rt.store, c.name, "evidence.export", meta["id"], f"{name} sha256={meta['sha256']}")
    return meta


@router.get("/v1/evidence/{export_id}", response_class=FileResponse, responses=ZIP,
            summary="Download an evidence bundle (zip)")
def download(export_id: str = ExportId, c: Caller = require("investigator"), rt=Depends(runtime)) -> FileResponse:
    path, filename = E.export_file(rt.config.home, export_id, "bundle")
    return FileResponse(path, media_type="application/zip", filename=filename)


@router.get("/v1/evidence/{export_id}/freeze-requests", response_class=FileResponse, responses=ZIP,
            summary="Download the export's freeze-request packets (zip of the packets folder and index)")
def download_packets(export_id: str = ExportId, c: Caller = require("investigator"),
                     rt=Depends(runtime)) -> FileResponse:
    path, filename = E.export_file(rt.config.home, export_id, "freeze-requests")
    return FileResponse(path, media_type="application/zip", filename=filename)

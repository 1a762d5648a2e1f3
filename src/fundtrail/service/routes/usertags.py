"""Tags people add (UI or script), joining attribution at once with ``source`` = ``user:<name>``; TagPack export."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from fundtrail.investigate import usertags as U
from fundtrail.service.deps import Caller, require, runtime
from fundtrail.service.routes.models import Addr, Chain
from fundtrail.service.users import log_action

router = APIRouter(tags=["user tags"])


class TagBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chain: str = Chain
    address: str = Addr
    label: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=40)
    entity: str | None = Field(default=None, max_length=200)
    country: str | None = Field(default=None, max_length=60)
    confidence: float = Field(default=0.5, ge=0, le=1)
    note: str | None = Field(default=None, max_length=1000)
    cluster: bool = Field(default=False, description="May label the address's whole cluster")


@router.post("/v1/tags", summary="Add a tag (source user:<name>); it joins attribution at once", status_code=201)
def add_tag(body: TagBody, c: Caller = require("investigator"), rt=Depends(runtime)) -> dict:
    row = U.add_tag(rt.ws, c.name, **body.model_dump())
    log_action(rt.store, c.name, "tag", f"{body.chain}:{body.address}",
               f"{body.label} ({row['category']}, {row['country'] or '-'})")
    return row


@router.get("/v1/tags/user", summary="Tags added by users, as attribution holds them")
def user_tags(user: str | None = Query(None, max_length=100), _c: Caller = require("viewer"),
              rt=Depends(runtime)) -> dict:
    return {"tags": U.user_tags(rt.ws, user)}


@router.get("/v1/tags/tagpack", summary="Users' tags as a GraphSense TagPack (YAML)",
            response_class=PlainTextResponse)
def tagpack(user: str | None = Query(None, max_length=100), _c: Caller = require("viewer"),
            rt=Depends(runtime)) -> PlainTextResponse:
    return PlainTextResponse(U.tagpack(rt.ws, user), media_type="application/yaml",
                             headers={"Content-Disposition": 'attachment; filename="fundtrail-user-tags.yaml"'})

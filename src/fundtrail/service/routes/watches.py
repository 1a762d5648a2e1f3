"""Watches: fire when funds at a watched address, cluster or incident move (investigator and above)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from fundtrail.monitor.watches import WatchBook
from fundtrail.service.deps import Caller, require, runtime
from fundtrail.service.routes.models import Chain

router = APIRouter(tags=["watches"])


class WatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chain: str = Chain
    address: str | None = Field(default=None, min_length=1, max_length=128)
    cluster_id: int | None = Field(default=None, ge=0, le=2**62)
    incident: str | None = Field(default=None, min_length=1, max_length=100)
    note: str | None = Field(default=None, max_length=2000)


@router.post("/v1/watches", summary="Watch an address, a cluster or an incident's seeds", status_code=201)
def add_watch(body: WatchBody, caller: Caller = require("investigator"), rt=Depends(runtime)) -> dict:
    rt.ws.refresh()
    w = WatchBook(rt.store).add(rt.ws, body.chain, address=body.address, cluster_id=body.cluster_id,
                                incident=body.incident, note=body.note, by=caller.name)
    return w.to_json()


@router.get("/v1/watches", summary="Watches (removed ones with all=true)")
def list_watches(all_: bool = Query(False, alias="all"), chain: str | None = Query(None, max_length=40),
                 _c: Caller = require("viewer"), rt=Depends(runtime)) -> dict:
    return {"watches": [w.to_json() for w in WatchBook(rt.store).list(include_removed=all_, chain=chain)]}


@router.get("/v1/watches/{watch_id}", summary="One watch", responses={404: {}})
def get_watch(watch_id: str = Path(max_length=100), _c: Caller = require("viewer"), rt=Depends(runtime)) -> dict:
    return WatchBook(rt.store).get(watch_id).to_json()


@router.delete("/v1/watches/{watch_id}", summary="Stop watching", responses={404: {}})
def remove_watch(watch_id: str = Path(max_length=100), _c: Caller = require("investigator"),
                 rt=Depends(runtime)) -> dict:
    return WatchBook(rt.store).remove(watch_id).to_json()

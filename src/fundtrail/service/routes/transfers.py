"""Registered transfers."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from fundtrail.errors import NotFoundError
from fundtrail.monitor.rescreen import transfer_history
from fundtrail.service.deps import Caller, require, runtime
from fundtrail.service.routes.models import Transfer
from fundtrail.service.routes.screen import register_transfer

router = APIRouter(tags=["transfers"])


@router.post("/v1/transfers", summary="Register a transfer (screened like /v1/screen/transfer)")
async def post_transfer(body: Transfer, request: Request, caller: Caller = require("screener"),
                        rt=Depends(runtime)) -> Response:
    return await register_transfer(body, request, caller, rt)


@router.get("/v1/transfers", summary="Registered transfers, oldest first (cursor: after=transfer_id)")
def list_transfers(limit: int = Query(100, ge=1, le=1000), after: str | None = Query(None, max_length=100),
                   _c: Caller = require("viewer"), rt=Depends(runtime)) -> dict:
    rows = rt.store.transfers(limit=limit, after=after)
    return {"transfers": rows, "next": rows[-1]["transfer_id"] if len(rows) == limit else None}


@router.get("/v1/transfers/{transfer_id}", summary="A registered transfer: its current and past verdicts",
            responses={404: {}})
def get_transfer(transfer_id: str = Path(max_length=100), _c: Caller = require("viewer"),
                 rt=Depends(runtime)) -> dict:
    t = rt.store.transfer(transfer_id)
    if t is None:
        raise NotFoundError(f"no transfer {transfer_id!r}")
    history = transfer_history(rt.store, transfer_id)
    first = history[0]["previous_verdict_id"] if history else t["verdict_id"]
    past = [first] + [h["verdict_id"] for h in history[:-1]]
    return {**t, "verdict": rt.store.verdict(t["verdict_id"]), "changes": history,
            "past_verdicts": [v for v in (rt.store.verdict(x) for x in past if x != t["verdict_id"]) if v]}

"""Screening: one address, a batch, a transfer (registered)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from fundtrail.service.deps import Caller, require, runtime, screener_of
from fundtrail.service.routes.models import ScreenAddress, ScreenBatch, Transfer
from fundtrail.service.screening import new_id

router = APIRouter(tags=["screening"])


def _done(request: Request, decisions: list[str]) -> None:
    request.state.decision = ",".join(sorted(set(decisions)))
    for d in decisions:
        request.app.state.metrics.decision(d)


@router.post("/v1/screen/address", summary="Screen one address")
def screen_address(body: ScreenAddress, request: Request, caller: Caller = require("screener"),
                   rt=Depends(runtime)) -> dict:
    v = screener_of(rt).screen_address(body.chain, body.address, time=body.time).to_json()
    rt.store.save_verdicts([v], caller.name)
    _done(request, [v["decision"]])
    return v


@router.post("/v1/screen/batch", summary="Screen up to 1,000 addresses")
def screen_batch(body: ScreenBatch, request: Request, caller: Caller = require("screener"),
                 rt=Depends(runtime)) -> dict:
    s = screener_of(rt)
    out = []
    for i, it in enumerate(body.items):
        try:
            out.append(s.screen_address(it.chain, it.address, time=it.time).to_json())
        except Exception as e:
            from fundtrail.errors import FieldError

            if isinstance(e, FieldError):
                raise FieldError(f"items[{i}].{e.field}", str(e).split(": ", 1)[-1]) from None
            raise
    rt.store.save_verdicts(out, caller.name)
    _done(request, [v["decision"] for v in out])
    return {"verdicts": out}


def register_transfer(body: Transfer, request: Request, caller: Caller, rt) -> dict:
    req = body.model_dump()
    v = screener_of(rt).screen_transfer(req).to_json()
    t = dict(req)
    t["transfer_id"] = new_id("t")
    t["chain"] = body.chain
    t["address"] = v["transfer"]["address"]
    t["counterparty"] = v["transfer"]["counterparty"]
    rt.store.save_transfer(t, v, caller.name)
    _done(request, [v["decision"]])
    return {"transfer_id": t["transfer_id"], **v}


@router.post("/v1/screen/transfer", summary="Screen and register a transfer (deposit or withdrawal)")
def screen_transfer(body: Transfer, request: Request, caller: Caller = require("screener"),
                    rt=Depends(runtime)) -> dict:
    return register_transfer(body, request, caller, rt)

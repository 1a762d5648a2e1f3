"""Screening: one address, a batch, a transfer (registered)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request, Response

from fundtrail.service.deps import Caller, require, runtime, screener_of
from fundtrail.service.routes.models import ScreenAddress, ScreenBatch, Transfer
from fundtrail.service.screening import new_id

router = APIRouter(tags=["screening"])


def _audit(request: Request, caller: Caller, decisions: list[str]) -> tuple:
    """The request's audit record, written in the verdicts' transaction (the middleware then skips it)."""
    decision = ",".join(sorted(set(decisions)))
    for d in decisions:
        request.app.state.metrics.decision(d)
    request.state.decision = decision
    request.state.audited = True
    route = request.scope.get("route")
    return (caller.name, caller.role, request.method, getattr(route, "path", request.url.path),
            request.scope.get("state", {}).get("params_hash", ""), 200, decision)


def _dumps(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _json(obj: dict) -> Response:
    return Response(_dumps(obj), media_type="application/json")


@router.post("/v1/screen/address", summary="Screen one address")
async def screen_address(body: ScreenAddress, request: Request, caller: Caller = require("screener"),
                         rt=Depends(runtime)) -> Response:
    v = screener_of(rt).screen_address(body.chain, body.address, time=body.time).to_json()
    text = _dumps(v)
    await request.app.state.writer.write(rt.store.verdict_statements([v], caller.name,
                                                                     _audit(request, caller, [v["decision"]]),
                                                                     [text]))
    return Response(text, media_type="application/json")


@router.post("/v1/screen/batch", summary="Screen up to 1,000 addresses")
async def screen_batch(body: ScreenBatch, request: Request, caller: Caller = require("screener"),
                       rt=Depends(runtime)) -> Response:
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
    texts = [_dumps(v) for v in out]
    await request.app.state.writer.write(rt.store.verdict_statements(
        out, caller.name, _audit(request, caller, [v["decision"] for v in out]), texts))
    return Response('{"verdicts":[' + ",".join(texts) + "]}", media_type="application/json")


async def register_transfer(body: Transfer, request: Request, caller: Caller, rt) -> Response:
    req = body.model_dump()
    v = screener_of(rt).screen_transfer(req).to_json()
    t = dict(req)
    t["transfer_id"] = new_id("t")
    t["chain"] = body.chain
    t["address"] = v["transfer"]["address"]
    t["counterparty"] = v["transfer"]["counterparty"]
    await request.app.state.writer.write(rt.store.transfer_statements(t, v, caller.name,
                                                                      _audit(request, caller, [v["decision"]])))
    return _json({"transfer_id": t["transfer_id"], **v})


@router.post("/v1/screen/transfer", summary="Screen and register a transfer (deposit or withdrawal)")
async def screen_transfer(body: Transfer, request: Request, caller: Caller = require("screener"),
                          rt=Depends(runtime)) -> Response:
    return await register_transfer(body, request, caller, rt)

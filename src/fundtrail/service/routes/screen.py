"""Screening: one address, a batch, a transfer (registered)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from fundtrail.service.deps import Caller, require, runtime, screener_of
from fundtrail.service.routes.models import ScreenAddress, ScreenBatch, Transfer
from fundtrail.service.screening import new_id

router = APIRouter(tags=["screening"])


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def verdict_writes(state: Any, caller: Caller, verdicts: list[dict], method: str, route: str,
                   params_hash: str) -> tuple[list[str], list[tuple], str]:
    """The verdicts serialised once (stored and sent), their rows and the request's audit record (one
    transaction), and the request's decision. ``state``: the application's state."""
    texts = [dumps(v) for v in verdicts]
    decision = ",".join(sorted({v["decision"] for v in verdicts}))
    audit = (caller.name, caller.role, method, route, params_hash, 200, decision)
    return texts, state.runtime.store.verdict_statements(verdicts, caller.name, audit, texts), decision


def written(state: Any, scope_state: dict, verdicts: list[dict], decision: str) -> None:
    """After the write: the decisions counted; the audit record is in (the middleware skips it)."""
    for v in verdicts:
        state.metrics.decision(v["decision"])
    scope_state["decision"] = decision
    scope_state["audited"] = True


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


def _json(obj: dict) -> Response:
    return Response(dumps(obj), media_type="application/json")


async def _answer(request: Request, caller: Caller, verdicts: list[dict], single: bool) -> Response:
    st = request.app.state
    scope_state = request.scope.setdefault("state", {})
    texts, statements, decision = verdict_writes(st, caller, verdicts, request.method,
                                                 request.scope["route"].path, scope_state.get("params_hash", ""))
    await st.writer.write(statements)
    written(st, scope_state, verdicts, decision)
    return Response(texts[0] if single else '{"verdicts":[' + ",".join(texts) + "]}", media_type="application/json")


@router.post("/v1/screen/address", summary="Screen one address")
async def screen_address(body: ScreenAddress, request: Request, caller: Caller = require("screener"),
                         rt=Depends(runtime)) -> Response:
    v = screener_of(rt).screen_address(body.chain, body.address, time=body.time).to_json()
    return await _answer(request, caller, [v], True)


@router.post("/v1/screen/batch", summary="Screen up to 1,000 addresses")
async def screen_batch(body: ScreenBatch, request: Request, caller: Caller = require("screener"),
                       rt=Depends(runtime)) -> Response:
    out = [v.to_json() for v in screener_of(rt).screen_batch([(it.chain, it.address, it.time) for it in body.items])]
    return await _answer(request, caller, out, False)


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

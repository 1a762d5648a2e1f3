"""Webhooks (admin): every alert POSTed, signed, at least once; the delivery log; manual redelivery."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from fundtrail.monitor.outbox import Webhooks, parse_hosts
from fundtrail.service.deps import Caller, require, runtime

router = APIRouter(tags=["webhooks"])


class WebhookBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2000, description="http(s) URL on a configured webhook host")
    secret: str = Field(min_length=16, max_length=200, description="Key of the HMAC-SHA256 signature")
    events: list[str] | None = Field(default=None, max_length=10, description="Alert kinds, or * (default)")


def _hooks(rt) -> Webhooks:
    return Webhooks(rt.store, parse_hosts(rt.config.webhook_hosts))


@router.post("/v1/webhooks", summary="Register a webhook receiver", status_code=201)
def add_webhook(body: WebhookBody, caller: Caller = require("admin"), rt=Depends(runtime)) -> dict:
    return _hooks(rt).add(body.url, body.secret, body.events, caller.name)


@router.get("/v1/webhooks", summary="Registered webhooks (secrets are never shown)")
def list_webhooks(_c: Caller = require("admin"), rt=Depends(runtime)) -> dict:
    return {"webhooks": _hooks(rt).list()}


@router.delete("/v1/webhooks/{webhook_id}", summary="Disable a webhook (its pending deliveries are cancelled)",
               responses={404: {}})
def disable_webhook(webhook_id: str = Path(max_length=100), _c: Caller = require("admin"),
                    rt=Depends(runtime)) -> dict:
    return _hooks(rt).disable(webhook_id)


@router.get("/v1/webhooks/{webhook_id}/deliveries", summary="Deliveries with the log of every attempt",
            responses={404: {}})
def deliveries(webhook_id: str = Path(max_length=100), after: str | None = Query(None, max_length=200),
               limit: int = Query(100, ge=1, le=1000), _c: Caller = require("admin"), rt=Depends(runtime)) -> dict:
    rows = _hooks(rt).deliveries(webhook_id, after, limit)
    return {"deliveries": rows, "next": rows[-1]["delivery_id"] if len(rows) == limit else None}


@router.post("/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
             summary="Deliver again (same delivery id; retries start over)", responses={404: {}})
def redeliver(request: Request, webhook_id: str = Path(max_length=100), delivery_id: str = Path(max_length=200),
              _c: Caller = require("admin"), rt=Depends(runtime)) -> dict:
    return _hooks(rt).redeliver(webhook_id, delivery_id)

"""Alerts, paged with a stable cursor; acknowledged or resolved with a comment (investigator and above)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from fundtrail.monitor.alerts import KINDS, STATUSES, AlertBook
from fundtrail.service.deps import Caller, require, runtime

router = APIRouter(tags=["alerts"])


class AlertAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["acknowledge", "resolve", "reopen"]
    comment: str | None = Field(default=None, max_length=4000)


@router.get("/v1/alerts", summary="Alerts after the cursor `since`, oldest first")
def list_alerts(since: str | None = Query(None, max_length=30, pattern=r"^[0-9]*$"),
                limit: int = Query(100, ge=1, le=1000),
                kind: Literal[KINDS] | None = Query(None),  # type: ignore[valid-type]
                status: Literal[STATUSES] | None = Query(None),  # type: ignore[valid-type]
                _c: Caller = require("viewer"), rt=Depends(runtime)) -> dict:
    items, nxt = AlertBook(rt.store).page(since, limit, kind, status)
    return {"alerts": items, "next": nxt}


@router.get("/v1/alerts/{alert_id}", summary="One alert with its actions", responses={404: {}})
def get_alert(alert_id: str = Path(max_length=100), _c: Caller = require("viewer"), rt=Depends(runtime)) -> dict:
    return AlertBook(rt.store).get(alert_id)


@router.post("/v1/alerts/{alert_id}/actions", summary="Acknowledge, resolve or reopen an alert, with a comment",
             responses={404: {}})
def act_on_alert(body: AlertAction, request: Request, alert_id: str = Path(max_length=100),
                 caller: Caller = require("investigator"), rt=Depends(runtime)) -> dict:
    request.state.decision = body.action
    return AlertBook(rt.store).act(alert_id, body.action, body.comment, caller.name)

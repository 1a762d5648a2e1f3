"""Cases: create (from an incident or seeds), read, save graph / notes / layout, share, export."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from fundtrail.errors import FieldError
from fundtrail.investigate import graph as G
from fundtrail.service import cases as C
from fundtrail.service.deps import Caller, require, runtime
from fundtrail.service.routes.graph import _lock, labeler
from fundtrail.service.users import log_action

router = APIRouter(tags=["cases"])
CaseId = Path(min_length=6, max_length=40, pattern=r"^case_[0-9a-f]+$")


class NewCase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, max_length=200)
    incident: str | None = Field(default=None, max_length=200)
    seeds: list[str] = Field(default_factory=list, max_length=1000, description="CHAIN:ADDRESS each")
    model: Literal["poison", "haircut", "fifo"] = "haircut"


class CaseUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, max_length=200)
    notes: str | None = Field(default=None, max_length=C.MAX_NOTES)
    graph: dict[str, Any] | None = None
    model: Literal["poison", "haircut", "fifo"] | None = None


class GraphView(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: list[str] | None = Field(default=None, max_length=C.MAX_ITEMS)
    pinned: list[str] | None = Field(default=None, max_length=C.MAX_ITEMS)
    grouped: bool | None = None
    follow: dict[str, Any] | None = None
    minAmount: float | None = Field(default=None, ge=0)  # noqa: N815 - the graph's own key
    since: str | None = Field(default=None, max_length=10, pattern=r"^(\d{4}-\d{2}-\d{2})?$")


class GraphPatch(BaseModel):
    """Changes to a case's graph (each request within the service's body limit; a big graph in several)."""

    model_config = ConfigDict(extra="forbid")
    reset: bool = Field(default=False, description="start from an empty graph (the first part of a whole graph)")
    nodes: list[dict[str, Any]] = Field(default_factory=list, max_length=C.MAX_ITEMS,
                                        description="nodes added or replaced, by id")
    edges: list[dict[str, Any]] = Field(default_factory=list, max_length=C.MAX_ITEMS,
                                        description="edges added or replaced, by id (else source, target, chain, asset)")
    remove_nodes: list[str] = Field(default_factory=list, max_length=C.MAX_ITEMS,
                                    description="node ids removed (with their edges and positions)")
    remove_edges: list[str] = Field(default_factory=list, max_length=C.MAX_ITEMS)
    positions: dict[str, dict[str, Any] | None] = Field(default_factory=dict, max_length=C.MAX_ITEMS,
                                                          description="node id -> {x, y} (null removes)")
    expanded_by: dict[str, list[str] | None] = Field(default_factory=dict, max_length=C.MAX_ITEMS,
                                                     description="node id -> the node ids its expansion added")
    view: GraphView | None = Field(default=None, description="view settings, each replaced whole when given")


class Share(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, max_length=100)
    remove: bool = False


@router.post("/v1/cases", summary="Create a case from an incident or seeds", status_code=201)
def create(body: NewCase, c: Caller = require("investigator"), rt=Depends(runtime)) -> dict:
    case = C.create_case(rt.store, rt.ws, c.name, title=body.title, incident=body.incident, seeds=body.seeds,
                         model=body.model)
    log_action(rt.store, c.name, "case.create", case["case_id"], case["title"])
    return case


@router.get("/v1/cases", summary="Cases I own or that are shared with me (admins: all)")
def list_(c: Caller = require("viewer"), rt=Depends(runtime)) -> dict:
    return {"cases": C.list_cases(rt.store, c.name, c.role)}


@router.get("/v1/cases/{case_id}", summary="A case with its graph, notes and sharing", responses={404: {}})
def get(case_id: str = CaseId, c: Caller = require("viewer"), rt=Depends(runtime)) -> dict:
    case = C.get_case(rt.store, case_id, c.name, c.role)
    log_action(rt.store, c.name, "case.view", case_id)
    return case


@router.patch("/v1/cases/{case_id}", summary="Save the graph (nodes, edges, layout, hidden, pinned), notes, title",
              responses={404: {}})
def update(body: CaseUpdate, case_id: str = CaseId, c: Caller = require("investigator"), rt=Depends(runtime)) -> dict:
    case = C.update_case(rt.store, case_id, c.name, c.role, graph=body.graph, notes=body.notes, title=body.title,
                         model=body.model)
    what = ",".join(k for k in ("graph", "notes", "title", "model") if getattr(body, k) is not None)
    log_action(rt.store, c.name, "case.update", case_id, what or None)
    return case


@router.patch("/v1/cases/{case_id}/graph", summary="Save changes to the case's graph (nodes, edges, positions, view)",
              responses={404: {}, 409: {}, 413: {}, 422: {}})
def patch_graph(body: GraphPatch, case_id: str = CaseId, c: Caller = require("investigator"),
                rt=Depends(runtime)) -> dict:
    """Apply changes to the case's stored graph: `nodes` and `edges` added or replaced (by `id`; an edge
    without one by source, target, chain and asset), `remove_nodes` (with their edges, positions and
    expansions) and `remove_edges`, `positions` and `expanded_by` merged per node (null removes one),
    `view` settings replaced, `reset` to start from an empty graph. Each request is bounded by the service's
    body limit (`FUNDTRAIL_MAX_BODY`, 413 above); a bigger change is sent in several requests, nodes before
    the edges that need them. The stored graph is bounded too (32 MiB of JSON, about 45,000 nodes: 422 on
    `graph` above). A bad item is a 422 naming its field (`nodes[3].id`, `positions.ID.x`); nothing of that
    request is stored. Concurrent changes of one case are applied one after the other. Answers the counts
    stored: `{case_id, updated, nodes, edges, positions, bytes}`."""
    delta = body.model_dump(exclude_defaults=True)
    if body.view is not None:
        delta["view"] = body.view.model_dump(exclude_unset=True)
    out = C.patch_graph(rt.store, case_id, c.name, c.role, delta)
    log_action(rt.store, c.name, "case.update", case_id, "graph (changes)")
    return out


@router.post("/v1/cases/{case_id}/share", summary="Share the case with a user (or stop sharing)",
             responses={404: {}})
def share(body: Share, case_id: str = CaseId, c: Caller = require("investigator"), rt=Depends(runtime)) -> dict:
    users = C.share_case(rt.store, case_id, c.name, c.role, body.user, remove=body.remove)
    log_action(rt.store, c.name, "case.unshare" if body.remove else "case.share", case_id, body.user)
    return {"shared_with": users}


@router.post("/v1/cases/{case_id}/follow", summary="Follow the case's seeds to their endpoints (its model)",
             responses={404: {}})
def follow(case_id: str = CaseId, c: Caller = require("viewer"), rt=Depends(runtime)) -> dict:
    case = C.get_case(rt.store, case_id, c.name, c.role)
    with _lock:
        return G.follow(rt.ws, C.seeds_of(case), model=case["model"], label=labeler(rt))


@router.get("/v1/cases/{case_id}/export.json", summary="The case's graph as JSON", responses={404: {}})
def export_json(case_id: str = CaseId, c: Caller = require("viewer"), rt=Depends(runtime)) -> PlainTextResponse:
    case = C.get_case(rt.store, case_id, c.name, c.role)
    log_action(rt.store, c.name, "case.export", case_id, "json")
    body = {k: case[k] for k in ("case_id", "title", "incident", "seeds", "model", "graph", "notes", "owner",
                                 "created", "updated")}
    return PlainTextResponse(json.dumps(body, indent=2), media_type="application/json",
                             headers={"Content-Disposition": f'attachment; filename="{case_id}.json"'})


@router.get("/v1/cases/{case_id}/endpoints.csv", summary="The endpoints (and unspent holdings) of the case as CSV",
            responses={404: {}})
def export_csv(case_id: str = CaseId, c: Caller = require("viewer"), rt=Depends(runtime)) -> PlainTextResponse:
    case = C.get_case(rt.store, case_id, c.name, c.role)
    with _lock:
        g = G.follow(rt.ws, C.seeds_of(case), model=case["model"])
    log_action(rt.store, c.name, "case.export", case_id, "csv")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["kind", "entity", "category", "country", "chain", "asset", "symbol", "amount", "hops", "address"])
    for e in g["endpoints"]:
        w.writerow(["endpoint", e["entity"], e["category"], e["country"] or "", e["chain"], e["asset"],
                    e.get("symbol") or "", e["amount"], e["hops"], ";".join(e.get("addresses") or [])])
    for h in g["unspent"]:
        w.writerow(["unspent", h.get("entity") or "", "", "", h["chain"], h["asset"], h.get("symbol") or "",
                    h["amount"], "", h["address"]])
    return PlainTextResponse(buf.getvalue(), media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="{case_id}-endpoints.csv"'})


@router.get("/v1/cases/{case_id}/report.html", summary="The HTML report of the case's incident",
            response_class=HTMLResponse, responses={404: {}, 422: {}})
def export_report(case_id: str = CaseId, c: Caller = require("viewer"), rt=Depends(runtime)) -> HTMLResponse:
    from fundtrail.report.render import render
    from fundtrail.report.service import build_report

    case = C.get_case(rt.store, case_id, c.name, c.role)
    if not case["incident"]:
        raise FieldError("incident", "the HTML report is built for an incident: create the case from one "
                                     "(fundtrail incident create) to export it")
    with _lock:
        html = render(build_report(rt.ws, case["incident"]), "html")
    log_action(rt.store, c.name, "case.export", case_id, "html")
    return HTMLResponse(html, headers={"Content-Disposition": f'attachment; filename="{case_id}-report.html"'})


@router.get("/v1/ui-actions", summary="What users did in the UI (admins): views, tags, case changes, newest first")
def ui_actions(before: int | None = Query(None, ge=1, le=2**62), limit: int = Query(100, ge=1, le=1000),
               user: str | None = Query(None, max_length=100),
               c: Caller = require("admin"), rt=Depends(runtime)) -> dict:
    from fundtrail.service.users import actions

    rows = actions(rt.store, before=before, limit=limit, user=user)
    return {"actions": rows, "next": rows[-1]["id"] if rows and len(rows) == limit else None}

"""Graph expansion for cases (the UI's flow graph uses these; so can scripts): one hop, or to the endpoints."""

from __future__ import annotations

import threading
from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from fundtrail.investigate import graph as G
from fundtrail.investigate.clusters import cluster_labeler
from fundtrail.model.trace import Seed
from fundtrail.service.deps import Caller, require, runtime
from fundtrail.service.routes.models import Addr, Chain

router = APIRouter(tags=["graph"])
_lock = threading.Lock()  # one trace at a time per worker: the cached graphs are built once

Model = Literal["poison", "haircut", "fifo"]


class ExpandBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chain: str = Chain
    address: str = Addr
    direction: Literal["forward", "backward"] = "forward"
    model: Model = "haircut"


class SeedBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chain: str = Chain
    address: str = Addr


class FollowBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seeds: list[SeedBody] = Field(min_length=1, max_length=1000)
    model: Model = "haircut"
    direction: Literal["forward", "backward"] = "forward"


def labeler(rt):
    """(chain, address) -> the index's label of the address (directly or through its cluster) and its cluster
    id, or None when the index knows neither. Without an index loaded, the cluster id alone, from the
    workspace's cluster tables (for "Group by cluster")."""
    s = rt.screener
    if s is None:
        return cluster_labeler(rt.ws)

    def label(chain: str, address: str):
        try:
            p = s.profile(chain, address)
        except Exception:  # noqa: BLE001 - an address the index does not hold has no label
            return None
        lab = p.label
        if lab is None:
            return {"cluster": p.cluster_id} if p.cluster_id is not None else None
        return {"entity": lab.entity, "category": lab.category, "country": lab.country, "sanctioned": lab.sanctioned,
                "cluster": p.cluster_id}

    return label


@router.post("/v1/graph/expand", summary="One hop from a node: where its funds went (or came from), with amounts",
             description="Runs the trace from the node with max_hops=1 under the taint model: the addresses the "
                         "funds sit at after one hop, unmoved holdings, services reached (one node per entity), "
                         "mixers. Amounts are decimal strings (and base units).")
def expand(body: ExpandBody, c: Caller = require("viewer"), rt=Depends(runtime)) -> dict:
    with _lock:
        return G.expand(rt.ws, body.chain, body.address, direction=body.direction, model=body.model,
                        label=labeler(rt))


@router.post("/v1/graph/follow", summary="Follow seeds to their endpoints (the full trace), as graph nodes and edges",
             description="One node per endpoint entity with the amount of the seeds' funds that reached it under "
                         "the taint model, the unspent holdings (freezable) and the mixers; plus the trace's "
                         "endpoints, unspent and conservation as in the trace JSON.")
def follow(body: FollowBody, c: Caller = require("viewer"), rt=Depends(runtime)) -> dict:
    seeds = [Seed(s.chain, address=s.address) for s in body.seeds]
    with _lock:
        return G.follow(rt.ws, seeds, model=body.model, direction=body.direction, label=labeler(rt))

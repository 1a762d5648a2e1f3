"""Addresses, clusters and entities as the index knows them (no policy)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from fundtrail.errors import FieldError, NotFoundError
from fundtrail.service.deps import Caller, require, runtime, screener_of
from fundtrail.service.screening import items_json

router = APIRouter(tags=["lookup"])


def _label(lab) -> dict | None:
    if lab is None:
        return None
    return {"name": lab.entity, "category": lab.category, "country": lab.country, "sanctioned": lab.sanctioned,
            "source": lab.source, "confidence": lab.confidence, "via": lab.via}


@router.get("/v1/addresses/{chain}/{address}", summary="An address: entity, cluster, exposure")
def get_address(chain: str = Path(max_length=40), address: str = Path(max_length=128),
                _c: Caller = require("viewer"), rt=Depends(runtime)) -> dict:
    s = screener_of(rt)
    p = s.profile(chain, address)
    return {"chain": chain, "address": p.address, "known": p.address_id is not None, "cluster_id": p.cluster_id,
            "entity": _label(p.label), "exposure": items_json(p.items),
            "sanctions": [{"entity": w.entity, "source": w.source,
                           "valid_from": w.valid_from.isoformat() if w.valid_from else None,
                           "valid_to": w.valid_to.isoformat() if w.valid_to else None} for w in p.windows],
            "as_of": s.index.as_of}


@router.get("/v1/clusters/{chain}/{cluster_id}", summary="A cluster: size and exposure", responses={404: {}})
def get_cluster(chain: str = Path(max_length=40), cluster_id: int = Path(ge=0, le=2**62),
                _c: Caller = require("viewer"), rt=Depends(runtime)) -> dict:
    s = screener_of(rt)
    if not s.index.has_chain(chain):
        raise FieldError("chain", f"unknown chain {chain!r}")
    size = s.index.cluster_size(chain, cluster_id)
    if size == 0:
        raise NotFoundError(f"no cluster {cluster_id} on {chain}")
    return {"chain": chain, "cluster_id": cluster_id, "size": size,
            "exposure": items_json(s.index.cluster_items(chain, cluster_id)), "as_of": s.index.as_of}


@router.get("/v1/entities/{name}", summary="An entity: chains, category, country, tagged addresses",
            responses={404: {}})
def get_entity(name: str = Path(max_length=200), _c: Caller = require("viewer"), rt=Depends(runtime)) -> dict:
    s = screener_of(rt)
    rows = s.index.entity_labels(name)
    if not rows:
        raise NotFoundError(f"no entity named {name!r}")
    lab = rows[0][1]
    return {"name": lab.entity, "category": lab.category, "country": lab.country, "sanctioned": lab.sanctioned,
            "chains": [{"chain": c, "addresses": n} for c, _l, n in rows], "as_of": s.index.as_of}

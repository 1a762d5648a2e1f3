"""Stored verdicts, and their replay as of their own data."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query

from fundtrail.errors import NotFoundError
from fundtrail.exposure.index import load_index
from fundtrail.service.deps import Caller, require, runtime
from fundtrail.service.policies import policy_version
from fundtrail.service.screening import load_prices, replay

router = APIRouter(tags=["verdicts"])


@router.get("/v1/verdicts/{verdict_id}", summary="A stored verdict; replay=true recomputes it as of its as_of",
            responses={404: {}})
def get_verdict(verdict_id: str = Path(max_length=100), replay_: bool = Query(False, alias="replay"),
                _c: Caller = require("viewer"), rt=Depends(runtime)) -> dict:
    v = rt.store.verdict(verdict_id)
    if v is None:
        raise NotFoundError(f"no verdict {verdict_id!r}")
    if not replay_:
        return v
    ix = load_index(rt.ws, v["as_of"]["index_version"])
    pol = policy_version(rt.store, v["policy"]["version"])
    r = replay(v, ix, pol, load_prices(rt.ws))
    return {"verdict_id": v["verdict_id"], "matches": r["matches"], "differences": r["differences"],
            "verdict": v, "replayed": r["replayed"]}

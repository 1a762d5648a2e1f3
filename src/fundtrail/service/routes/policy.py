"""The screening policy: read it, replace it (every change is a new version)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from fundtrail.service.deps import Caller, require, runtime
from fundtrail.service.policies import policy_version, put_policy
from fundtrail.service.routes.models import PolicyBody

router = APIRouter(tags=["policy"])


@router.get("/v1/policy", summary="The policy in force (or ?version=N)")
def get_policy(version: int | None = Query(None, ge=0, le=2**31 - 1), _c: Caller = require("admin"),
               rt=Depends(runtime)) -> dict:
    p = policy_version(rt.store, version) if version is not None else rt.policy
    return {"id": p.id, "version": p.version, "digest": p.digest, "policy": p.text,
            "versions": rt.store.policy_versions()}


@router.put("/v1/policy", summary="Replace the policy (a new version)")
def set_policy(body: PolicyBody, caller: Caller = require("admin"), rt=Depends(runtime)) -> dict:
    p = put_policy(rt.store, body.policy, caller.name)
    rt.refresh_policy()
    return {"id": p.id, "version": p.version, "digest": p.digest, "rules": len(p.rules)}

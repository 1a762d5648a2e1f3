"""The audit log (append-only): every request with its key, role, endpoint, parameter hash and decision."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from fundtrail.service.deps import Caller, require, runtime

router = APIRouter(tags=["audit"])


@router.get("/v1/audit", summary="Audit records after id `after`, oldest first")
def get_audit(after: int = Query(0, ge=0, le=2**62), limit: int = Query(100, ge=1, le=1000),
              _c: Caller = require("admin"), rt=Depends(runtime)) -> dict:
    rows = rt.store.audit_rows(after=after, limit=limit)
    return {"audit": rows, "next": rows[-1]["id"] if len(rows) == limit else None}

"""Dependencies the routes share: the runtime, the caller's key or UI session and role (401 / 403 / 429)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request

from fundtrail.errors import AuthError
from fundtrail.service.auth import DEFAULT_RATE, ROLES, allows, hash_key
from fundtrail.service.runtime import Runtime
from fundtrail.service.users import COOKIE, csrf_ok, session


class RateLimited(Exception):
    def __init__(self, wait: float) -> None:
        self.wait = wait


class NotReady(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Caller:
    name: str
    role: str


async def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


_KEY_TTL = 2.0  # seconds a key lookup is cached (a revocation takes effect within that)


def key_row(state: Any, secret: str) -> dict | None:
    """The stored key of ``secret`` (``state``: the application's state), looked up at most every
    ``_KEY_TTL`` seconds per key; the row carries its hash as ``hash`` (the rate-limit bucket's name)."""
    cache: dict = state.key_cache
    h = hash_key(secret)
    hit = cache.get(h)
    now = time.monotonic()
    if hit is not None and now - hit[0] < _KEY_TTL:
        return hit[1]
    row = state.runtime.store.key_by_hash(h)
    if row is not None:
        row["hash"] = h
    if len(cache) > 10_000:
        cache.clear()
    cache[h] = (now, row)
    return row


def require(role: str):
    """A dependency: a valid, unrevoked key whose role is at least ``role``; within its rate limit."""
    assert role in ROLES

    async def dep(request: Request) -> Caller:
        auth = request.headers.get("authorization", "")
        scheme, _, secret = auth.partition(" ")
        if not auth and request.cookies.get(COOKIE):
            return _by_session(request, role)
        if scheme.lower() != "bearer" or not secret.strip():
            raise AuthError("missing API key: send Authorization: Bearer KEY", 401)
        row = key_row(request.app.state, secret.strip())
        if row is None or row["revoked"]:
            raise AuthError("unknown or revoked API key", 401)
        request.state.caller = Caller(row["name"], row["role"])
        wait = request.app.state.limiter.take(row["hash"], row["rate_limit"])
        if wait > 0:
            raise RateLimited(wait)
        if not allows(row["role"], role):
            raise AuthError(f"the role {row['role']!r} may not do this (needs {role} or above)", 403)
        return request.state.caller

    dep.__name__ = f"require_{role}"
    return Depends(dep)


def _by_session(request: Request, role: str) -> Caller:
    """A signed-in user of the web UI (users.py); mutating requests must carry the session's CSRF token."""
    s = session(request.app.state.runtime.store, request.cookies.get(COOKIE))
    if s is None:
        raise AuthError("not signed in or the session has expired", 401)
    request.state.caller = Caller(s.user, s.role)
    request.state.session = s
    if request.method not in ("GET", "HEAD", "OPTIONS") and not csrf_ok(s, request.headers.get("x-csrf-token")):
        raise AuthError("missing or wrong CSRF token (send the X-CSRF-Token header)", 403)
    wait = request.app.state.limiter.take("user:" + s.user, DEFAULT_RATE)
    if wait > 0:
        raise RateLimited(wait)
    if not allows(s.role, role):
        raise AuthError(f"the role {s.role!r} may not do this (needs {role} or above)", 403)
    return request.state.caller


def screener_of(rt: Runtime):
    s = rt.screener
    if s is None:
        raise NotReady()
    return s

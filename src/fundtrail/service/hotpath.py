"""The common case of the busiest endpoints, answered without the framework's layers.

``POST /v1/screen/address`` and ``POST /v1/screen/batch`` with a bearer key of a screener or above, a JSON
body the request model accepts and addresses the index can judge, and ``GET /v1/health``: the middleware
(app.Guard) hands them here with the body it has read. The framework's routing, dependency solving and
exception layers cost more CPU than the screening itself (per request, measured: see docs/service.md,
Performance), and at a fixed arrival rate on a busy machine that CPU is what the tail latency is made of.

Anything else falls through to the FastAPI routes, which answer it as they always did: a missing, unknown,
revoked or too weak key (401/403), a body the model refuses or an address the screener refuses (422), a
failed write, any exception. So every error is rendered in one place, and what this path serves is exactly
what the routes would: the same request model (``model_validate_json``), the same screener, the same rows
and audit record in one group-committed transaction (``routes/screen.py``), the same response bytes. The
only answer made here besides 200 is the rate limit's 429 (checked after the screening, so that a request
that falls through has taken no token).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from fundtrail.service.auth import allows
from fundtrail.service.deps import Caller, key_row
from fundtrail.service.ratelimit import RateLimiter
from fundtrail.service.routes.models import ScreenAddress, ScreenBatch
from fundtrail.service.routes.screen import verdict_writes, written

Send = Callable[[dict], Awaitable[None]]
_JSON = [(b"content-type", b"application/json")]


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = _JSON) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class HotPath:
    """``await hot(scope, body, state, send)``: the status sent, or None when the request falls through."""

    ROUTES = {("GET", "/v1/health"), ("POST", "/v1/screen/address"), ("POST", "/v1/screen/batch")}

    def __init__(self, app_state: Any, problem: Callable[..., Any]) -> None:
        self.st = app_state
        self.problem = problem

    async def __call__(self, scope: dict, body: bytes, state: dict, send: Send) -> int | None:
        path = scope["path"]
        state["route_path"] = path
        if path == "/v1/health":
            await _send(send, 200, b'{"status":"ok"}')
            return 200
        try:
            return await self._screen(scope, path, body, state, send)
        except Exception:
            if state.get("hot_sent"):
                raise  # the answer was under way: nothing to fall back to
            return None  # whatever went wrong before answering, the routes answer it (and say what)

    def _caller(self, scope: dict) -> dict | None:
        auth = ctype = None
        for k, v in scope["headers"]:
            if k == b"authorization":
                auth = v
            elif k == b"content-type":
                ctype = v
        if auth is None or ctype is None or not (ctype == b"application/json" or
                                                 ctype.startswith(b"application/json;")):
            return None
        scheme, _, secret = auth.decode("latin-1").partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            return None
        row = key_row(self.st, secret)
        if row is None or row["revoked"] or not allows(row["role"], "screener"):
            return None
        return row

    async def _screen(self, scope: dict, path: str, body: bytes, state: dict, send: Send) -> int | None:
        row = self._caller(scope)
        if row is None:
            return None
        s = self.st.runtime.screener
        if s is None:
            return None
        try:
            if path == "/v1/screen/address":
                req = ScreenAddress.model_validate_json(body)
                verdicts = [s.screen_address(req.chain, req.address, time=req.time).to_json()]
            else:
                items = ScreenBatch.model_validate_json(body).items
                verdicts = [v.to_json() for v in s.screen_batch([(it.chain, it.address, it.time) for it in items])]
        except ValidationError:
            return None
        caller = Caller(row["name"], row["role"])
        wait = self.st.limiter.take(row["hash"], row["rate_limit"])
        if wait > 0:
            state["caller"] = caller  # audited by the middleware, as the routes' 429 is
            state["hot_sent"] = True
            resp = self.problem(429, "Too Many Requests", "rate limit of this key exceeded",
                                headers={"Retry-After": RateLimiter.retry_after(wait)})
            await resp(scope, _no_receive, send)
            return 429
        texts, statements, decision = verdict_writes(self.st, caller, verdicts, "POST", path,
                                                     state.get("params_hash", ""))
        await self.st.writer.write(statements)
        written(self.st, state, verdicts, decision)
        state["hot_sent"] = True
        out = texts[0] if path == "/v1/screen/address" else '{"verdicts":[' + ",".join(texts) + "]}"
        await _send(send, 200, out.encode())
        return 200


async def _no_receive() -> dict:
    return {"type": "http.disconnect"}

"""The ASGI application factory.

``create_app(config)`` wires the runtime (index, store, policy), the routers (routes/), the error
translation (problem JSON: 401/403/404/413/422/429/503, naming the field where there is one) and one pure
ASGI middleware that bounds the body (413), times the request (metrics) and writes the audit record.
``app_from_env`` is what ``fundtrail serve`` gives uvicorn (one call per worker process).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import sqlite3
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fundtrail.errors import AuthError, ConflictError, FieldError, FundtrailError, InputError, NotFoundError
from fundtrail.service.deps import NotReady, RateLimited
from fundtrail.service.hotpath import HotPath
from fundtrail.service.metrics import Metrics
from fundtrail.service.ratelimit import RateLimiter
from fundtrail.service.runtime import Config, Runtime
from fundtrail.service.writer import Writer

log = logging.getLogger("fundtrail.service")
VERSION = "1"


def problem(status: int, title: str, detail: str, field: str | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


def _field(loc: tuple | list) -> str:
    parts = [str(x) for x in loc if x not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


class Guard:
    """Body limit (413), metrics and audit around every request (pure ASGI)."""

    def __init__(self, app: Any, fastapi_app: FastAPI, max_body: int) -> None:
        self.app = app
        self.fa = fastapi_app
        self.max_body = max_body
        self.hot = HotPath(fastapi_app.state, problem)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = {"code": 500}
        chunks: list[bytes] = []
        size = 0
        declared = None
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    declared = -1
        too_big = declared is not None and (declared > self.max_body or declared < 0)
        if not too_big:
            more = True
            while more:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    return
                b = msg.get("body", b"")
                size += len(b)
                if size > self.max_body:
                    too_big = True
                    break
                chunks.append(b)
                more = msg.get("more_body", False)
        state = scope.setdefault("state", {})
        body = b""

        async def send_wrap(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                status["code"] = msg["status"]
            elif not msg.get("more_body", False):
                # the audit record is committed before the answer is complete: a client that has its
                # answer finds its request in the audit log
                self._audit(scope, state, status["code"], body)
            await send(msg)

        if too_big:
            resp = problem(413, "Payload Too Large", f"the body exceeds {self.max_body} bytes", "body")
            status["code"] = 413
            try:
                await resp(scope, receive, send_wrap)
            finally:
                self._after(scope, state, 413, t0, b"")
            return
        body = b"".join(chunks)
        state["params_hash"] = hashlib.sha256(scope.get("query_string", b"") + b"\n" +
                                              scope.get("path", "").encode() + b"\n" + body).hexdigest()
        if (scope["method"], scope["path"]) in HotPath.ROUTES:
            code = await self.hot(scope, body, state, send_wrap)
            if code is not None:
                self._after(scope, state, code, t0, body)
                return
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            # after the body, wait for the real disconnect: file and streaming responses listen for it and
            # would stop sending half-way if told at once
            return await receive()

        try:
            await self.app(scope, replay, send_wrap)
        finally:
            self._after(scope, state, status["code"], t0, body)

    @staticmethod
    def _path(scope: dict, state: dict) -> str:
        return getattr(scope.get("route"), "path", None) or state.get("route_path") or "unmatched"

    def _after(self, scope: dict, state: dict, code: int, t0: float, body: bytes) -> None:
        self.fa.state.metrics.observe(scope.get("method", ""), self._path(scope, state), code,
                                      time.perf_counter() - t0)
        self._audit(scope, state, code, body)  # when no answer went out through send_wrap (an exception)

    def _audit(self, scope: dict, state: dict, code: int, body: bytes) -> None:
        """The request's audit record, once (probes are not audited; screening writes its own record in
        the verdicts' transaction)."""
        path = self._path(scope, state)
        if state.get("audited") or path in ("/v1/health", "/metrics", "/v1/ready"):
            return
        state["audited"] = True
        caller = state.get("caller")
        h = state.get("params_hash") or hashlib.sha256(scope.get("path", "").encode() + b"\n" + body).hexdigest()
        try:
            self.fa.state.runtime.store.audit(caller.name if caller else None, caller.role if caller else None,
                                              scope.get("method", ""), path, h, code, state.get("decision"))
        except Exception as e:  # noqa: BLE001 - the answer goes out all the same; the failure is logged
            log.error("audit write failed: %s", e)


def create_app(config: Config, runtime: Runtime | None = None, *, start: bool = True) -> FastAPI:
    rt = runtime or Runtime.open(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if start:
            # serve the newest built index at once (a stale one says so in as_of); the refresh thread
            # builds or loads a current one in the background, so a long build never blocks the workers
            try:
                rt.load_current()
            except Exception as e:  # noqa: BLE001 - not ready yet; the refresh thread retries
                rt.error = f"{type(e).__name__}: {e}"
                log.warning("index not loaded at start: %s", rt.error)
            rt.start()
        monitor = None
        if start and config.follow:
            from fundtrail.service.monitoring import Monitor

            monitor = Monitor(rt)
            monitor.start()
        dumper = asyncio.get_running_loop().create_task(_dump_metrics(app.state.metrics, config.poll))
        try:
            yield
        finally:
            dumper.cancel()
            if monitor is not None:
                monitor.stop()
            app.state.metrics.dump()
            app.state.writer.close()
            app.state.limiter.close()
            rt.stop()

    app = FastAPI(title="fundtrail KYT screening API", version=VERSION, lifespan=lifespan, docs_url=None,
                  redoc_url=None,
                  description="Screen addresses and transfers against the exposure index and the policy. "
                              "See docs/service.md.")
    app.state.runtime = rt
    app.state.writer = Writer(rt.store)
    app.state.limiter = RateLimiter(config.home / "service" / "ratelimit.bin")
    app.state.key_cache = {}
    app.state.metrics = Metrics(config.home / "service" / "metrics")

    from fundtrail.service.routes import ROUTERS

    for r in ROUTERS:
        app.include_router(r)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {"loc": ("body",), "msg": "invalid request"}
        field = _field(first.get("loc", ()))
        return problem(422, "Unprocessable Entity", f"{field}: {first.get('msg')}", field)

    @app.exception_handler(FieldError)
    async def _field_err(request: Request, exc: FieldError) -> JSONResponse:
        return problem(422, "Unprocessable Entity", str(exc), exc.field)

    @app.exception_handler(AuthError)
    async def _auth(request: Request, exc: AuthError) -> JSONResponse:
        if exc.status == 401:
            return problem(401, "Unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"})
        return problem(403, "Forbidden", str(exc))

    @app.exception_handler(RateLimited)
    async def _rate(request: Request, exc: RateLimited) -> JSONResponse:
        return problem(429, "Too Many Requests", "rate limit of this key exceeded",
                       headers={"Retry-After": RateLimiter.retry_after(exc.wait)})

    @app.exception_handler(NotReady)
    async def _not_ready(request: Request, exc: NotReady) -> JSONResponse:
        return problem(503, "Service Unavailable", "the exposure index is not loaded yet", headers={"Retry-After": "5"})

    @app.exception_handler(NotFoundError)
    async def _nf(request: Request, exc: NotFoundError) -> JSONResponse:
        return problem(404, "Not Found", str(exc))

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError) -> JSONResponse:
        return problem(422, "Unprocessable Entity", str(exc), exc.field or "body")

    @app.exception_handler(ConflictError)
    async def _conflict(request: Request, exc: ConflictError) -> JSONResponse:
        return problem(409, "Conflict", str(exc))

    @app.exception_handler(FundtrailError)
    async def _ft(request: Request, exc: FundtrailError) -> JSONResponse:
        return problem(422, "Unprocessable Entity", str(exc), getattr(exc, "field", None))

    @app.exception_handler(sqlite3.OperationalError)
    async def _busy(request: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        return problem(503, "Service Unavailable", f"the service database is busy: {exc}", headers={"Retry-After": "1"})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), str(exc.detail), headers=getattr(exc, "headers", None))

    from fundtrail.ui import mount

    mount(app, warm=start)  # the web UI at /ui/ (its error pages wrap the handlers above)
    app.add_middleware(_GuardFactory, fastapi_app=app, max_body=config.max_body)
    return app


class _GuardFactory(Guard):
    def __init__(self, app: Any, fastapi_app: FastAPI, max_body: int) -> None:
        super().__init__(app, fastapi_app, max_body)


async def _dump_metrics(metrics: Metrics, every: float) -> None:
    """This worker's counts for the other workers' ``/metrics`` (metrics.py), every poll."""
    while True:
        await asyncio.sleep(max(every, 0.5))
        try:
            metrics.dump()
        except OSError as e:
            log.warning("metrics snapshot not written: %s", e)


def app_from_env() -> FastAPI:
    """The application for one uvicorn worker, configured from the environment (see runtime.Config)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(Config.from_env())


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))

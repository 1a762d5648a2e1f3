"""The UI's pages: sign in and out, search, address / cluster / entity / transaction pages, cases, the audit log.

Pages parse the request, call one service (:mod:`fundtrail.investigate`, :mod:`fundtrail.service.cases`,
:mod:`fundtrail.service.users`), and render a template. A page needs a signed-in user (else a redirect to the
sign-in form); every form POST carries the session's CSRF token (the sign-in form a token of its own,
double-submitted in a cookie). Every page a user opens and every change is written to the action log.
"""

from __future__ import annotations

import inspect
import json
import secrets
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from fundtrail.errors import AuthError, FundtrailError, NotFoundError
from fundtrail.incidents import list_incidents
from fundtrail.investigate import clusters as K
from fundtrail.investigate import pages as P
from fundtrail.investigate import search as S
from fundtrail.investigate import txs as X
from fundtrail.investigate import usertags as U
from fundtrail.service import cases as C
from fundtrail.service import users as USERS
from fundtrail.service.deps import Caller
from fundtrail.service.routes.graph import labeler

HERE = Path(__file__).resolve().parent
router = APIRouter(include_in_schema=False)
env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
LOGIN_COOKIE = "ft_login"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
CATEGORIES = ("exchange", "exchange_nokyc", "otc_desk", "payment_processor", "gambling", "mining", "wallet_service",
              "mixer", "coinjoin_coordinator", "bridge", "dex", "defi", "sanctioned", "theft_perpetrator",
              "theft_victim", "ransomware", "darknet_market", "scam", "other")


class NeedSignIn(Exception):
    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


class PageError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


def _rt(request: Request):
    return request.app.state.runtime


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def user_of(request: Request) -> USERS.Session:
    s = USERS.session(_rt(request).store, request.cookies.get(USERS.COOKIE))
    if s is None:
        raise NeedSignIn(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    request.state.caller = Caller(s.user, s.role)
    return s


def _need(s: USERS.Session, role: str) -> None:
    order = USERS.USER_ROLES
    if order.index(s.role) < order.index(role):
        raise PageError(403, f"your role ({s.role}) may not do this; it needs {role} or above")


def render(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    html = env.get_template(name).render(request=request, **ctx)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _local_next(url: str | None) -> str:
    return url if url and url.startswith("/ui/") and not url.startswith("//") else "/ui/"


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _check_csrf(s: USERS.Session, form: dict[str, str]) -> None:
    if not USERS.csrf_ok(s, form.get("csrf")):
        raise PageError(403, "the form's CSRF token is missing or wrong: reload the page and try again")


def _log(request: Request, s: USERS.Session, action: str, target: str, detail: str | None = None) -> None:
    USERS.log_action(_rt(request).store, s.user, action, target, detail)


# --- sign in / out -------------------------------------------------------------------------------------------

@router.get("/ui")
def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/login")
def login_form(request: Request, next: str | None = None, error: str | None = None) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    r = render(request, "login.html", next=_local_next(next), csrf=token, error=error, user=None)
    r.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/ui/login")
    return r


@router.post("/ui/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    cookie = request.cookies.get(LOGIN_COOKIE)
    if not cookie or not form.get("csrf") or not secrets.compare_digest(cookie, form.get("csrf", "")):
        raise PageError(403, "the sign-in form's CSRF token is missing or wrong: reload the page and try again")
    name = form.get("username", "").strip()
    try:
        sid, s = await run_in_threadpool(USERS.sign_in, _rt(request).store, name, form.get("password", ""))
    except AuthError as e:
        await run_in_threadpool(USERS.log_action, _rt(request).store, name or None, "signin.failed", name or "-",
                                str(e))
        token = secrets.token_urlsafe(24)
        r = render(request, "login.html", status=401, next=_local_next(form.get("next")), csrf=token, error=str(e),
                   user=None)
        r.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request),
                     path="/ui/login")
        return r
    request.state.caller = Caller(s.user, s.role)
    await run_in_threadpool(USERS.log_action, _rt(request).store, s.user, "signin", s.user)
    r = RedirectResponse(_local_next(form.get("next")), status_code=303, headers=HEADERS)
    r.set_cookie(USERS.COOKIE, sid, httponly=True, samesite="strict", secure=_secure(request), path="/",
                 max_age=USERS.SESSION_SECONDS)
    r.delete_cookie(LOGIN_COOKIE, path="/ui/login")
    return r


@router.post("/ui/logout")
async def logout(request: Request) -> Response:
    s = await run_in_threadpool(user_of, request)
    _check_csrf(s, await _form(request))
    await run_in_threadpool(USERS.sign_out, _rt(request).store, request.cookies.get(USERS.COOKIE))
    await run_in_threadpool(USERS.log_action, _rt(request).store, s.user, "signout", s.user)
    r = RedirectResponse("/ui/login", status_code=303, headers=HEADERS)
    r.delete_cookie(USERS.COOKIE, path="/")
    return r


# --- pages ---------------------------------------------------------------------------------------------------

@router.get("/ui/")
def home(request: Request) -> HTMLResponse:
    s = user_of(request)
    rt = _rt(request)
    return render(request, "home.html", user=s, cases=C.list_cases(rt.store, s.user, s.role),
                  incidents=list_incidents(rt.ws))


def _hit_url(h: dict[str, Any]) -> str:
    k, chain, i = h["kind"], h.get("chain"), h["id"]
    if k == "address":
        return f"/ui/address/{quote(chain)}/{quote(str(i))}"
    if k == "transaction":
        return f"/ui/tx/{quote(chain)}/{quote(str(i))}"
    if k == "cluster":
        return f"/ui/cluster/{quote(chain)}/{i}"
    if k == "entity":
        return f"/ui/entity/{quote(str(i), safe='')}"
    return f"/ui/incident/{quote(str(i), safe='')}"


@router.get("/ui/search")
def search(request: Request, q: str = "") -> Response:
    s = user_of(request)
    q = q.strip()[:200]
    hits = S.search(_rt(request).ws, q) if q else []
    _log(request, s, "search", q or "-", f"{len(hits)} hits")
    for h in hits:
        h["url"] = _hit_url(h)
    if len(hits) == 1:
        return RedirectResponse(hits[0]["url"], status_code=303, headers=HEADERS)
    return render(request, "search.html", user=s, q=q, hits=hits)


def _exposure(request: Request, chain: str, address: str) -> tuple[list[dict], dict | None]:
    from fundtrail.service.screening import items_json

    scr = _rt(request).screener
    if scr is None:
        return [], None
    try:
        p = scr.profile(chain, address)
    except FundtrailError:
        return [], None
    return items_json(p.items), labeler(_rt(request))(chain, address)


@router.get("/ui/address/{chain}/{address}")
def address_page(request: Request, chain: str, address: str, page: int = Query(0, ge=0, le=1_000_000),
                 cp: int = Query(0, ge=0, le=1_000_000)) -> HTMLResponse:
    s = user_of(request)
    d = P.address_page(_rt(request).ws, chain, address, page=max(0, page), cp_page=max(0, cp))
    exposure, label = _exposure(request, chain, d["address"])
    if label is not None and not label.get("entity"):
        label = None  # a cluster without attribution
    if label is None:  # the index refreshes after a tag import; the tags table is current at once
        now = [t for t in d["tags"] if t.get("valid_now") and t.get("entity")]
        if now:
            label = {k: now[0].get(k) for k in ("entity", "category", "country", "sanctioned")}
    _log(request, s, "view.address", f"{chain}:{d['address']}")
    return render(request, "address.html", user=s, a=d, exposure=exposure, label=label, categories=CATEGORIES,
                  chart=_chart(d["series"]))


def _chart(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per asset, bars of the balance at the end of each month, scaled to 0..100 (drawn as SVG in the page)."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in series:
        by.setdefault(r["asset"], []).append(r)
    out = []
    for asset, rows in by.items():
        vals = [float(r["balance"]) for r in rows]
        top = max([abs(v) for v in vals] + [1e-30])
        out.append({"asset": asset, "bars": [{"month": r["month"], "balance": r["balance"], "received": r["received"],
                                              "sent": r["sent"], "h": round(abs(v) / top * 100, 2)}
                                             for r, v in zip(rows, vals, strict=True)]})
    return out


@router.post("/ui/address/{chain}/{address}/tag")
async def add_tag(request: Request, chain: str, address: str) -> Response:
    s = await run_in_threadpool(user_of, request)
    form = await _form(request)
    _check_csrf(s, form)
    _need(s, "investigator")
    try:
        conf = float(form.get("confidence") or 0.5)
    except ValueError:
        raise PageError(422, "confidence: must be a number between 0 and 1") from None
    row = await run_in_threadpool(
        lambda: U.add_tag(_rt(request).ws, s.user, chain=chain, address=address, label=form.get("label", ""),
                          category=form.get("category", "other"), entity=form.get("entity") or None,
                          country=form.get("country") or None, confidence=conf, note=form.get("note") or None,
                          cluster=form.get("cluster") == "on"))
    await run_in_threadpool(_log, request, s, "tag", f"{chain}:{address}",
                            f"{row['label']} ({row['category']}, {row['country'] or '-'})")
    return RedirectResponse(f"/ui/address/{quote(chain)}/{quote(address)}#tags", status_code=303, headers=HEADERS)


@router.get("/ui/cluster/{chain}/{cluster_id}")
def cluster_page(request: Request, chain: str, cluster_id: int = PathParam(ge=0, le=2**62), page: int = Query(0, ge=0, le=1_000_000),
                 mpage: int = Query(0, ge=0, le=1_000_000)) -> HTMLResponse:
    s = user_of(request)
    d = K.cluster_page(_rt(request).ws, chain, cluster_id, page=max(0, page), merges_page=max(0, mpage))
    scr = _rt(request).screener
    exposure = []
    if scr is not None and scr.index.has_chain(chain):
        from fundtrail.service.screening import items_json

        exposure = items_json(scr.index.cluster_items(chain, cluster_id))
    _log(request, s, "view.cluster", f"{chain}:{cluster_id}")
    return render(request, "cluster.html", user=s, c=d, exposure=exposure)


@router.get("/ui/entity/{name}")
def entity_page(request: Request, name: str, page: int = Query(0, ge=0, le=1_000_000)) -> HTMLResponse:
    s = user_of(request)
    d = P.entity_page(_rt(request).ws, name, page=max(0, page))
    if not d["chains"]:
        raise NotFoundError(f"no entity named {name!r}")
    _log(request, s, "view.entity", name)
    return render(request, "entity.html", user=s, e=d)


@router.get("/ui/tx/{chain}/{txid}")
def tx_page(request: Request, chain: str, txid: str) -> HTMLResponse:
    s = user_of(request)
    d = X.transaction(_rt(request).ws, chain, txid)
    _log(request, s, "view.transaction", f"{chain}:{txid}")
    return render(request, "tx.html", user=s, t=d)


@router.get("/ui/incident/{name}")
def incident_page(request: Request, name: str) -> HTMLResponse:
    from fundtrail.incidents import get_incident

    s = user_of(request)
    inc = get_incident(_rt(request).ws, name)
    _log(request, s, "view.incident", name)
    return render(request, "incident.html", user=s, inc=inc)


@router.post("/ui/cases")
async def new_case(request: Request) -> Response:
    s = await run_in_threadpool(user_of, request)
    form = await _form(request)
    _check_csrf(s, form)
    _need(s, "investigator")
    seeds = [x.strip() for x in form.get("seeds", "").replace(",", "\n").splitlines() if x.strip()]
    case = await run_in_threadpool(
        lambda: C.create_case(_rt(request).store, _rt(request).ws, s.user, title=form.get("title") or None,
                              incident=form.get("incident") or None, seeds=seeds,
                              model=form.get("model") or "haircut"))
    await run_in_threadpool(_log, request, s, "case.create", case["case_id"], case["title"])
    return RedirectResponse(f"/ui/cases/{case['case_id']}", status_code=303, headers=HEADERS)


@router.get("/ui/cases/{case_id}")
def case_page(request: Request, case_id: str) -> HTMLResponse:
    s = user_of(request)
    rt = _rt(request)
    case = C.get_case(rt.store, case_id, s.user, s.role)
    _log(request, s, "case.view", case_id)
    can_write = s.role in ("investigator", "admin") and (case["owner"] == s.user or s.user in case["shared_with"]
                                                         or s.role == "admin")
    others = [u for u in USERS.user_names(rt.store) if u != case["owner"]]
    return render(request, "case.html", user=s, case=case, can_write=can_write, others=others)


@router.get("/ui/audit")
def audit_page(request: Request, before: int | None = Query(None, ge=1, le=2**62),
               who: str | None = Query(None, max_length=100)) -> HTMLResponse:
    s = user_of(request)
    _need(s, "admin")
    rt = _rt(request)
    rows = USERS.actions(rt.store, before=before, limit=100, user=who or None)
    http = rt.store.execute("SELECT id, time, key_name, role, method, endpoint, status FROM audit ORDER BY id DESC "
                            "LIMIT 50")
    _log(request, s, "view.audit", who or "-")
    return render(request, "audit.html", user=s, rows=rows, http=http, who=who or "",
                  older=rows[-1]["id"] if len(rows) == 100 else None, users=USERS.list_users(rt.store))


# --- errors --------------------------------------------------------------------------------------------------

def install(app: FastAPI) -> None:
    """Error pages for /ui (a redirect to sign in; HTML instead of problem JSON)."""

    @app.exception_handler(NeedSignIn)
    async def _signin(request: Request, exc: NeedSignIn) -> Response:
        if request.method == "GET":
            return RedirectResponse(f"/ui/login?next={quote(exc.next_url)}", status_code=303, headers=HEADERS)
        return render(request, "error.html", status=401, user=None, message="not signed in (or the session ended)")

    @app.exception_handler(PageError)
    async def _page(request: Request, exc: PageError) -> Response:
        return render(request, "error.html", status=exc.status, user=None, message=exc.message)

    # every other error under /ui/ becomes an HTML page with the status and message the API's handler
    # gives (problem JSON stays for /v1 and for a script's or fetch's request that accepts only JSON)
    for cls, prev in list(app.exception_handlers.items()):
        if cls in (NeedSignIn, PageError) or not isinstance(cls, type):
            continue
        app.add_exception_handler(cls, _html_or(prev))
    if StarletteHTTPException not in app.exception_handlers:
        app.add_exception_handler(StarletteHTTPException, _html_or(http_exception_handler))
    if RequestValidationError not in app.exception_handlers:
        app.add_exception_handler(RequestValidationError, _html_or(request_validation_exception_handler))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        # Starlette raises the error again after this answer: the server's log has the traceback
        if wants_html(request):
            return render(request, "error.html", status=500, user=None,
                          message="an internal error stopped this page (it is in the service's log)")
        return PlainTextResponse("Internal Server Error", status_code=500)


def wants_html(request: Request) -> bool:
    """A UI page's request whose error should be a page: under /ui/ and not asking for JSON only."""
    path = request.url.path
    if not (path == "/ui" or path.startswith("/ui/")):
        return False
    accept = request.headers.get("accept", "").lower()
    return not ("json" in accept and "text/html" not in accept)


def _html_or(prev: Any) -> Any:
    async def handler(request: Request, exc: Exception) -> Response:
        r = prev(request, exc)
        if inspect.isawaitable(r):
            r = await r
        if not wants_html(request):
            return r
        try:
            message = json.loads(bytes(r.body)).get("detail") or HTTPStatus(r.status_code).phrase
        except (ValueError, AttributeError):
            message = HTTPStatus(r.status_code).phrase
        page = render(request, "error.html", status=r.status_code, user=None, message=str(message),
                      code=r.status_code, phrase=HTTPStatus(r.status_code).phrase)
        for k in ("retry-after", "www-authenticate", "allow"):
            if k in r.headers:
                page.headers[k] = r.headers[k]
        return page
    return handler

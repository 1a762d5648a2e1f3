"""The one bounded HTTP client of fundtrail: every network source (Bitcoin Core RPC, EVM RPC, ``tags fetch``,
``prices fetch``) goes through :class:`BoundedHttp`.

A node or a download source may be hostile or compromised, so each call has

* a **size cap** on the (decoded) answer, read as a stream: ``max_bytes``;
* a **per-read timeout** (connect, each read) and an **overall deadline** for the whole call: a server that
  trickles one byte every few seconds fails at the first read after the deadline;
* **redirects** refused (``redirects="none"``, the RPC clients) or followed only to the same scheme, host
  and port (``"same-host"``, the downloads), at most ``max_redirects``;
* only ``http://`` and ``https://`` URLs;
* a **bounded JSON depth** (:func:`loads_json`): answers nested deeper than the parser's recursion limit
  are a clear error, not a RecursionError traceback.

Failures are errors of the tree, naming the source by its *redacted* URL (:func:`redact_url`: no
``user:password@``, no API keys in paths or query strings): :class:`~fundtrail.errors.SourceTimeout`,
:class:`~fundtrail.errors.SourceUnreachable` (both worth retrying) and
:class:`~fundtrail.errors.ResponseLimitError`. Limits and their defaults are in docs/security.md.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx

from fundtrail.errors import ResponseLimitError, SourceTimeout, SourceUnreachable, UsageError

USER_AGENT = "fundtrail (open-source blockchain forensics)"
MASK = "***"
_SECRET_NAMES = re.compile(r"(?i)(key|token|secret|pass|auth|sig|credential|session|access)")
_KEYLIKE = re.compile(r"[A-Za-z0-9_\-]{20,}\Z")
_VERSION_SEGMENT = re.compile(r"v[0-9]+\Z")


def redact_url(url: str, *, keep_path: bool = True) -> str:
    """``url`` fit for messages and logs: userinfo removed; query values whose name looks secret and path
    segments that look like API keys (after a ``/vN/`` segment, or 20+ key characters with a digit)
    replaced by ``***``. ``keep_path=False`` masks the whole path (RPC endpoints)."""
    try:
        p = urlsplit(url)
        host = p.hostname or ""
        port = p.port
    except ValueError:
        return "<invalid URL>"
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    if not keep_path:
        path = p.path if p.path in ("", "/") else "/" + MASK
        query = MASK if p.query else ""
        return urlunsplit((p.scheme, netloc, path, query, ""))
    segs = p.path.split("/")
    out = []
    for i, s in enumerate(segs):
        after_version = i > 0 and _VERSION_SEGMENT.match(segs[i - 1]) is not None and s != ""
        if after_version or (_KEYLIKE.match(s) and any(c.isdigit() for c in s)):
            out.append(MASK)
        else:
            out.append(s)
    query = urlencode([(k, MASK if _SECRET_NAMES.search(k) else v)
                       for k, v in parse_qsl(p.query, keep_blank_values=True)], safe="*")
    return urlunsplit((p.scheme, netloc, "/".join(out), query, ""))


def check_http_url(url: str, what: str = "URL") -> str:
    """``url`` if it is an http(s) URL with a host, else UsageError (no ``file:``, no bare paths)."""
    try:
        p = urlsplit(url)
        host = p.hostname
    except ValueError:
        host = None
        p = None  # type: ignore[assignment]
    if p is None or p.scheme not in ("http", "https") or not host:
        raise UsageError(f"{what} must be an http:// or https:// URL with a host, not {redact_url(url)!r}")
    return url


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_bytes: int = 256 << 20  # decoded bytes of one answer
    timeout: float = 60.0  # seconds to connect and for each read
    deadline: float = 300.0  # seconds for the whole call (connect, send, every read)
    redirects: str = "none"  # none | same-host
    max_redirects: int = 5


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: httpx.Headers
    body: bytes
    url: str = field(repr=False)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class BoundedHttp:
    """An httpx client that enforces :class:`HttpLimits` on every call. ``transport``: an httpx transport
    (tests). ``source``: a short name for messages (``EVM RPC``, ``tags fetch``)."""

    def __init__(self, limits: HttpLimits = HttpLimits(), *, source: str = "source",
                 transport: httpx.BaseTransport | None = None, headers: dict[str, str] | None = None,
                 auth: tuple[str, str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if limits.redirects not in ("none", "same-host"):
            raise ValueError(f"redirects must be none or same-host, not {limits.redirects!r}")
        self.limits = limits
        self.source = source
        self._clock = clock
        hdrs = {"User-Agent": USER_AGENT, **(headers or {})}
        self._http = httpx.Client(timeout=httpx.Timeout(limits.timeout), follow_redirects=False,
                                  transport=transport, headers=hdrs, auth=auth, trust_env=False)

    def with_limits(self, **changes: Any) -> HttpLimits:
        return replace(self.limits, **changes)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BoundedHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, url: str, *, content: bytes | None = None,
                headers: dict[str, str] | None = None) -> HttpAnswer:
        """One call (following allowed redirects), its whole answer read under the limits."""
        lim = self.limits
        check_http_url(url, f"{self.source} URL")
        start = self._clock()
        first = url
        for _ in range(lim.max_redirects + 1):
            ans = self._once(method, url, content, headers, start)
            if ans.status not in (301, 302, 303, 307, 308):
                return ans
            loc = ans.headers.get("location")
            if not loc:
                return ans
            nxt = urljoin(url, loc)
            a, b = urlsplit(url), urlsplit(nxt)
            same = (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)
            if lim.redirects == "none" or not same:
                why = "redirects are not followed" if lim.redirects == "none" else "only same-host redirects are"
                raise ResponseLimitError(f"{self.source} {redact_url(first)}: HTTP {ans.status} redirect to "
                                         f"{redact_url(nxt)} refused ({why})")
            url = nxt
            if ans.status == 303:
                method, content = "GET", None
        raise ResponseLimitError(f"{self.source} {redact_url(first)}: more than {lim.max_redirects} redirects")

    def _once(self, method: str, url: str, content: bytes | None, headers: dict[str, str] | None,
              start: float) -> HttpAnswer:
        lim = self.limits
        name = redact_url(url)
        left = lim.deadline - (self._clock() - start)
        if left <= 0:
            raise SourceTimeout(f"{self.source} {name}: no answer within the {lim.deadline:g} s deadline")
        tmo = httpx.Timeout(min(lim.timeout, left))
        chunks: list[bytes] = []
        total = 0
        try:
            with self._http.stream(method, url, content=content, headers=headers, timeout=tmo) as r:
                declared = r.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > lim.max_bytes:
                    raise ResponseLimitError(f"{self.source} {name}: answer of {int(declared):,} bytes is "
                                             f"larger than the {lim.max_bytes:,}-byte limit")
                for chunk in r.iter_bytes():
                    total += len(chunk)
                    if total > lim.max_bytes:
                        raise ResponseLimitError(f"{self.source} {name}: answer larger than the "
                                                 f"{lim.max_bytes:,}-byte limit")
                    chunks.append(chunk)
                    if self._clock() - start > lim.deadline:
                        raise SourceTimeout(f"{self.source} {name}: answer not complete within the "
                                            f"{lim.deadline:g} s deadline ({total:,} bytes read)")
                return HttpAnswer(r.status_code, r.headers, b"".join(chunks), url)
        except httpx.TimeoutException as e:
            raise SourceTimeout(f"{self.source} {name}: {type(e).__name__} (timeout {tmo.read:g} s, "
                                f"{total:,} bytes read)") from None
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as e:
            raise SourceUnreachable(f"{self.source} {name}: {type(e).__name__}: {_scrub(str(e), url)}") from None
        except httpx.DecodingError as e:
            raise ResponseLimitError(f"{self.source} {name}: undecodable answer ({type(e).__name__})") from None
        except httpx.HTTPError as e:
            raise SourceUnreachable(f"{self.source} {name}: {type(e).__name__}: {_scrub(str(e), url)}") from None


def _scrub(message: str, url: str) -> str:
    """An httpx message without the URL's credentials (httpx repeats the URL in some messages)."""
    p = urlsplit(url)
    for secret in (url, p.username, p.password):
        if secret:
            message = message.replace(secret, MASK)
    return message[:300]


def loads_json(body: bytes, *, decimal: bool = False, what: str = "answer") -> Any:
    """Parse JSON; ValueError (with the reason) for invalid JSON or JSON nested deeper than the parser's
    recursion limit (about 1,000 levels in CPython: the C scanner checks it on each level, so a deep answer
    costs neither the C stack nor a traceback)."""
    try:
        return json.loads(body, parse_float=Decimal) if decimal else json.loads(body)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} is not UTF-8: {e.reason} at byte {e.start}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} is not JSON: {e.msg} at byte {e.pos}") from None

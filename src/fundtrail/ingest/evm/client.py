"""JSON-RPC client for EVM nodes: batching, retries with backoff, behind a small transport interface.

A :class:`Transport` sends a list of JSON-RPC request objects and returns the response objects (in any
order; the client matches them by ``id``). :class:`HttpTransport` speaks HTTP(S) through httpx;
``fundtrail.ingest.evm.replay.ReplayTransport`` answers from a recording (``file:///…jsonl``) or from
ethereum-etl fixture folders. :func:`open_client` picks one from a URL.

Retries: timeouts, connection errors, HTTP 429 / 5xx, and JSON-RPC errors that say "rate limit" (codes
-32005, 429, or a message with "rate limit" / "too many requests" / "limit exceeded") are retried with
exponential backoff (``backoff * 2**attempt``, capped at ``max_backoff``, honouring ``Retry-After``) up to
``retries`` times; then :class:`fundtrail.errors.RpcError` is raised. Other JSON-RPC errors are not retried.

Timeouts are handled apart from rate limits, because re-sending a request the node could not answer in time
rarely helps (the node is often still busy with the abandoned one): a timed-out batch of several requests is
split in halves, each half sent on its own; a single request that times out is retried at most
``timeout_retries`` times. Every give-up raises RpcError naming the method and the block (or first param) of
the request(s) that failed, e.g. ``giving up on debug_traceBlockByNumber block 45 (0x2d) after 3 attempts``.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from fundtrail.errors import ResponseLimitError, RpcError, SourceTimeout, SourceUnreachable, UsageError
from fundtrail.netclient import BoundedHttp, HttpLimits, check_http_url, loads_json, redact_url

log = logging.getLogger(__name__)

METHOD_NOT_FOUND = -32601
_RATE_CODES = {-32005, 429, -32029}
_RATE_WORDS = ("rate limit", "too many requests", "limit exceeded", "rate-limit", "exceeded the quota")


class RetryableError(Exception):
    """A transport-level failure worth retrying (timeout, 429, 5xx, connection reset). ``timeout`` marks a
    request the node did not answer in time (handled by splitting the batch, see the module doc)."""

    def __init__(self, message: str, retry_after: float | None = None, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.timeout = timeout


class Transport(Protocol):
    url: str

    def send(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send JSON-RPC requests (one batch); return their response objects. Raise RetryableError on a
        failure worth retrying, RpcError on one that is not."""
        ...

    def close(self) -> None: ...


# per call: a 512 MiB answer at most (a batch of traces of full mainnet blocks stays well below), each read
# within the timeout, the whole call within 10 minutes
DEFAULT_LIMITS = HttpLimits(max_bytes=512 << 20, timeout=60.0, deadline=600.0)


class HttpTransport:
    """JSON-RPC over HTTP(S) through :class:`fundtrail.netclient.BoundedHttp` (size cap, per-read timeout and
    per-call deadline, no redirects). ``url`` as given may carry ``user:pass@`` (sent as Basic auth) and
    keys in its path; :attr:`url` is the redacted form used in every message and log line."""

    def __init__(self, url: str, *, timeout: float = 60.0, headers: dict[str, str] | None = None,
                 auth: tuple[str, str] | None = None, limits: HttpLimits | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        check_http_url(url, "--rpc")
        parts = urlsplit(url)
        if parts.username is not None:
            auth = auth or (unquote(parts.username), unquote(parts.password or ""))
            netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
            url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        self._url = url
        self.url = redact_url(url, keep_path=False)
        lim = limits or HttpLimits(timeout=timeout, deadline=max(timeout, DEFAULT_LIMITS.deadline),
                                   max_bytes=DEFAULT_LIMITS.max_bytes)
        self.timeout = lim.timeout
        self._http = BoundedHttp(lim, source="EVM RPC", headers={"content-type": "application/json",
                                                                 **(headers or {})}, auth=auth,
                                 transport=transport)

    def send(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        body = requests if len(requests) > 1 else requests[0]
        try:
            r = self._http.request("POST", self._url, content=json.dumps(body).encode())
        except SourceTimeout as e:
            raise RetryableError(str(e), timeout=True) from None
        except SourceUnreachable as e:
            raise RetryableError(str(e)) from None
        except ResponseLimitError as e:
            raise RpcError(str(e), url=self.url) from None
        if r.status == 429 or r.status >= 500:
            ra = r.headers.get("retry-after")
            try:
                retry_after = float(ra) if ra else None
            except ValueError:
                retry_after = None
            raise RetryableError(f"HTTP {r.status}", retry_after)
        if r.status >= 400 and not r.body:
            raise RpcError(f"HTTP {r.status}", url=self.url)
        try:
            data = loads_json(r.body, what="the answer")
        except ValueError as e:
            # a node that is restarting or a proxy in between answers garbage now and then: retried
            raise RetryableError(f"HTTP {r.status}: {e}: {r.body[:80]!r}") from None
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
            raise RetryableError(f"HTTP {r.status}: not a JSON-RPC answer (a {type(data).__name__})")
        return data

    def close(self) -> None:
        self._http.close()


@dataclass(frozen=True, slots=True)
class CallError:
    """A JSON-RPC error answer for one request of a batch (returned by ``batch(..., errors=True)``)."""

    method: str
    code: int | None
    message: str

    def raise_(self, url: str | None = None) -> None:
        raise RpcError(f"error {self.code}: {self.message}", url=url, method=self.method, code=self.code)


def describe(calls: Sequence[tuple[str, Sequence[Any]]]) -> str:
    """``method block N (0x..)`` of the first call (and how many more), for error messages."""
    if not calls:
        return "an empty batch"
    m, p = calls[0]
    what = m
    if p:
        first = p[0]
        if isinstance(first, str) and first.startswith("0x") and len(first) <= 18:
            what += f" block {int(first, 16)} ({first})" if len(first) > 2 else f" block {first}"
        elif isinstance(first, int):
            what += f" block {first}"
        else:
            what += f" {json.dumps(first, default=str)[:80]}"
    if len(calls) > 1:
        methods = sorted({c[0] for c in calls})
        what += f" and {len(calls) - 1} more request(s) ({', '.join(methods)})"
    return what


def _is_rate_limit(err: dict[str, Any]) -> bool:
    code = err.get("code")
    msg = str(err.get("message", "")).lower()
    return code in _RATE_CODES or any(w in msg for w in _RATE_WORDS)


class RpcClient:
    """Calls over a transport. ``batch`` splits into batches of ``max_batch`` requests."""

    def __init__(self, transport: Transport, *, max_batch: int = 50, retries: int = 6, backoff: float = 0.25,
                 max_backoff: float = 20.0, sleep: Callable[[float], None] = time.sleep,
                 timeout_retries: int = 2) -> None:
        self.transport = transport
        self.url = transport.url
        self.max_batch = max(1, max_batch)
        self.retries = retries
        self.timeout_retries = min(timeout_retries, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._ids = itertools.count(1)
        self.requests_sent = 0
        self.retried = 0
        self._count_lock = threading.Lock()  # the ingester fetches the next batch on a second thread

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        res = self.batch([(method, params)], errors=True)[0]
        if isinstance(res, CallError):
            res.raise_(self.url)
        return res

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]], *, errors: bool = False) -> list[Any]:
        """Results of ``calls`` in order. A JSON-RPC error raises RpcError, or with ``errors=True`` comes
        back as a :class:`CallError` in its place."""
        out: list[Any] = []
        for i in range(0, len(calls), self.max_batch):
            out.extend(self._one_batch(calls[i : i + self.max_batch]))
        if not errors:
            for r in out:
                if isinstance(r, CallError):
                    r.raise_(self.url)
        return out

    def _wait(self, attempt: int, retry_after: float | None, why: str,
              calls: Sequence[tuple[str, Sequence[Any]]] = (), limit: int | None = None) -> None:
        if attempt >= (self.retries if limit is None else limit):
            raise RpcError(f"giving up on {describe(calls)} after {attempt + 1} attempts: {why}", url=self.url,
                           method=None if not calls else calls[0][0])
        delay = min(self.max_backoff, self.backoff * (2 ** attempt))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff * 3))
        self.retried += 1
        log.warning("%s: %s; retrying in %.2fs", self.url, why, delay)
        self._sleep(delay)

    def _one_batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        results: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        attempt = 0
        while pending:
            reqs = []
            by_id: dict[int, int] = {}
            for k in pending:
                rid = next(self._ids)
                by_id[rid] = k
                m, p = calls[k]
                reqs.append({"jsonrpc": "2.0", "id": rid, "method": m, "params": list(p)})
            try:
                with self._count_lock:
                    self.requests_sent += len(reqs)
                resps = self.transport.send(reqs)
            except RetryableError as e:
                if e.timeout and len(pending) > 1:
                    # too much for one answer in time: send the halves on their own (each retried on its own)
                    log.warning("%s: %s for a batch of %d requests (%s); splitting it", self.url, e, len(pending),
                                describe([calls[k] for k in pending]))
                    self.retried += 1
                    half = len(pending) // 2
                    for part in (pending[:half], pending[half:]):
                        for k, r in zip(part, self._one_batch([calls[k] for k in part]), strict=True):
                            results[k] = r
                    return results
                self._wait(attempt, e.retry_after, str(e), [calls[k] for k in pending],
                           self.timeout_retries if e.timeout else None)
                attempt += 1
                continue
            retry: list[int] = []
            seen: set[int] = set()
            for r in resps:
                rid = r.get("id")
                if rid not in by_id:
                    # a whole-batch error (no id): rate limit -> retry everything, else fail
                    err = r.get("error") or {}
                    if err and _is_rate_limit(err):
                        retry = list(pending)
                        seen = set(by_id)
                        break
                    raise RpcError(f"unexpected response without a matching id: {str(r)[:200]}", url=self.url)
                k = by_id[rid]
                seen.add(rid)
                if "error" in r and r["error"] is not None:
                    err = r["error"]
                    if _is_rate_limit(err):
                        retry.append(k)
                    else:
                        results[k] = CallError(calls[k][0], err.get("code"), str(err.get("message", err)))
                else:
                    results[k] = r.get("result")
            missing = [by_id[i] for i in by_id if i not in seen]
            if missing:
                raise RpcError(f"{len(missing)} requests of a batch got no response (first: "
                               f"{describe([calls[missing[0]]])})", url=self.url)
            if retry:
                self._wait(attempt, None, f"rate limited ({len(retry)} of {len(reqs)} requests)",
                           [calls[k] for k in retry])
                attempt += 1
            pending = retry
        return results


def open_client(url: str, *, timeout: float = 60.0, allow_files: bool = True,
                limits: HttpLimits | None = None, **kw: Any) -> RpcClient:
    """A client for an http(s):// node or, with ``allow_files``, a ``file://`` replay (a .jsonl recording or
    an ethereum-etl fixture folder). ``timeout``: seconds to connect and per read; ``limits``: the
    size cap and per-call deadline (default :data:`DEFAULT_LIMITS`). Any other scheme, and a bare path,
    is a UsageError (a path is never read unless it is written as a file:// URL)."""
    if url.startswith(("http://", "https://")):
        return RpcClient(HttpTransport(url, timeout=timeout, limits=limits), **kw)
    if url.startswith("file://") and allow_files:
        from fundtrail.ingest.evm.replay import ReplayTransport

        return RpcClient(ReplayTransport.open(url), **kw)
    what = "http://, https:// or file://" if allow_files else "http:// or https://"
    raise UsageError(f"--rpc must be an {what} URL, not {redact_url(url, keep_path=False)!r}")

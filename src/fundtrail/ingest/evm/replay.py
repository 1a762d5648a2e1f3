"""Replay transport: answers JSON-RPC requests from a recording instead of a node.

Two sources, usable together:

* a JSON-lines recording (``file:///path/rpc.jsonl``): one object a line,
  ``{"method": str, "params": [...], "result": ...}`` (or ``"error": {"code", "message"}`` instead of
  ``result``);
* an ethereum-etl fixture folder (``file:///path/dir``): files named
  ``web3_response.<method>_<params>.json`` holding a JSON-RPC response, the name built as ethereum-etl's
  MockWeb3Provider builds it (params joined by ``_``; dict params as sorted ``key_value``; values
  lower-cased).

Each request is matched by method + params alone (ids and batching do not matter; ``0x1A`` and ``0x1a``
hex quantities match). A request whose method the recording never has is answered with JSON-RPC error
-32601 (method not found), as a node without that method answers; a request for a recorded method with
params the recording lacks raises RpcError naming it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from fundtrail.errors import InputError, RpcError

METHOD_NOT_FOUND = -32601


def _canon(v: Any) -> Any:
    if isinstance(v, str):
        return v.lower()
    if isinstance(v, dict):
        return {k: _canon(x) for k, x in sorted(v.items())}
    if isinstance(v, list | tuple):
        return [_canon(x) for x in v]
    return v


def _key(method: str, params: Any) -> str:
    return method + " " + json.dumps(_canon(list(params or [])), sort_keys=True, separators=(",", ":"))


def etl_param_str(param: Any) -> str:
    """ethereum-etl's file-name form of one param."""
    if isinstance(param, dict):
        return "_".join(str(k) + "_" + etl_param_str(param[k]) for k in sorted(param))
    if isinstance(param, list | tuple):
        return "_".join(etl_param_str(x) for x in param)
    return str(param).lower()


def etl_file_name(method: str, params: Iterable[Any]) -> str:
    return "web3_response." + method + "_" + "_".join(etl_param_str(p) for p in params) + ".json"


class ReplayTransport:
    def __init__(self, sources: Iterable[Path | str]) -> None:
        self._answers: dict[str, dict[str, Any]] = {}
        self._dirs: list[Path] = []
        self._methods: set[str] = set()
        names: list[str] = []
        for s in sources:
            p = Path(s)
            names.append(str(p))
            if p.is_dir():
                self._dirs.append(p)
                for f in p.glob("web3_response.*.json"):
                    self._methods.add(f.name[len("web3_response."):].split("_", 1)[0])
            elif p.is_file():
                self._load_jsonl(p)
            else:
                raise InputError("no such recording (a .jsonl file or an ethereum-etl fixture folder)", path=p)
        self.url = "file://" + ",".join(names)
        self.served = 0

    @classmethod
    def open(cls, url: str) -> ReplayTransport:
        """From ``file:///a.jsonl`` (several paths may be joined with commas) or a plain path."""
        if url.startswith("file://"):
            path = unquote(urlparse(url).path)
        else:
            path = url
        return cls([p for p in path.split(",") if p])

    def _load_jsonl(self, path: Path) -> None:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    method = rec["method"]
                    params = rec.get("params") or []
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise InputError(f"not a recorded JSON-RPC call ({e})", path=path, line=lineno) from e
                if "result" not in rec and "error" not in rec:
                    raise InputError("recorded call has neither result nor error", path=path, line=lineno)
                ans = {"error": rec["error"]} if rec.get("error") is not None else {"result": rec.get("result")}
                self._answers[_key(method, params)] = ans
                self._methods.add(method)

    def _answer(self, method: str, params: list[Any]) -> dict[str, Any] | None:
        got = self._answers.get(_key(method, params))
        if got is not None:
            return got
        name = etl_file_name(method, params)
        for d in self._dirs:
            f = d / name
            if f.exists():
                data = json.loads(f.read_text())
                if isinstance(data, dict) and ("result" in data or "error" in data):
                    return {"error": data["error"]} if data.get("error") else {"result": data.get("result")}
                return {"result": data}
        return None

    def send(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for req in requests:
            method, params = req["method"], req.get("params") or []
            ans = self._answer(method, params)
            if ans is None:
                if method not in self._methods:
                    ans = {"error": {"code": METHOD_NOT_FOUND, "message": f"the method {method} does not exist/is "
                                     "not available (not in the recording)"}}
                else:
                    raise RpcError(f"the recording has no answer for params {json.dumps(params)[:300]}",
                                   url=self.url, method=method)
            self.served += 1
            out.append({"jsonrpc": "2.0", "id": req.get("id"), **ans})
        return out

    def close(self) -> None:
        pass


class RecordingTransport:
    """Wraps a transport and appends every answered call to a JSON-lines recording (for making replays)."""

    def __init__(self, inner: Any, path: Path | str) -> None:
        self.inner = inner
        self.url = inner.url
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def send(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        resps = self.inner.send(requests)
        by_id = {r.get("id"): r for r in resps}
        for req in requests:
            r = by_id.get(req.get("id"))
            if r is None:
                continue
            err = r.get("error")
            if err and err.get("code") != METHOD_NOT_FOUND and err.get("code") != -32601:
                continue  # transient errors are not part of a recording
            rec = {"method": req["method"], "params": req.get("params") or []}
            rec.update({"error": err} if err else {"result": r.get("result")})
            self._fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self._fh.flush()
        return resps

    def close(self) -> None:
        self._fh.close()
        self.inner.close()

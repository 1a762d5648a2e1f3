"""Hostile sources on 127.0.0.1 and a subprocess runner with memory, CPU and time limits, for the
regression tests of the security findings. Test helpers only (not production code)."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Seen:
    """What a hostile server received."""

    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    @property
    def auth_headers(self) -> list[str]:
        return [h.get("authorization", "") for _, _, h, _ in self.requests if h.get("authorization")]


Handler = Callable[[BaseHTTPRequestHandler, bytes, Seen], None]


@contextlib.contextmanager
def hostile_server(handle: Handler) -> Iterator[tuple[str, Seen]]:
    """A threaded HTTP/1.1 server on 127.0.0.1:<free port> whose answers ``handle(req, body, seen)``
    writes; yields (base URL, what it saw). Stopped on exit."""
    seen = Seen()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            n = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(n) if n else b""
            seen.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            try:
                handle(self, body, seen)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST = _any  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    finally:
        srv.shutdown()
        srv.server_close()


def chunked(req: BaseHTTPRequestHandler, status: int = 200, ctype: str = "application/json") -> Callable[[bytes], None]:
    req.send_response(status)
    req.send_header("content-type", ctype)
    req.send_header("transfer-encoding", "chunked")
    req.end_headers()

    def write(b: bytes) -> None:
        req.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
        req.wfile.flush()

    return write


def answer(req: BaseHTTPRequestHandler, body: bytes, status: int = 200, ctype: str = "application/json",
           headers: dict[str, str] | None = None) -> None:
    req.send_response(status)
    req.send_header("content-type", ctype)
    req.send_header("content-length", str(len(body)))
    for k, v in (headers or {}).items():
        req.send_header(k, v)
    req.end_headers()
    req.wfile.write(body)


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run_limited(args: list[str], *, memory_mb: int = 3072, cpu_s: int = 120, timeout: float = 120,
                env: dict[str, str] | None = None, fsize_mb: int | None = None) -> Ran:
    """``python -m fundtrail ARGS`` (or ``python -c`` when args[0] == '-c') in a subprocess under
    RLIMIT_AS / RLIMIT_CPU (and RLIMIT_FSIZE), killed after ``timeout`` seconds: a regression cannot take
    the test run (or the machine) down with it."""
    import time

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
        if fsize_mb is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_mb << 20, fsize_mb << 20))

    cmd = [sys.executable, *args] if args and args[0] == "-c" else [sys.executable, "-m", "fundtrail", *args]
    e = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + str(REPO), "COLUMNS": "200",
         **(env or {})}
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e,
                         preexec_fn=limits)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        err += f"\n[killed after {timeout} s]"
    return Ran(p.returncode, out, err, time.monotonic() - t0)

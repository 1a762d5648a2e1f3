"""Parse an untrusted file in a child process with a memory and CPU limit.

A tag file may be built to exhaust memory or CPU, or to crash the parser (the expat crash of finding 2).
With :class:`ParseLimits`, each file is read in a forked child whose address space may grow by at most
``memory_bytes`` and which may use ``cpu_seconds`` of CPU (``resource.setrlimit``); a wall-clock deadline
stops a child that sleeps. Whatever happens to the child, the parent goes on with the next file and reports
this one (:class:`IsolationError`). The result comes back pickled through a pipe.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fundtrail.errors import TagFileError


@dataclass(frozen=True, slots=True)
class ParseLimits:
    memory_bytes: int = 4 << 30  # growth of the address space over the parent's
    cpu_seconds: int = 300
    wall_factor: float = 3.0  # wall-clock deadline = cpu_seconds * wall_factor


class IsolationError(TagFileError):
    """The child reading a file was killed or ran out of its limits."""


def _vm_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _limit(which: int, soft: int, hard: int) -> None:
    """Lower a limit to (soft, hard), never above what the process already has (a hard limit can only
    go down)."""
    cur_soft, cur_hard = resource.getrlimit(which)
    if cur_hard != resource.RLIM_INFINITY:
        hard = min(hard, cur_hard)
        soft = min(soft, hard)
    if cur_soft != resource.RLIM_INFINITY:
        soft = min(soft, cur_soft)
    resource.setrlimit(which, (soft, hard))


def _child(conn: Any, limits: ParseLimits, fn: Callable[..., Any], args: tuple) -> None:
    try:
        cap = _vm_bytes() + limits.memory_bytes
        try:
            _limit(resource.RLIMIT_AS, cap, cap)
            _limit(resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 5)
            _limit(resource.RLIMIT_CORE, 0, 0)
            out: tuple[str, Any] = ("ok", fn(*args))
        except BaseException as e:  # noqa: BLE001 - everything goes back to the parent, which decides
            out = ("error", e)
        try:
            data = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # noqa: BLE001 - an unpicklable exception: send its text
            data = pickle.dumps(("error", RuntimeError(f"{type(out[1]).__name__}: {e}")))
        conn.send_bytes(data)
    finally:
        conn.close()
        os._exit(0)


def run_limited(fn: Callable[..., Any], args: tuple, limits: ParseLimits, *, path: str) -> Any:
    """``fn(*args)`` in a forked child under ``limits``; its exception is re-raised here, and a child that
    dies or overruns becomes an IsolationError naming ``path``."""
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, limits, fn, args), daemon=True)
    proc.start()
    send.close()
    try:
        if not recv.poll(limits.cpu_seconds * limits.wall_factor):
            proc.kill()
            raise IsolationError(f"reading took longer than {limits.cpu_seconds * limits.wall_factor:.0f} s: "
                                 "stopped", path=path)
        try:
            status, value = pickle.loads(recv.recv_bytes())
        except EOFError:
            proc.join(5)
            raise IsolationError(_death(proc.exitcode, limits), path=path) from None
    finally:
        recv.close()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if status == "error":
        if isinstance(value, MemoryError):
            raise IsolationError(f"reading needs more than {limits.memory_bytes >> 20} MiB: stopped", path=path)
        raise value
    return value


def _death(code: int | None, limits: ParseLimits) -> str:
    if code is not None and code < 0:
        sig = -code
        if sig in (signal.SIGXCPU, signal.SIGKILL):
            return f"reading used more than {limits.cpu_seconds} s of CPU: stopped"
        return f"the reader crashed (signal {signal.Signals(sig).name}); nothing was read from this file"
    return f"the reader ended without an answer (exit code {code})"

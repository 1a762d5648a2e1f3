"""The writer lease: one writer of a workspace at a time, for the whole of its read-decide-write run.

A writing command (ingest, tags import, cluster, incident, prices, compact, the service's own writes) takes
the lease before it reads the state it decides on and keeps it until its last commit. The lease is an
exclusive ``flock`` on ``HOME/lock``: the kernel releases it when the holder exits, however it exits
(SIGKILL included), so a crashed writer never leaves the workspace locked. Readers never take it.

While it holds the lease, the writer keeps a one-line JSON description of itself in the lock file (pid,
command line, purpose, since when), so that another writer that finds the workspace busy can say whom it
waits for. ``flock`` locks belong to an open file description: two threads (or two :class:`Workspace`
objects) of one process that each acquire the lease exclude each other like two processes do.

Use it through :meth:`fundtrail.store.workspace.Workspace.writer`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fundtrail.errors import LockedError, WorkspaceError, WriteFailedError

LOCK = "lock"


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds (or last held) a workspace's writer lease."""

    pid: int
    command: str
    purpose: str
    since: float  # Unix time the lease was taken
    host: str = ""

    def describe(self) -> str:
        when = datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        age = max(0.0, time.time() - self.since)
        what = f" ({self.purpose})" if self.purpose else ""
        return f"pid {self.pid}{what}: {self.command!r}, writing since {when} ({age:,.0f} s ago)"


def command_line() -> str:
    """The current process's command line, as a person would have typed it (for the lock file)."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(("__main__.py", "/fundtrail")):
        argv[0] = "fundtrail"
    return " ".join(argv)[:400]


def _open_lock(path: Path) -> int:
    """The lock file, opened without following a symlink planted at its name; created 0600."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise WorkspaceError(f"{path}: the workspace's lock file is a symbolic link: refusing to write "
                                 "through it (remove it)") from e
        why = " (the workspace is read-only: nothing was changed)" if e.errno in (errno.EROFS, errno.EACCES) else ""
        raise WriteFailedError(f"{path}: cannot open the workspace's lock file ({e.strerror}){why}") from e
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise WorkspaceError(f"{path}: the workspace's lock file is not a regular file")
    if st.st_mode & 0o077 and st.st_uid == os.getuid():
        os.fchmod(fd, 0o600)
    return fd


def _read_holder(fd: int) -> Holder | None:
    try:
        raw = os.pread(fd, 4096, 0)
        d = json.loads(raw.decode()) if raw.strip() else None
        if not isinstance(d, dict):
            return None
        return Holder(int(d["pid"]), str(d.get("command", "")), str(d.get("purpose", "")),
                      float(d.get("since", 0.0)), str(d.get("host", "")))
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None  # being rewritten right now, or written by something else


def holder(home: Path) -> Holder | None:
    """The description the current (or last) lease holder left in ``HOME/lock``, if readable."""
    try:
        fd = os.open(Path(home) / LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _read_holder(fd)
    finally:
        os.close(fd)


class WriterLease:
    """A held writer lease. :meth:`release` (or the holder's exit) gives it back."""

    def __init__(self, home: Path, fd: int, holder: Holder) -> None:
        self.home = home
        self.holder = holder
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the only descriptor of the open file releases the flock


def acquire(home: Path, *, wait: float | None = 0.0, purpose: str = "",
            on_wait: Callable[[Holder | None], None] | None = None) -> WriterLease:
    """Take the writer lease of the workspace at ``home``.

    ``wait``: seconds to wait for the current holder to finish (0: fail at once; None: wait as long as it
    takes). ``on_wait(holder)`` is called once when the lease is busy and the call is going to wait.
    Raises :class:`LockedError` naming the holder (pid, command, since when) when the wait runs out.
    """
    path = Path(home) / LOCK
    fd = _open_lock(path)
    deadline = None if wait is None else time.monotonic() + max(0.0, wait)
    delay = 0.01
    told = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    h = _read_holder(fd)
                    who = h.describe() if h else "a process that has not described itself yet"
                    waited = f" (waited {wait:g} s)" if wait else ""
                    raise LockedError(f"{home}: another fundtrail process is writing this workspace{waited}: "
                                      f"{who}. Run again when it has finished, or give --wait SECONDS") from None
                if not told and on_wait is not None:
                    on_wait(_read_holder(fd))
                    told = True
                time.sleep(delay if deadline is None else min(delay, max(0.0, deadline - now)))
                delay = min(delay * 2, 0.25)
        me = Holder(os.getpid(), command_line(), purpose, time.time(), socket.gethostname())
        data = json.dumps({"pid": me.pid, "command": me.command, "purpose": me.purpose, "since": me.since,
                           "host": me.host}).encode() + b"\n"
        with contextlib.suppress(OSError):  # a full disk must not keep a writer from (trying to) work
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        return WriterLease(Path(home), fd, me)
    except BaseException:
        os.close(fd)
        raise

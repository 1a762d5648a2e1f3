"""Reader pins: which committed generation each open reader reads, so writers keep the files it needs.

A commit replaces parts (a merge, ``compact``, a rollback) and lists the files it no longer needs under
``trash`` in the new manifest, with the generation that dropped them. A reader that loaded an older manifest
may still open those files, so each :class:`~fundtrail.store.workspace.Workspace` keeps a *pin*:
``HOME/readers/NAME``, holding the generation it reads and a shared ``flock`` for as long as it is open.
Writers delete a trashed file only when every live pin is at (or past) the generation that dropped it; a
pin whose reader died has no lock left and is removed by the next writer that looks. Readers never wait:
pins are only ever created, rewritten and removed, never waited for.

A pin is created under a hidden name, locked, then renamed to its final name, so a pin that a writer can
see is always already locked (a writer cannot mistake a reader that is just starting for a dead one).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from pathlib import Path

PINS = "readers"
UNKNOWN = -1  # a pin whose reader has not said yet which generation it reads: it may read any


class ReaderPin:
    """This reader's pin (see the module docstring). Best effort: where the workspace is not writable
    (a read-only mount, another user's workspace) the reader works without one."""

    def __init__(self, home: Path) -> None:
        self.path: Path | None = None
        self._fd: int | None = None
        d = home / PINS
        try:
            d.mkdir(mode=0o700, exist_ok=True)
            name = uuid.uuid4().hex
            hidden = d / f".{name}"
            fd = os.open(hidden, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_SH)
            os.rename(hidden, d / name)
        except OSError:
            return
        self._fd = fd
        self.path = d / name

    @property
    def name(self) -> str | None:
        return self.path.name if self.path is not None else None

    def set(self, generation: int) -> None:
        if self._fd is None:
            return
        data = str(int(generation)).encode()
        with contextlib.suppress(OSError):
            os.pwrite(self._fd, data.ljust(20), 0)  # fixed width: never a torn shorter number

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
        os.close(fd)


def oldest_pinned(home: Path, skip: str | None = None) -> int | None:
    """The oldest generation a live reader (other than the pin named ``skip``) reads: ``UNKNOWN`` when a
    reader has not said yet, None when there is no live reader. Pins of dead readers are removed."""
    d = home / PINS
    try:
        names = os.listdir(d)
    except OSError:
        return None
    oldest: int | None = None
    for name in names:
        if name == skip:
            continue
        p = d / name
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue  # gone meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raw = os.pread(fd, 32, 0).strip()
                try:
                    g = int(raw) if raw else UNKNOWN
                except ValueError:
                    g = UNKNOWN
                oldest = g if oldest is None else min(oldest, g)
                continue
            # nobody holds it: its reader is gone (hidden names: only once clearly abandoned)
            if not name.startswith(".") or time.time() - os.fstat(fd).st_mtime > 60:
                with contextlib.suppress(OSError):
                    p.unlink()
        finally:
            os.close(fd)
    return oldest

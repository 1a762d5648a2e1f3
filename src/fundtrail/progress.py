"""Progress reporting, behind a small interface so library code never prints.

Services take a ``Progress`` and call ``task(...)``; the CLI passes a terminal bar (rich) when stderr is a
terminal and plain log lines otherwise; tests and the API pass ``NullProgress``.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("fundtrail")


class Task(Protocol):
    def advance(self, n: float = 1, **figures: float) -> None: ...
    def note(self, message: str) -> None: ...
    def close(self) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: float | None = None, unit: str = "") -> Task: ...


class _NullTask:
    def advance(self, n: float = 1, **figures: float) -> None:
        pass

    def note(self, message: str) -> None:
        log.info(message)

    def close(self) -> None:
        pass


class NullProgress:
    def task(self, description: str, total: float | None = None, unit: str = "") -> Task:
        return _NullTask()

"""Renderers of a :class:`~fundtrail.report.model.Report`: ``table`` (rich text), ``json``, ``csv``, ``html``.

Each module has ``render(report) -> str``; none prints.
"""

from __future__ import annotations

from fundtrail.errors import UsageError
from fundtrail.report.model import Report

FORMATS = ("table", "json", "csv", "html")


def render(report: Report, fmt: str = "table", **options: object) -> str:
    if fmt == "table":
        from fundtrail.report.render import table as mod
    elif fmt == "json":
        from fundtrail.report.render import json as mod  # type: ignore[no-redef]
    elif fmt == "csv":
        from fundtrail.report.render import csv as mod  # type: ignore[no-redef]
    elif fmt == "html":
        from fundtrail.report.render import html as mod  # type: ignore[no-redef]
    else:
        raise UsageError(f"unknown report format {fmt!r} (one of: {', '.join(FORMATS)})")
    return mod.render(report, **options)  # type: ignore[arg-type]


__all__ = ["FORMATS", "render"]

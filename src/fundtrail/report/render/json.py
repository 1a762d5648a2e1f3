"""The report as JSON: the contract's trace JSON of the primary model at the top level (model, direction,
seeds, traced_amount, endpoints, unspent, mixers, bridges …), plus ``incident``, ``report`` (the
aggregates) and ``traces`` (the full trace JSON of every model)."""

from __future__ import annotations

import json

from fundtrail.report.model import Report


def render(report: Report, *, indent: int | None = 2) -> str:
    return json.dumps(report.to_json(), indent=indent, ensure_ascii=False, default=str) + "\n"

"""Progress lines off a terminal: each printed once, rates that are real figures."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from fundtrail.cli import common


@pytest.fixture
def lines(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(common, "err_console", Console(file=buf, width=200, force_terminal=False))
    clock = [1000.0]
    monkeypatch.setattr(common.time, "monotonic", lambda: clock[0])
    return buf, clock


def test_each_line_once_and_no_zero_rate(lines):
    buf, clock = lines
    with common.CliProgress() as p:
        t = p.task("ingest bitcoin blocks", total=462, unit="blocks")
        clock[0] += 3
        t.advance(400, MB=0.02)
        clock[0] += 3  # 6 s: a periodic line
        t.advance(62, MB=0.01)
        clock[0] += 30  # the close comes much later (a final commit): rates stay those of the work
        t.close()
        t.close()
        for _ in range(2):  # the same task run again with the same outcome (trace, once per model)
            r = p.task("trace", unit="rounds")
            r.advance(1)
            r.advance(1)
            r.close()
    out = buf.getvalue().splitlines()
    assert len(out) == len(set(out)) == 2, out
    assert out[0].startswith("ingest bitcoin blocks: 462/462 blocks (77.0 blocks/s, 0.005 MB/s)")
    assert out[1].startswith("trace: 2 rounds")
    assert "0.0 MB/s" not in buf.getvalue()

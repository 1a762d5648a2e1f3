"""Untrusted text on its way to a person: a terminal, a log line or a spreadsheet.

Tag labels, entity names, token symbols, RPC error messages and file names come from other people. They
must reach a console as the characters they are, never as instructions to it:

* :func:`strip_controls` drops C0 controls (except newline and tab), DEL, C1 controls (U+0080-U+009F,
  which some terminals obey like ESC sequences) and the bidirectional overrides and isolates
  (U+202A-U+202E, U+2066-U+2069) that make text display in another order than it reads;
* :class:`SafeConsole` is a rich console with markup and emoji codes off (``[link=…]``, ``[/]`` and
  ``:smile:`` in data print as they are written) that strips the controls above from every piece of text
  it renders, whatever path it took (a table cell, a ``Text``, a progress note);
* :func:`csv_cell` neutralises spreadsheet formulas (OWASP's rule, see docs/security.md): a cell that
  starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with ``'`` unless it is a
  plain number.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.segment import Segment

_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z")


def strip_controls(text: str) -> str:
    """``text`` without terminal controls, DEL, C1 controls and bidi overrides (newline and tab kept)."""
    return _CONTROLS.sub("", text)


def csv_cell(value: Any) -> Any:
    """A CSV cell value that a spreadsheet shows as text: strings starting with ``= + - @``, TAB or CR get
    a leading ``'`` (plain numbers such as ``-5`` or ``+1.5e3`` are left as numbers). Other types pass."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


class SafeConsole(Console):
    """A rich Console for untrusted text: no markup, no emoji codes, controls stripped from rendered text.

    Trusted styling is done with ``rich.text.Text`` (``Text.assemble(("error:", "bold red"), " ", msg)``),
    never by formatting data into markup."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        kwargs.setdefault("emoji", False)
        super().__init__(*args, **kwargs)

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        # the text of every non-control segment is data; control segments (cursor moves of a live display)
        # are rich's own
        return super()._render_buffer(
            Segment(strip_controls(s.text), s.style, s.control) if not s.control else s for s in buffer)


class SafeFormatter(logging.Formatter):
    """A logging formatter that strips terminal controls from the formatted line."""

    def format(self, record: logging.LogRecord) -> str:
        return strip_controls(super().format(record))

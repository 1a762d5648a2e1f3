"""XML readers that refuse DTDs: no DOCTYPE, no entity declaration, no external reference, ever.

Real OFAC files (SDN.XML, sdn_advanced.xml) carry no DTD. Refusing the DOCTYPE before expat processes
any declaration is what defusedxml's ``forbid_dtd=True`` does; it stops entity expansion bombs, external
entities (XXE) and the deep entity recursion that crashes the expat bundled with older Pythons
(CVE-2024-8176), whatever the expat version the interpreter links. Every XML reader of fundtrail goes
through :func:`parser` (streaming callbacks) or :func:`parse_tree` (an ElementTree).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import xml.parsers.expat
from pathlib import Path
from typing import Any

from fundtrail.errors import TagFileError


class _Forbidden(Exception):
    def __init__(self, what: str, line: int | None) -> None:
        super().__init__(what)
        self.what = what
        self.line = line


def parser(namespace_separator: str | None = None) -> Any:
    """An expat parser whose DOCTYPE, entity and external-reference handlers refuse the document."""
    p = xml.parsers.expat.ParserCreate(namespace_separator=namespace_separator)

    def refuse(what: str) -> Any:
        def handler(*_: Any) -> Any:
            raise _Forbidden(what, p.CurrentLineNumber)
        return handler

    p.StartDoctypeDeclHandler = refuse("a DOCTYPE (DTD)")
    p.EntityDeclHandler = refuse("an entity declaration")
    p.UnparsedEntityDeclHandler = refuse("an unparsed entity declaration")
    p.ExternalEntityRefHandler = refuse("an external entity reference")
    p.NotationDeclHandler = refuse("a notation declaration")
    p.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    return p


def parse_file(p: Any, path: Path) -> None:
    """Feed ``path`` to parser ``p``, translating refusals and syntax errors into TagFileError."""
    try:
        with open(path, "rb") as fh:
            p.ParseFile(fh)
    except _Forbidden as e:
        raise TagFileError(f"XML with {e.what} is refused (tag files never need a DTD)", path=path,
                           line=e.line) from None
    except xml.parsers.expat.ExpatError as e:
        raise TagFileError(f"not well-formed XML: {xml.parsers.expat.ErrorString(e.code)}", path=path,
                           line=e.lineno) from None


def parse_tree(path: Path) -> ET.Element:
    """The root element of ``path`` built through :func:`parser` (names as ``{namespace}local``)."""
    p = parser(namespace_separator="}")
    tb = ET.TreeBuilder()

    def name(n: str) -> str:
        return "{" + n if "}" in n else n

    p.StartElementHandler = lambda n, attrs: tb.start(name(n), {name(k): v for k, v in attrs.items()})
    p.EndElementHandler = lambda n: tb.end(name(n))
    p.CharacterDataHandler = tb.data
    p.buffer_text = True
    parse_file(p, path)
    return tb.close()

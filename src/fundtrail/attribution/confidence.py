"""Named confidence levels (GraphSense's definitions) and the numbers fundtrail stores (0..1).

The levels and their scores (0..100) are GraphSense's (tagpack-tool ``confidence.csv`` and its changelog:
``unknown`` 5, ``heuristic`` 10, ``ledger_immanent`` 100); fundtrail stores score / 100.
"""

from __future__ import annotations

CONFIDENCE_LEVELS: dict[str, int] = {
    "override": 100,  # creator knows the tag is representative for the whole cluster
    "ownership": 100,  # creator controls the address's private key
    "ledger_immanent": 100,  # follows from the ledger itself (e.g. a token's blacklist)
    "manual_transaction": 90,  # creator moved funds between known services
    "service_api": 70,  # from a trusted service provider's API
    "forensic_investigation": 70,
    "authority_data": 60,  # public authorities (e.g. OFAC, FBI)
    "trusted_provider": 50,
    "service_data": 50,  # published by the service itself (e.g. exchange reserve wallets)
    "forensic": 50,  # somewhat trusted reports (e.g. academic papers)
    "untrusted_transaction": 40,
    "web_crawl": 20,  # crawls of the web or other data dumps (e.g. Etherscan labels)
    "heuristic": 10,
    "unknown": 5,
}

#: The level fundtrail gives each kind of source when the source names none.
DEFAULT_LEVEL: dict[str, str] = {
    "ofac": "authority_data",
    "fbi": "authority_data",
    "etherscan": "web_crawl",
    "graphsense": "unknown",
    "csv": "unknown",
}


def level_value(name: str | None) -> float | None:
    """The number (0..1) of a named level, or None when the name is not a GraphSense level."""
    if name is None:
        return None
    v = CONFIDENCE_LEVELS.get(name.strip().lower())
    return None if v is None else v / 100.0


def parse_confidence(value: object) -> tuple[float | None, str | None]:
    """A confidence as written (a level name, 0..1, or 0..100) -> (number 0..1, level name or None)."""
    if value is None or value == "":
        return None, None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        v = float(value)
    else:
        t = str(value).strip()
        named = level_value(t)
        if named is not None:
            return named, t.lower()
        try:
            v = float(t)
        except ValueError:
            raise ValueError(f"confidence {value!r} is neither a number nor a GraphSense level "
                             f"({', '.join(CONFIDENCE_LEVELS)})") from None
    if v > 1.0:
        v = v / 100.0
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"confidence {value!r} is outside 0..1 (or 0..100)")
    return v, None

"""Amounts are integers in base units (satoshi, wei, token units); these format them for people."""

from __future__ import annotations

from decimal import Context, Decimal

_EXACT = Context(prec=200)


def format_units(amount: int, decimals: int) -> str:
    """``123456789, 8 -> '1.23456789'``: exact, never through a float."""
    sign = "-" if amount < 0 else ""
    a = abs(int(amount))
    if decimals <= 0:
        return f"{sign}{a}"
    whole, frac = divmod(a, 10**decimals)
    return f"{sign}{whole}.{frac:0{decimals}d}"


def parse_units(text: str, decimals: int) -> int:
    """``'1.5', 8 -> 150000000``; rejects more fractional digits than the asset has."""
    d = Decimal(text)
    scaled = d.scaleb(decimals, context=_EXACT)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{text} has more than {decimals} decimals")
    return int(scaled)

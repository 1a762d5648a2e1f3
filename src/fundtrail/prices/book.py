"""``PriceBook``: the USD price of an asset on a UTC day, from the ``prices`` table.

Lookup order for ``usd(chain, asset, symbol, when, amount, decimals)``:

1. ``CHAIN:ASSET`` (a token's contract address qualified by its chain, for tokens that share an address
   across chains but not a price);
2. ``ASSET`` (``BTC``, ``ETH``, or a token's lower-case contract address);
3. the token's ``SYMBOL`` (upper case), when the price list has a row for that symbol.

Only the price of that very day counts: no interpolation, no nearest day, no carrying forward. Where the
day has no price the answer is ``None`` (shown as null / "n/a"), never a guess.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal

from fundtrail.store import GLOBAL, Workspace

_NATIVES = {"BTC", "ETH"}


def asset_key(asset: str) -> str:
    """The form assets take in the ``prices`` table: contract addresses lower-case, symbols upper-case,
    ``chain:0x…`` keeps its chain."""
    a = asset.strip()
    if ":" in a:
        chain, rest = a.split(":", 1)
        return f"{chain.strip().lower()}:{asset_key(rest)}"
    return a.lower() if a.lower().startswith("0x") else a.upper()


def _day(when: date | datetime) -> date:
    if isinstance(when, datetime):
        return (when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)).date()
    return when


class PriceBook:
    """Daily USD prices in memory: ``{asset_key: {date: usd}}``."""

    def __init__(self, prices: dict[str, dict[date, float]] | None = None) -> None:
        self._p: dict[str, dict[date, float]] = prices or {}

    @classmethod
    def load(cls, ws: Workspace) -> PriceBook:
        t = ws.read("prices", GLOBAL, columns=["date", "asset", "usd"])
        return cls.from_rows(zip(t["date"].to_pylist(), t["asset"].to_pylist(), t["usd"].to_pylist(),
                                 strict=True))

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[date, str, float]]) -> PriceBook:
        p: dict[str, dict[date, float]] = {}
        for d, a, u in rows:
            if d is None or a is None or u is None:
                continue
            p.setdefault(asset_key(a), {})[d] = float(u)
        return cls(p)

    def __len__(self) -> int:
        return sum(len(v) for v in self._p.values())

    def assets(self) -> list[str]:
        return sorted(self._p)

    def _keys(self, chain: str | None, asset: str, symbol: str | None) -> list[str]:
        k = asset_key(asset)
        keys = []
        if chain and k not in _NATIVES:
            keys.append(f"{chain.lower()}:{k}")
        keys.append(k)
        if symbol:
            keys.append(symbol.strip().upper())
        return keys

    def price(self, chain: str | None, asset: str, symbol: str | None, when: date | datetime | None) -> float | None:
        """The USD price of one whole unit on ``when``'s UTC day, or None."""
        if when is None:
            return None
        day = _day(when)
        for k in self._keys(chain, asset, symbol):
            series = self._p.get(k)
            if series is not None and day in series:
                return series[day]
        return None

    def usd(self, chain: str | None, asset: str, symbol: str | None, when: date | datetime | None,
            amount: int, decimals: int) -> float | None:
        """USD value of ``amount`` base units at ``when``'s daily price, or None."""
        p = self.price(chain, asset, symbol, when)
        if p is None:
            return None
        value = Decimal(int(amount)).scaleb(-decimals) * Decimal(repr(p))
        return float(value)

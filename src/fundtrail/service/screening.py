"""The screening service: a loaded exposure index + a policy + prices -> verdicts (CLI and API alike)."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, replace
from typing import Any

from fundtrail.errors import FieldError
from fundtrail.exposure.index import ExposureIndex, Item, Profile, load_index
from fundtrail.incidents import parse_when
from fundtrail.model.address import normalize
from fundtrail.screen.policy import Policy
from fundtrail.screen.verdict import Verdict, screen_profile
from fundtrail.store import Workspace

MAX_BATCH = 1000
COMPARED = ("chain", "address", "entity", "cluster_id", "decision", "risk", "score", "exposure", "reasons", "policy",
            "as_of", "at")


def new_id(prefix: str) -> str:
    """A sortable unique id: time in microseconds (hex) and 6 random bytes."""
    t = int(dt.datetime.now(dt.UTC).timestamp() * 1_000_000)
    return f"{prefix}_{t:014x}{secrets.token_hex(6)}"


def load_prices(ws: Workspace) -> Any:
    try:
        from fundtrail.prices import PriceBook

        return PriceBook.load(ws)
    except Exception:  # noqa: BLE001 - no prices imported: USD values stay null
        return None


@dataclass(slots=True)
class Screener:
    index: ExposureIndex
    policy: Policy
    prices: Any = None

    @classmethod
    def open(cls, ws: Workspace, policy: Policy, version: int | None = None) -> Screener:
        return cls(load_index(ws, version), policy, load_prices(ws))

    def _usd(self, chain: str, asset: str, amount: int, decimals: int, at: dt.datetime) -> float | None:
        if self.prices is None:
            return None
        try:
            u = self.prices.usd(chain, asset, None, at, amount, decimals)
        except Exception:  # noqa: BLE001 - an unknown asset has no price
            return None
        return round(u, 2) if u is not None else None

    def _address(self, chain: str, address: str, field: str = "address") -> str:
        if not isinstance(chain, str) or not self.index.has_chain(chain):
            raise FieldError("chain", f"unknown chain {chain!r} (known: {', '.join(self.index.chains) or 'none'})")
        if not isinstance(address, str):
            raise FieldError(field, "must be a string")
        # an address the workspace holds exactly as given (or lower-cased: EVM, bech32) is valid: skip the
        # checksum work; anything else is validated and normalised
        cand = address.strip()
        for c in (cand, cand.lower()):
            if self.index.known(chain, c):
                return c
        try:
            return normalize(chain, address)
        except Exception as e:  # noqa: BLE001 - AddressError and friends: a bad field
            raise FieldError(field, f"{address!r} is not a valid {chain} address ({e})") from None

    @staticmethod
    def _at(time: str | dt.datetime | None) -> dt.datetime:
        if time is None:
            return dt.datetime.now(dt.UTC)
        try:
            at = parse_when(time, field="time")
        except Exception as e:  # noqa: BLE001
            raise FieldError("time", str(e)) from None
        assert at is not None
        return at

    def profile(self, chain: str, address: str) -> Profile:
        return self.index.profile(chain, self._address(chain, address))

    def screen_address(self, chain: str, address: str, *, time: str | dt.datetime | None = None,
                       vid: str | None = None) -> Verdict:
        p = self.profile(chain, address)
        return screen_profile(p, self.policy, at=self._at(time), as_of=self.index.as_of, usd=self._usd,
                              vid=vid or new_id("v"))

    def screen_transfer(self, req: dict[str, Any], *, vid: str | None = None) -> Verdict:
        """A received deposit is judged on its source (``counterparty``; without one, on what the address
        itself received); a withdrawal (``sent``) on its destination (``address``)."""
        chain = req.get("chain")
        direction = req.get("direction")
        if direction not in ("received", "sent"):
            raise FieldError("direction", "must be received or sent")
        address = self._address(chain, req.get("address"))
        cp = req.get("counterparty")
        counterparty = self._address(chain, cp, "counterparty") if cp else None
        at = self._at(req.get("time"))
        if direction == "received" and counterparty is not None:
            src = self.index.profile(chain, counterparty)
            # what the source received reaches us one hop later; the source itself is the direct counterparty
            items = tuple(replace(i, hops=i.hops + 1) for i in src.items if i.direction == "received")
            p = replace(src, items=items)
            judged = counterparty
        elif direction == "received":
            p0 = self.index.profile(chain, address)
            p = replace(p0, items=tuple(i for i in p0.items if i.direction == "received"))
            judged = address
        else:
            p = self.index.profile(chain, address)
            judged = address
        transfer = {"direction": direction, "address": address, "counterparty": counterparty,
                    "txid": req.get("txid"), "vout": req.get("vout"), "asset": req.get("asset"),
                    "amount": req.get("amount"), "time": req.get("time")}
        return screen_profile(p, self.policy, at=at, as_of=self.index.as_of, usd=self._usd,
                              vid=vid or new_id("v"), extra={"judged_address": judged, "transfer": transfer})


def replay(stored: dict[str, Any], index: ExposureIndex, policy: Policy, prices: Any = None) -> dict[str, Any]:
    """Recompute a stored verdict as of its own index version and policy version; say whether it matches."""
    s = Screener(index, policy, prices)
    t = stored.get("transfer")
    if t:
        req = dict(t)
        req["chain"] = stored["chain"]
        req["time"] = stored.get("at")
        v = s.screen_transfer(req, vid=stored["verdict_id"]).to_json()
    else:
        v = s.screen_address(stored["chain"], stored["address"], time=stored.get("at"),
                             vid=stored["verdict_id"]).to_json()
    diffs = [k for k in COMPARED if v.get(k) != stored.get(k)]
    return {"verdict_id": stored["verdict_id"], "matches": not diffs, "differences": diffs, "replayed": v,
            "original": stored}


def items_json(items: list[Item] | tuple[Item, ...]) -> list[dict[str, Any]]:
    return [{"direction": i.direction, "kind": i.kind, "category": i.group.category, "entity": i.group.entity,
             "country": i.group.country, "hops": i.hops, "asset": i.asset, "amount": i.amount_text(),
             "share": round(i.share, 6), "path": list(i.path), "sanctioned": i.group.sanctioned,
             "sanctioned_from": i.group.sanctioned_from.isoformat() if i.group.sanctioned_from else None,
             "sanctioned_to": i.group.sanctioned_to.isoformat() if i.group.sanctioned_to else None}
            for i in sorted(items, key=lambda i: (i.direction, i.hops, -i.share))]

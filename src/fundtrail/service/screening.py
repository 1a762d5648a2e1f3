"""The screening service: a loaded exposure index + a policy + prices -> verdicts (CLI and API alike)."""

from __future__ import annotations

import datetime as dt
import secrets
import time as _time
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
    return f"{prefix}_{_time.time_ns() // 1000:014x}{secrets.token_hex(6)}"


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
        return self._resolve(chain, address, field)[0]

    def _check_chain(self, chain: str) -> None:
        if not isinstance(chain, str) or not self.index.has_chain(chain):
            raise FieldError("chain", f"unknown chain {chain!r} (known: {', '.join(self.index.chains) or 'none'})")

    def _resolve(self, chain: str, address: str, field: str = "address",
                 hit: tuple[int | None, int | None] | None = None) -> tuple[str, tuple[int | None, int | None]]:
        """The address as the index knows it and its (id, cluster id). ``hit``: the lookup of the stripped
        address, when already made (a batch looks all up at once)."""
        self._check_chain(chain)
        if not isinstance(address, str):
            raise FieldError(field, "must be a string")
        # an address the workspace holds exactly as given (or lower-cased: EVM, bech32) is valid: skip the
        # checksum work; anything else is validated and normalised
        cand = address.strip()
        ids = hit if hit is not None else self.index.lookup_many(chain, [cand])[0]
        if ids[0] is not None:
            return cand, ids
        low = cand.lower()
        if low != cand:
            ids = self.index.lookup_many(chain, [low])[0]
            if ids[0] is not None:
                return low, ids
        try:
            a = normalize(chain, address)
        except Exception as e:  # noqa: BLE001 - AddressError and friends: a bad field
            raise FieldError(field, f"{address!r} is not a valid {chain} address ({e})") from None
        return a, (self.index.lookup_many(chain, [a])[0] if a not in (cand, low) else ids)

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
        a, ids = self._resolve(chain, address)
        return self.index.profile(chain, a, ids)

    def screen_address(self, chain: str, address: str, *, time: str | dt.datetime | None = None,
                       vid: str | None = None) -> Verdict:
        p = self.profile(chain, address)
        return screen_profile(p, self.policy, at=self._at(time), as_of=self.index.as_of, usd=self._usd,
                              vid=vid or new_id("v"))

    def screen_batch(self, items: list[tuple[str, str, str | None]]) -> list[Verdict]:
        """Verdicts of ``(chain, address, time)`` items: the addresses of each chain looked up in one search.
        A bad item raises a FieldError naming it (``items[3].address``)."""
        hits: list[tuple[int | None, int | None] | None] = [None] * len(items)
        by_chain: dict[str, list[int]] = {}
        for i, (chain, address, _t) in enumerate(items):
            if isinstance(chain, str) and isinstance(address, str) and self.index.has_chain(chain):
                by_chain.setdefault(chain, []).append(i)
        for chain, idx in by_chain.items():
            for i, h in zip(idx, self.index.lookup_many(chain, [items[i][1].strip() for i in idx]), strict=True):
                hits[i] = h
        out = []
        as_of = self.index.as_of
        now = self._at(None)
        for i, (chain, address, time) in enumerate(items):
            try:
                a, ids = self._resolve(chain, address, hit=hits[i])
                at = now if time is None else self._at(time)
            except FieldError as e:
                raise FieldError(f"items[{i}].{e.field}", str(e).split(": ", 1)[-1]) from None
            out.append(screen_profile(self.index.profile(chain, a, ids), self.policy, at=at, as_of=as_of,
                                      usd=self._usd, vid=new_id("v")))
        return out

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

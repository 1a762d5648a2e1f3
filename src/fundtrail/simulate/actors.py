"""The simulated world's cast: entities with invented names that keep their roles recognisable.

Everything here is synthetic. Names end in ``-sim`` so that no simulated record can be mistaken for a real
service; countries are ISO 3166 alpha-2 codes chosen to mirror the kinds of places stolen funds are
documented to reach (a no-KYC exchange in Russia, a Cambodian payment/exchange group, KYC exchanges in
the US and Singapore, an OTC desk).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Entity:
    id: str
    name: str
    category: str  # fundtrail taxonomy (attribution.taxonomy)
    country: str | None
    gs_category: str  # GraphSense TagPack category
    description: str = ""
    sanctioned: bool = False

    @property
    def display(self) -> str:
        return f"{self.name} ({self.country})" if self.country else self.name

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "category": self.category, "country": self.country,
                "sanctioned": self.sanctioned}


VICTIM = Entity("helix", "Helix Exchange-sim", "exchange", "AE", "exchange",
                "KYC exchange whose Ethereum hot wallet is drained (the theft victim)")
GARANTEX = Entity("garantex", "Garantex-sim", "exchange_nokyc", "RU", "exchange",
                  "no-KYC exchange, sanctioned (modelled on the role of a Russian no-KYC exchange)", True)
HUIONE = Entity("huione", "Huione-sim", "exchange_nokyc", "KH", "exchange",
                "no-KYC exchange and payment group (modelled on the role of a Cambodian guarantee market)")
NORTHWIND = Entity("northwind", "Northwind Exchange-sim", "exchange", "US", "exchange", "KYC exchange")
MERLION = Entity("merlion", "Merlion Exchange-sim", "exchange", "SG", "exchange", "KYC exchange")
YUANOTC = Entity("yuanotc", "Pearl River OTC-sim", "otc_desk", "CN", "otc", "OTC desk")
POOL = Entity("simpool", "SimPool-sim", "mining", None, "miner", "mining pool")
WABISABI = Entity("wabisabi", "WabiSabi-sim coordinator", "coinjoin_coordinator", None, "coinjoin",
                  "Wasabi-2-like CoinJoin coordinator (equal denominations, many participants)")
TORNADO = Entity("tornado", "TornadoSim-sim", "mixer", None, "mixing_service",
                 "fixed-denomination mixer pools (10 and 100 ETH), sanctioned", True)
DEX = Entity("simswap", "SimSwap-sim", "dex", None, "defi_dex", "Uniswap-v2-like ETH/stablecoin pair")
BRIDGE = Entity("simbridge", "SimBridge-sim", "bridge", None, "defi_bridge",
                "ETH <-> BTC bridge (contract on simeth, custody wallet on regtest)")
THIEF = Entity("lazarus", "Lazarus-sim", "theft_perpetrator", "KP", "perpetrator",
               "the thief: a group laundering the way North Korean groups were documented to", True)
TOKEN_ISSUER = Entity("simusd", "SimUSD-sim issuer", "other", None, "organization", "stablecoin issuer")

EXCHANGES = (VICTIM, GARANTEX, HUIONE, NORTHWIND, MERLION, YUANOTC)
ALL = (VICTIM, GARANTEX, HUIONE, NORTHWIND, MERLION, YUANOTC, POOL, WABISABI, TORNADO, DEX, BRIDGE, THIEF,
       TOKEN_ISSUER)
BY_ID = {e.id: e for e in ALL}

SERVICE_CATEGORIES = frozenset({"exchange", "exchange_nokyc", "otc_desk", "payment_processor", "gambling"})

"""fundtrail's category taxonomy, and how each source's categories map into it.

Every tag carries one ``category`` from :data:`CATEGORIES`; the source's own word is kept beside it in
``source_category``. docs/attribution.md explains each category and the mappings below.
"""

from __future__ import annotations

from collections.abc import Iterable

EXCHANGE = "exchange"
EXCHANGE_NOKYC = "exchange_nokyc"
OTC_DESK = "otc_desk"
PAYMENT_PROCESSOR = "payment_processor"
GAMBLING = "gambling"
MINING = "mining"
WALLET_SERVICE = "wallet_service"
MIXER = "mixer"
COINJOIN_COORDINATOR = "coinjoin_coordinator"
BRIDGE = "bridge"
DEX = "dex"
DEFI = "defi"
SANCTIONED = "sanctioned"
THEFT_PERPETRATOR = "theft_perpetrator"
THEFT_VICTIM = "theft_victim"
RANSOMWARE = "ransomware"
DARKNET_MARKET = "darknet_market"
SCAM = "scam"
OTHER = "other"

CATEGORIES: tuple[str, ...] = (
    EXCHANGE, EXCHANGE_NOKYC, OTC_DESK, PAYMENT_PROCESSOR, GAMBLING, MINING, WALLET_SERVICE, MIXER,
    COINJOIN_COORDINATOR, BRIDGE, DEX, DEFI, SANCTIONED, THEFT_PERPETRATOR, THEFT_VICTIM, RANSOMWARE,
    DARKNET_MARKET, SCAM, OTHER,
)

#: Where traces end: services that take deposits and can pay out in fiat or other assets.
SERVICE_CATEGORIES: frozenset[str] = frozenset({EXCHANGE, EXCHANGE_NOKYC, OTC_DESK, PAYMENT_PROCESSOR, GAMBLING})

#: Categories a trace passes through (funds keep moving on the other side).
PASS_THROUGH_CATEGORIES: frozenset[str] = frozenset({MIXER, COINJOIN_COORDINATOR, BRIDGE, DEX})

#: When one source gives several categories for one address (Etherscan's labels, an actor's list),
#: the most specific one is kept: the first of this order that is present.
SPECIFICITY: tuple[str, ...] = (
    SANCTIONED, THEFT_PERPETRATOR, RANSOMWARE, DARKNET_MARKET, SCAM, MIXER, COINJOIN_COORDINATOR,
    EXCHANGE_NOKYC, EXCHANGE, OTC_DESK, PAYMENT_PROCESSOR, GAMBLING, BRIDGE, DEX, DEFI, MINING,
    WALLET_SERVICE, THEFT_VICTIM, OTHER,
)
_RANK = {c: i for i, c in enumerate(SPECIFICITY)}

# --- GraphSense ---------------------------------------------------------------------------------------
#: GraphSense categories / concepts (INTERPOL Dark Web and Virtual Assets taxonomy, as used in TagPacks
#: and ActorPacks) -> fundtrail category. Words that say nothing about the role (user, organization,
#: service …) map to ``other``.
GRAPHSENSE_CATEGORY: dict[str, str] = {
    "exchange": EXCHANGE,
    "otc": OTC_DESK, "otc_broker": OTC_DESK, "otc_desk": OTC_DESK,
    "payment_processor": PAYMENT_PROCESSOR, "atm": PAYMENT_PROCESSOR,
    "gambling": GAMBLING,
    "miner": MINING, "mining_service": MINING, "mining_pool": MINING, "mining": MINING,
    "wallet_service": WALLET_SERVICE, "hosted_wallet": WALLET_SERVICE, "cold_wallet": WALLET_SERVICE,
    "mixing_service": MIXER, "mixer": MIXER,
    "coinjoin": COINJOIN_COORDINATOR,
    "defi_bridge": BRIDGE, "bridge": BRIDGE,
    "defi_dex": DEX, "dex": DEX,
    "defi": DEFI, "defi_lending": DEFI, "defi_derivative": DEFI, "defi_yield": DEFI, "index": DEFI,
    "market": DARKNET_MARKET, "dark_web": DARKNET_MARKET, "darknet_market": DARKNET_MARKET,
    "drugs": DARKNET_MARKET, "weapons": DARKNET_MARKET, "vendor": DARKNET_MARKET,
    "perpetrator": THEFT_PERPETRATOR, "hacker": THEFT_PERPETRATOR,
    # abuses that also appear as categories / concepts
    "ransomware": RANSOMWARE,
    "sanction": SANCTIONED, "sanctioned": SANCTIONED,
    "scam": SCAM, "phishing": SCAM, "sextortion": SCAM, "ponzi_scheme": SCAM, "pyramid_scheme": SCAM,
    "investment_fraud": SCAM, "social_engineering": SCAM, "fraud": SCAM,
    "service_hack": THEFT_PERPETRATOR, "hacking": THEFT_PERPETRATOR, "theft": THEFT_PERPETRATOR,
    # no role of their own
    "user": OTHER, "organization": OTHER, "service": OTHER, "black_list": OTHER, "shop": OTHER,
    "hosting": OTHER, "faucet": OTHER, "ico_wallet": OTHER, "collectible": OTHER, "donation": OTHER,
    "terrorism": OTHER, "bomb_threat": OTHER, "extremism": OTHER,
}

#: GraphSense ``abuse`` values -> fundtrail category (an abuse says what the address did wrong).
GRAPHSENSE_ABUSE: dict[str, str] = {
    "ransomware": RANSOMWARE, "sanction": SANCTIONED, "service_hack": THEFT_PERPETRATOR,
    "hacking": THEFT_PERPETRATOR, "phishing": SCAM, "scam": SCAM, "sextortion": SCAM, "ponzi_scheme": SCAM,
    "pyramid_scheme": SCAM, "investment_fraud": SCAM, "social_engineering": SCAM, "bomb_threat": OTHER,
    "terrorism": OTHER, "extremism": OTHER, "darkweb": DARKNET_MARKET, "dark_web": DARKNET_MARKET,
}

# --- Etherscan ---------------------------------------------------------------------------------------
_ETHERSCAN_EXCHANGES = {
    "abcc", "allbit", "ascendex", "bgogo", "binance", "binance-deposit", "bitcoin-suisse", "bitfinex",
    "bithumb", "bitmart", "bitmex", "bitstamp", "bittrex", "blockfi", "celsius-network", "changenow",
    "cobinhood", "coinbase", "coinbit", "coinhako", "coinlist", "coinmetro", "coinone", "coinsquare",
    "coss-io", "crex24", "crypto-com", "deribit", "digifinex", "ftx", "gate-io", "gemini", "hitbtc",
    "hoo-com", "hotbit", "huobi", "idex", "korbit", "kraken", "kryptono", "kucoin", "latoken", "lcx-ag",
    "nexo", "okx", "paribu", "poloniex", "quadrigacx", "remitano", "shapeshift", "tidex", "topbtc",
    "upbit", "yunbi", "zb-com", "exchange", "trade-io", "wirex", "bitpie", "maskex", "resfinex",
}
_ETHERSCAN_DEX = {
    "dex", "0x-protocol", "0x-protocol-ecosystem", "1inch", "airswap", "balancer", "bancor", "cow-protocol",
    "curve-fi", "dex-ag", "dydx", "kyberswap", "loopring", "pancakeswap", "paraswap", "sushiswap",
    "sudoswap", "switcheo", "tokenlon", "dutchx", "uniswap", "swipeswap", "saddle-finance",
}
_ETHERSCAN_BRIDGE = {
    "bridge", "bridged-token", "across-protocol", "celer-network", "connext", "hop-protocol", "multichain",
    "synapse", "wormhole", "optics", "layer-2", "arbitrum", "arbitrum-one", "arbitrum-nova", "optimism",
    "polygon-matic", "starknet", "scroll-network", "metis-andromeda", "omg-network", "ren", "avalanche",
}
_ETHERSCAN_DEFI = {
    "defi", "aave", "compound", "compound-governance", "maker", "maker-vault-owner", "yearn-finance", "lido",
    "rocket-pool", "synthetix", "convex-finance", "cream-finance", "idle-finance", "instadapp", "liquity",
    "mstable", "pooltogether", "rari-capital", "reflexer-finance", "set-protocol", "index-protocol",
    "alchemix-finance", "aura-finance", "enzyme-finance", "yield-farming", "vaults", "staking", "loans",
    "derivatives", "options-trading", "opyn", "insurance", "nexus-mutual", "fei-protocol", "olympusdao",
    "frax", "abracadabra-money", "gearbox-protocol", "ribbon-finance", "value-defi", "badger",
    "unit-protocol", "farming", "liquidity", "defi-saver",
}
ETHERSCAN_LABEL: dict[str, str] = {
    **{k: EXCHANGE for k in _ETHERSCAN_EXCHANGES},
    **{k: DEX for k in _ETHERSCAN_DEX},
    **{k: BRIDGE for k in _ETHERSCAN_BRIDGE},
    **{k: DEFI for k in _ETHERSCAN_DEFI},
    "otc": OTC_DESK, "payments": PAYMENT_PROCESSOR, "fiat-gateway": PAYMENT_PROCESSOR, "flexa": PAYMENT_PROCESSOR,
    "gambling": GAMBLING, "etheroll": GAMBLING, "fomo3d": GAMBLING, "zethr": GAMBLING,
    "mining": MINING, "f2pool": MINING, "miningpoolhub": MINING,
    "tornado-cash": MIXER, "ethereum-mixer": MIXER, "typhoon-cash": MIXER,
    "ofac-sanctions-lists": SANCTIONED,
    "phish-hack": SCAM, "fraud": SCAM, "spam-token": SCAM, "something-fishy": SCAM, "high-risk": OTHER,
    "exploit": THEFT_PERPETRATOR, "heist": THEFT_PERPETRATOR, "hack": THEFT_PERPETRATOR,
    "bancor-contract-vulnerability": THEFT_VICTIM, "parity-bug": THEFT_VICTIM,
    "wallet-app": WALLET_SERVICE, "metamask": WALLET_SERVICE, "myetherwallet": WALLET_SERVICE,
    "blocked": OTHER,
}

#: Etherscan labels that say the address is sanctioned.
ETHERSCAN_SANCTIONED: frozenset[str] = frozenset({"ofac-sanctions-lists"})


def most_specific(categories: Iterable[str | None]) -> str:
    """The most specific of several fundtrail categories (``other`` for none)."""
    best = OTHER
    for c in categories:
        if c is not None and _RANK.get(c, len(_RANK)) < _RANK[best]:
            best = c
    return best


def from_graphsense(category: str | None, abuse: str | None = None,
                    concepts: Iterable[str] | None = None) -> str:
    """A GraphSense tag's category, abuse and concepts -> one fundtrail category.

    The abuse wins when the category says nothing (``user``, none): an OFAC-listed "user" with abuse
    ``sanction`` is ``sanctioned``; an exchange that was hacked (category exchange, abuse service_hack)
    stays an exchange only when the tag is the exchange's; GraphSense puts the abuse on the perpetrator's
    addresses, so abuse wins over a generic category but not over a specific one.
    """
    cands = [GRAPHSENSE_CATEGORY.get(_norm(category)) if category else None]
    cands += [GRAPHSENSE_CATEGORY.get(_norm(c)) for c in concepts or ()]
    base = most_specific(c for c in cands if c)
    if abuse:
        a = GRAPHSENSE_ABUSE.get(_norm(abuse)) or GRAPHSENSE_CATEGORY.get(_norm(abuse))
        if a and (base == OTHER or _RANK[a] < _RANK[base]):
            return a
    return base


def from_etherscan(labels: Iterable[str]) -> str:
    return most_specific(ETHERSCAN_LABEL.get(lb) for lb in labels)


def normalize_category(text: str | None) -> tuple[str, str | None]:
    """A category written by a person (CSV) -> (fundtrail category, the original word if it differed)."""
    if text is None or not text.strip():
        return OTHER, None
    t = _norm(text)
    if t in CATEGORIES:
        return t, None
    aliases = {"exchange_no_kyc": EXCHANGE_NOKYC, "nokyc_exchange": EXCHANGE_NOKYC, "no_kyc_exchange": EXCHANGE_NOKYC,
               "otc": OTC_DESK, "coinjoin": COINJOIN_COORDINATOR, "theft": THEFT_PERPETRATOR,
               "hacker": THEFT_PERPETRATOR, "victim": THEFT_VICTIM, "darknet": DARKNET_MARKET,
               "mixing_service": MIXER}
    if t in aliases:
        return aliases[t], text
    if t in GRAPHSENSE_CATEGORY:
        return GRAPHSENSE_CATEGORY[t], text
    if t in ETHERSCAN_LABEL:
        return ETHERSCAN_LABEL[t], text
    return OTHER, text


def _norm(s: str) -> str:
    return s.strip().lower().replace("-", "_").replace(" ", "_")

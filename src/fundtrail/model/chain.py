"""Chains and their network parameters, always passed explicitly (never a process-wide setting)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from fundtrail.errors import NotFoundError, UsageError

ChainKind = Literal["utxo", "evm"]

# A chain name becomes a folder name in the workspace (tables/<table>/<chain>/) and a URL segment of the
# service: lower-case letters, digits, '_' and '-', starting with a letter or digit, at most 32 characters.
# ``\Z`` (not ``$``, which also matches before a trailing newline).
CHAIN_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}\Z")
GLOBAL_KEY = "_"  # the key of the tables that are not per chain (``fundtrail.store.GLOBAL``)


def check_chain_name(name: object) -> str:
    """``name`` if it is a valid chain name (see :data:`CHAIN_NAME`), else UsageError naming it."""
    if not isinstance(name, str) or CHAIN_NAME.match(name) is None:
        raise UsageError(f"invalid chain name {name!r}: use 1-32 lower-case letters, digits, '_' or '-', "
                         "starting with a letter or digit")
    return name


# the part key of one dataset of a global table (``fundtrail.attribution.history``): ``ds=`` and a sanitised name
DATASET_KEY = re.compile(r"ds=[A-Za-z0-9._=-]{1,240}\Z")


def check_chain_key(key: object) -> str:
    """What may become a path segment of the workspace: a chain name, the global key ``_`` or a dataset
    part key (``ds=…``); anything else is a UsageError."""
    if key == GLOBAL_KEY or (isinstance(key, str) and DATASET_KEY.match(key)):
        return key  # type: ignore[return-value]
    return check_chain_name(key)


@dataclass(frozen=True, slots=True)
class BitcoinNetwork:
    """Parameters of one Bitcoin network: block-file magic and address encodings."""

    name: str  # mainnet | testnet | testnet4 | signet | regtest
    chain: str  # the short chain name used in tables
    magic: bytes
    p2pkh_prefix: int
    p2sh_prefix: int
    hrp: str
    genesis_hash: str


MAINNET = BitcoinNetwork(
    "mainnet", "bitcoin", bytes.fromhex("f9beb4d9"), 0x00, 0x05, "bc",
    "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
)
TESTNET = BitcoinNetwork(
    "testnet", "testnet", bytes.fromhex("0b110907"), 0x6F, 0xC4, "tb",
    "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943",
)
TESTNET4 = BitcoinNetwork(
    "testnet4", "testnet4", bytes.fromhex("1c163f28"), 0x6F, 0xC4, "tb",
    "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043",
)
SIGNET = BitcoinNetwork(
    "signet", "signet", bytes.fromhex("0a03cf40"), 0x6F, 0xC4, "tb",
    "00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6",
)
REGTEST = BitcoinNetwork(
    "regtest", "regtest", bytes.fromhex("fabfb5da"), 0x6F, 0xC4, "bcrt",
    "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
)

BITCOIN_NETWORKS: dict[str, BitcoinNetwork] = {
    n.name: n for n in (MAINNET, TESTNET, TESTNET4, SIGNET, REGTEST)
}


def bitcoin_network(name: str) -> BitcoinNetwork:
    try:
        return BITCOIN_NETWORKS[name]
    except KeyError:
        raise NotFoundError(
            f"unknown Bitcoin network {name!r}; known: {', '.join(sorted(BITCOIN_NETWORKS))}"
        ) from None


def bitcoin_network_for_chain(chain: str) -> BitcoinNetwork:
    for n in BITCOIN_NETWORKS.values():
        if n.chain == chain:
            return n
    raise NotFoundError(f"{chain!r} is not a Bitcoin chain name")


# EVM chains we know by name; any other name is accepted with the id the node reports.
EVM_CHAIN_IDS: dict[str, int] = {
    "ethereum": 1,
    "optimism": 10,
    "bsc": 56,
    "polygon": 137,
    "base": 8453,
    "arbitrum": 42161,
    "avalanche": 43114,
    "sepolia": 11155111,
    "holesky": 17000,
    "anvil": 31337,
}

EVM_NATIVE_ASSET: dict[str, str] = {
    "bsc": "BNB",
    "polygon": "POL",
    "avalanche": "AVAX",
}


def evm_native_asset(chain: str) -> str:
    """The native asset's name in tables: ``ETH`` unless the chain has another native coin."""
    return EVM_NATIVE_ASSET.get(chain, "ETH")


def native_asset(chain: str, kind: ChainKind) -> str:
    return "BTC" if kind == "utxo" else evm_native_asset(chain)


def decimals_of_native(kind: ChainKind) -> int:
    return 8 if kind == "utxo" else 18

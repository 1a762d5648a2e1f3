"""The parameters of a simulated world: its two chains, its clock (day 0 = 2024-03-01), its stablecoin, and
the scales (how long, how busy, how much background traffic)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

UTXO_CHAIN = "regtest"
EVM_CHAIN = "simeth"
CHAIN_ID = 31337
T0 = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp())  # the world's day 0
DAY = 86400
HOUR = 3600
TOKEN_DECIMALS = 6
TOKEN_SYMBOL = "SIMUSD"


@dataclass(frozen=True, slots=True)
class Scale:
    days: int
    block_minutes: int  # Bitcoin block interval during the activity phase
    retail: int  # story-level ordinary Bitcoin users
    retail_tx_per_block: float
    evm_users: int
    evm_actions_per_tick: int  # random EVM user actions every 6 hours
    cj_participants: int  # clean participants of each CoinJoin round
    splits: int  # how many addresses the thief splits the Ethereum loot into
    peel_hops: int
    background_tx_per_block: int  # bulk ordinary traffic (background generator)
    background_users: int


SCALES: dict[str, Scale] = {
    "demo": Scale(60, 360, 40, 1.5, 16, 2, 9, 6, 6, 0, 0),
    "small": Scale(60, 60, 400, 3.0, 120, 6, 19, 10, 8, 240, 40_000),
    "large": Scale(60, 10, 2000, 1.0, 400, 12, 39, 16, 8, 1250, 400_000),
}

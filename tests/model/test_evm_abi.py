from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from fundtrail.model import evm_abi as abi
from tests.conftest import shared_path


def test_abi_round_trip():
    types = ["address", "uint256", "string", "bytes32", "address[]", "uint256[]", "bool"]
    vals = ["0x" + "ab" * 20, 2**200, "héllo", b"\x01" * 32, ["0x" + "01" * 20, "0x" + "02" * 20], [1, 2, 3], True]
    assert abi.decode(types, abi.encode(types, vals)) == vals
    assert abi.selector("transfer(address,uint256)").hex() == "a9059cbb"


@given(st.integers(0, 2**256 - 1), st.text(max_size=80), st.binary(max_size=70))
def test_abi_round_trip_any_values(n, text, raw):
    types = ["uint256", "string", "bytes"]
    assert abi.decode(types, abi.encode(types, [n, text, raw])) == [n, text, raw]


def test_standard_topics_and_selectors():
    assert abi.TRANSFER == "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
    assert abi.SWAP == "0xd78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822"  # Uniswap v2
    assert (abi.ERC20_SYMBOL, abi.ERC20_NAME, abi.ERC20_DECIMALS) == ("0x95d89b41", "0x06fdde03", "0x313ce567")


def test_real_mainnet_logs_carry_the_transfer_and_swap_topics():
    """Ethereum mainnet blocks 17173049-17173050 (ethereum-etl fixtures): WETH/token Transfers and
    Uniswap-v2 Swaps, whose ABI-encoded data decodes to the event's non-indexed fields."""
    p = shared_path("ethereum", "ethereum-etl_fixtures", "test_stream", "blocks_17173049_17173050",
                    "expected_logs.json")
    logs = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    transfers = [g for g in logs if g["topics"] and g["topics"][0] == abi.TRANSFER]
    swaps = [g for g in logs if g["topics"] and g["topics"][0] == abi.SWAP]
    assert transfers and swaps
    for g in transfers:
        if len(g["topics"]) == 3:  # ERC-20 (ERC-721 indexes the token id too)
            (value,) = abi.decode(["uint256"], bytes.fromhex(g["data"][2:]))
            assert value >= 0
    for g in swaps:
        amounts = abi.decode(["uint256"] * 4, bytes.fromhex(g["data"][2:]))
        assert len(amounts) == 4 and any(amounts)

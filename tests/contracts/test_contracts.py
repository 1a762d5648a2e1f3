from __future__ import annotations

import pytest

from fundtrail.contracts import abi, artifact_names, load_artifact
from fundtrail.contracts.anvil import find_anvil
from fundtrail.errors import NotFoundError


def test_artifacts_are_committed_with_the_agreed_events():
    assert {"TestUSDT", "MixerPool", "Bridge", "DexPair", "HotWallet", "Splitter", "Rejecter", "Factory",
            "Vault"} <= set(artifact_names())
    sigs = {
        "Bridge": ["BridgeDeposit(uint256,address,address,uint256,string,string)",
                   "BridgeRelease(uint256,address,address,uint256,string,string)"],
        "MixerPool": ["Deposit(bytes32,uint32,uint256)", "Withdrawal(address,bytes32,address,uint256)"],
        "DexPair": ["Swap(address,uint256,uint256,uint256,uint256,address)"],
        "TestUSDT": ["Transfer(address,address,uint256)"],
    }
    for name, events in sigs.items():
        art = load_artifact(name)
        assert art.bytecode.startswith("0x60") and len(art.bytecode) > 100
        for ev in events:
            assert art.event_topic(ev.split("(")[0]) == abi.event_topic(ev)
    assert abi.event_topic("Transfer(address,address,uint256)") == \
        "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
    with pytest.raises(NotFoundError):
        load_artifact("Nope")


def test_abi_round_trip():
    types = ["address", "uint256", "string", "bytes32", "address[]", "uint256[]", "bool"]
    vals = ["0x" + "ab" * 20, 2**200, "héllo", b"\x01" * 32, ["0x" + "01" * 20, "0x" + "02" * 20], [1, 2, 3], True]
    assert abi.decode(types, abi.encode(types, vals)) == vals
    assert abi.selector("transfer(address,uint256)").hex() == "a9059cbb"


@pytest.mark.node
def test_anvil_starts_deploys_and_stops():
    if find_anvil() is None:
        pytest.skip("anvil is not installed: run dev/setup")
    from fundtrail.contracts.anvil import start_anvil

    with start_anvil() as node:
        proc = node.process
        usdt = node.deploy("TestUSDT")
        assert node.view("TestUSDT", usdt, "decimals") == [6]
        assert node.view("TestUSDT", usdt, "symbol") == ["USDT"]
        assert int(node.call("eth_chainId"), 16) == 31337
    assert proc.poll() is not None

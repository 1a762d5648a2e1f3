from __future__ import annotations

import pytest

from fundtrail.errors import NotFoundError
from fundtrail.model import evm_abi as abi
from fundtrail.simulate.contracts import artifact_names, load_artifact
from fundtrail.simulate.contracts.anvil import find_anvil


def test_artifacts_are_committed_with_the_agreed_events():
    assert {"TestUSDT", "MixerPool", "Bridge", "DexPair", "HotWallet", "Splitter", "Rejecter", "Factory",
            "Vault"} <= set(artifact_names())
    # the contracts emit exactly the events the runtime decodes (fundtrail.model.evm_abi)
    sigs = {
        "Bridge": [(abi.BRIDGE_DEPOSIT_EVENT, abi.BRIDGE_DEPOSIT), (abi.BRIDGE_RELEASE_EVENT, abi.BRIDGE_RELEASE)],
        "MixerPool": [(abi.MIXER_DEPOSIT_EVENT, abi.MIXER_DEPOSIT), (abi.MIXER_WITHDRAWAL_EVENT, abi.MIXER_WITHDRAWAL)],
        "DexPair": [(abi.SWAP_EVENT, abi.SWAP)],
        "TestUSDT": [(abi.TRANSFER_EVENT, abi.TRANSFER)],
    }
    for name, events in sigs.items():
        art = load_artifact(name)
        assert art.bytecode.startswith("0x60") and len(art.bytecode) > 100
        for ev, topic in events:
            assert art.event_topic(ev.split("(")[0]) == topic
    with pytest.raises(NotFoundError):
        load_artifact("Nope")


@pytest.mark.node
def test_anvil_starts_deploys_and_stops():
    if find_anvil() is None:
        pytest.skip("anvil is not installed: run dev/setup")
    from fundtrail.simulate.contracts.anvil import start_anvil

    with start_anvil() as node:
        proc = node.process
        usdt = node.deploy("TestUSDT")
        assert node.view("TestUSDT", usdt, "decimals") == [6]
        assert node.view("TestUSDT", usdt, "symbol") == ["USDT"]
        assert int(node.call("eth_chainId"), 16) == 31337
    assert proc.poll() is not None

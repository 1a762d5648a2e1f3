from __future__ import annotations

import pytest

from fundtrail.simulate.contracts.anvil import find_anvil


@pytest.fixture(scope="module")
def anvil():
    if find_anvil() is None:
        pytest.skip("anvil is not installed: run dev/setup (npm installs @foundry-rs/anvil-linux-amd64 under dev/node)")
    from fundtrail.simulate.contracts.anvil import start_anvil

    with start_anvil() as node:
        yield node

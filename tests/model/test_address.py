from __future__ import annotations

import pytest

from fundtrail.errors import AddressError
from fundtrail.model import address as A
from fundtrail.model.chain import MAINNET, TESTNET


@pytest.mark.parametrize("addr,kind", [
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "p2pkh"),
    ("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", "p2sh"),
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "p2wpkh"),
    ("bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3", "p2wsh"),
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0", "p2tr"),
])
def test_bip_vectors_decode(addr, kind):
    assert A.bitcoin_address_kind(addr, MAINNET) == kind


def test_bech32_and_bech32m_are_not_interchangeable():
    # BIP-350: a v1 program with a bech32 (not bech32m) checksum is invalid
    with pytest.raises(AddressError):
        A.normalize("bitcoin", "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7k7grplx")


def test_wrong_network_and_bad_checksum_are_rejected():
    with pytest.raises(AddressError, match="tb"):
        A.bitcoin_address_kind("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", TESTNET)
    with pytest.raises(AddressError, match="checksum"):
        A.normalize("bitcoin", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb")


def test_eip55():
    good = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    assert A.eip55(good.lower()) == good
    assert A.normalize("ethereum", good) == good.lower()
    with pytest.raises(AddressError, match="EIP-55"):
        A.normalize("ethereum", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD")

"""Incidents: validation per chain, storage in the workspace, lookup."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fundtrail.errors import AddressError, NotFoundError, UsageError
from fundtrail.incidents import create_incident, delete_incident, get_incident, list_incidents
from fundtrail.model.address import eip55
from fundtrail.store import Workspace

BTC_A = "bc1qdc6qh88lkdaf3899gnntk7q293ufq8flalcz86"
BTC_B = "112D2adLM3UKy4Z4giRbReR6gjWuvHUqB"
ETH_MIXED = "0x7521D1CAdBCFa91Eec65Aa16715b94FfC1c9654b"
TXID = "ab" * 32


def test_create_get_list_roundtrip(home):
    ws = Workspace(home)
    inc = create_incident(ws, "bybit-2025", ["bitcoin", "ethereum"],
                          addresses=[BTC_A.upper(), BTC_B, ETH_MIXED], txids=[f"bitcoin:{TXID}:1"],
                          actor="lazarus", since="2025-02-21")
    assert inc.chains == ("bitcoin", "ethereum")
    # bech32 stored lower-case, EVM lower-case, each on the chain it is valid for
    assert [(s.chain, s.address) for s in inc.seeds if s.address] == [
        ("bitcoin", BTC_A), ("bitcoin", BTC_B), ("ethereum", ETH_MIXED.lower())]
    tx = [s for s in inc.seeds if s.txid][0]
    assert (tx.chain, tx.txid, tx.n) == ("bitcoin", TXID, 1)
    assert inc.since == datetime(2025, 2, 21, tzinfo=UTC)

    again = get_incident(Workspace(home), "bybit-2025")
    assert again == inc
    create_incident(ws, "second", "ethereum", txids=["0x" + "CD" * 32])
    assert [i.name for i in list_incidents(ws)] == ["bybit-2025", "second"]
    assert get_incident(ws, "second").seeds[0].txid == "0x" + "cd" * 32
    # visible to SQL too
    assert ws.query("SELECT count(*) AS n FROM incidents").to_pylist() == [{"n": 2}]


def test_bad_eip55_checksum_is_rejected(home):
    bad = ETH_MIXED[:-1] + ("B" if ETH_MIXED[-1] == "b" else "b")
    assert eip55(bad) != bad
    with pytest.raises(AddressError, match="EIP-55"):
        create_incident(Workspace(home), "x", "ethereum", addresses=[bad])


def test_address_on_wrong_chain_is_rejected(home):
    with pytest.raises(AddressError):
        create_incident(Workspace(home), "x", "testnet", addresses=[BTC_A])  # mainnet hrp on testnet
    with pytest.raises(AddressError):
        create_incident(Workspace(home), "x", "ethereum", addresses=[BTC_A])


def test_ambiguous_and_missing_inputs(home):
    ws = Workspace(home)
    with pytest.raises(UsageError, match="several"):
        create_incident(ws, "x", ["ethereum", "arbitrum"], addresses=[ETH_MIXED])
    inc = create_incident(ws, "x", ["ethereum", "arbitrum"], addresses=[f"arbitrum:{ETH_MIXED}"])
    assert inc.seeds[0].chain == "arbitrum"
    with pytest.raises(UsageError, match="at least one seed"):
        create_incident(ws, "y", "bitcoin")
    with pytest.raises(UsageError, match="64-hex"):
        create_incident(ws, "y", "bitcoin", txids=["abc"])
    with pytest.raises(UsageError, match="UTXO"):
        create_incident(ws, "y", "ethereum", txids=[TXID + ":0"])
    with pytest.raises(UsageError, match="not a date"):
        create_incident(ws, "y", "bitcoin", addresses=[BTC_A], since="yesterday")
    with pytest.raises(UsageError, match="name"):
        create_incident(ws, "bad name", "bitcoin", addresses=[BTC_A])


def test_duplicate_replace_delete(home):
    ws = Workspace(home)
    create_incident(ws, "a", "bitcoin", addresses=[BTC_A])
    with pytest.raises(UsageError, match="already exists"):
        create_incident(ws, "a", "bitcoin", addresses=[BTC_B])
    create_incident(ws, "a", "bitcoin", addresses=[BTC_B], replace=True)
    assert get_incident(ws, "a").addresses == (BTC_B,)
    delete_incident(ws, "a")
    with pytest.raises(NotFoundError, match="no incident"):
        get_incident(ws, "a")
    assert list_incidents(ws) == []

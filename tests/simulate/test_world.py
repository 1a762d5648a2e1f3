"""The simulator: deterministic worlds, block files that pass an independent consistency check
(python-bitcoinlib), and a ground truth that is self-consistent."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
from bitcoin.core import CBlock, b2lx
from bitcoin.core.serialize import Hash

from fundtrail.model.address import b58check_encode, segwit_encode
from fundtrail.model.chain import REGTEST
from fundtrail.simulate.world import simulate


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo-world")
    simulate(out, "demo", 7)
    return out


def _digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_same_seed_same_bytes(world: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    simulate(again, "demo", 7)
    assert _digest(world) == _digest(again)
    other = tmp_path / "other"
    simulate(other, "demo", 8)
    assert _digest(other)["bitcoin/blocks/blk00000.dat"] != _digest(world)["bitcoin/blocks/blk00000.dat"]


def _blocks(path: Path) -> list[CBlock]:
    data = path.read_bytes()
    pos = 0
    blocks = []
    while pos < len(data):
        assert data[pos:pos + 4] == REGTEST.magic, f"bad magic at offset {pos}"
        (size,) = struct.unpack_from("<I", data, pos + 4)
        raw = data[pos + 8:pos + 8 + size]
        assert len(raw) == size, "truncated record"
        blk = CBlock.deserialize(raw)
        assert blk.serialize() == raw  # the whole record is one block, nothing left over
        blocks.append(blk)
        pos += 8 + size
    return blocks


def _address(script: bytes) -> str | None:
    if script[:3] == b"\x76\xa9\x14" and script[-2:] == b"\x88\xac" and len(script) == 25:
        return b58check_encode(REGTEST.p2pkh_prefix, script[3:23])
    if script[:2] == b"\xa9\x14" and len(script) == 23:
        return b58check_encode(REGTEST.p2sh_prefix, script[2:22])
    if script[:2] == b"\x00\x14" and len(script) == 22:
        return segwit_encode(REGTEST.hrp, 0, script[2:])
    if script[:2] == b"\x00\x20" and len(script) == 34:
        return segwit_encode(REGTEST.hrp, 0, script[2:])
    if script[:2] == b"\x51\x20" and len(script) == 34:
        return segwit_encode(REGTEST.hrp, 1, script[2:])
    return None


def test_block_files_pass_an_independent_check(world: Path) -> None:
    files = sorted((world / "bitcoin" / "blocks").glob("blk*.dat"))
    assert files
    blocks = [b for f in files for b in _blocks(f)]
    assert b2lx(blocks[0].GetHash()) == REGTEST.genesis_hash
    truth = json.loads((world / "truth.json").read_text())
    owners = truth["owners"]["regtest"]
    utxo: dict[tuple[bytes, int], int] = {}
    prev_hash = None
    prev_time = 0
    for height, blk in enumerate(blocks):
        if prev_hash is not None:
            assert blk.hashPrevBlock == prev_hash, f"block {height} does not chain"
            assert blk.nTime > prev_time
        prev_hash, prev_time = blk.GetHash(), blk.nTime
        assert blk.calc_merkle_root() == blk.hashMerkleRoot, f"merkle root of block {height}"
        fees = 0
        for i, tx in enumerate(blk.vtx):
            txid = tx.GetTxid()
            assert txid == Hash(tx.serialize({"include_witness": False})), "txid = sha256d(no-witness)"
            if i == 0:
                assert tx.is_coinbase()
                if height > 0:  # BIP34: the height leads the coinbase script
                    sig = bytes(tx.vin[0].scriptSig)
                    if height <= 16:
                        assert sig[0] == 0x50 + height
                    else:
                        n = sig[0]
                        assert int.from_bytes(sig[1:1 + n], "little") == height
                continue
            total_in = 0
            for txin in tx.vin:
                key = (bytes(txin.prevout.hash), txin.prevout.n)
                assert key in utxo, f"block {height} tx {b2lx(txid)} spends a missing or spent output"
                total_in += utxo.pop(key)
            total_out = sum(o.nValue for o in tx.vout)
            assert total_out <= total_in, "values conserved (outputs never exceed inputs)"
            fees += total_in - total_out
            for n, o in enumerate(tx.vout):
                if o.nValue or not bytes(o.scriptPubKey).startswith(b"\x6a"):
                    utxo[(bytes(txid), n)] = o.nValue
                a = _address(bytes(o.scriptPubKey))
                if a is not None and height > 0:
                    assert a in owners or truth.get("owners_file"), f"{a} has no owner in the truth"
        cb = blk.vtx[0]
        if height > 0:
            subsidy = (50 * 100_000_000) >> (height // 150)
            assert sum(o.nValue for o in cb.vout) == subsidy + fees
        for n, o in enumerate(cb.vout):
            if not bytes(o.scriptPubKey).startswith(b"\x6a"):
                utxo[(bytes(cb.GetTxid()), n)] = o.nValue


def test_truth_is_self_consistent(world: Path) -> None:
    t = json.loads((world / "truth.json").read_text())
    assert t["synthetic"] is True
    assert t["chains"] == {"utxo": "regtest", "evm": "simeth"}
    stolen = {(s["chain"], s["asset"]): int(s["amount"]) for s in t["theft"]["stolen"]}
    for model in ("haircut", "fifo", "poison"):
        exp = t["expected"][model]
        for row in exp["conservation"]:
            if model != "poison":
                assert row["balanced"], (model, row)
        traced = {(r["chain"], r["asset"]): int(r["amount"]) for r in exp["traced"]}
        for k, v in stolen.items():
            assert traced[k] >= v
        cats = {e["category"] for e in exp["endpoints"]}
        assert "mixer" in cats and ({"exchange", "exchange_nokyc"} & cats)
        countries = {e["country"] for e in exp["endpoints"] if e["category"] != "mixer"}
        assert {"RU", "KH"} <= countries
        assert exp["unspent"], "part of the funds stays dormant"
        assert exp["max_hops"] < t["expected"]["params"]["max_hops"]
    # haircut never exceeds poison, per endpoint
    hp = {(e["entity"], e["chain"], e["asset"]): int(e["amount"]) for e in t["expected"]["poison"]["endpoints"]}
    for e in t["expected"]["haircut"]["endpoints"]:
        assert int(e["amount"]) <= hp[(e["entity"], e["chain"], e["asset"])]
    # the stolen ETH and tokens are fully accounted for (haircut): endpoints + mixers + unspent + fees + crossed
    for row in t["expected"]["haircut"]["conservation"]:
        if row["chain"] == "simeth":
            total = sum(int(row[k]) for k in ("endpoints", "mixers", "unspent", "fees", "crossed_out"))
            assert total == int(row["traced"])
    # every owner id is an entity or a user
    ents = {e["id"] for e in t["entities"]}
    for chain, owners in t["owners"].items():
        for a, o in owners.items():
            assert o in ents or o.startswith("user:"), (chain, a, o)
    # deposit addresses are not tagged
    tags = "".join(p.read_text() for p in (world / "tags").glob("*.yaml"))
    deposits = t["deposit_addresses"]["regtest"] + t["deposit_addresses"]["simeth"]
    assert deposits
    assert not [a for a in deposits if a in tags]
    # every deposit address that received funds was swept with a hot-wallet input (co-spend visible)
    in_groups = {a for g in t["clusters"]["regtest"] for a in g}
    received = {a for a in t["deposit_addresses"]["regtest"] if a in t["owners"]["regtest"]}
    assert len(received & in_groups) >= 0.8 * len(received)


def test_theft_flows_cross_chains(world: Path) -> None:
    t = json.loads((world / "truth.json").read_text())
    steps = {f["step"] for f in t["flows"]}
    assert {"theft", "split", "swap", "mixer_deposit", "bridge_deposit", "coinjoin", "peel",
            "exchange_deposit", "dormant"} <= steps
    rel = t["bridge_releases"]
    assert rel and all(r["txid"] for r in rel.values())
    assert t["coinjoin_txids"]

"""Ingestion from a real local node (anvil) against the laundering scenario's own record of what it moved."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fundtrail.errors import ChainMismatchError
from fundtrail.ingest.evm.service import ingest_evm
from fundtrail.simulate.contracts.scenario import play
from fundtrail.store import Workspace
from fundtrail.store import schema as S

pytestmark = pytest.mark.node
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def scenario(anvil):
    return play(anvil)


def _transfers(ws: Workspace) -> collections.Counter:
    rows = ws.query("SELECT txid, kind, from_address, to_address, asset, amount FROM transfers "
                    "WHERE chain = 'anvil' AND kind <> 'fee'").to_pylist()
    return collections.Counter((r["txid"], r["kind"], r["from_address"], r["to_address"], r["asset"],
                                int(r["amount"])) for r in rows)


@pytest.mark.parametrize("method", ["debug", "trace"])
def test_every_scenario_transfer_to_the_wei(tmp_path, anvil, scenario, method):
    ws = Workspace(tmp_path / method)
    st = ingest_evm(ws, anvil.url, "anvil", trace_method=method, batch_blocks=7)
    assert st.trace_method == method and st.chain_id == 31337
    expected = collections.Counter((e.txid, e.kind, e.frm, e.to, e.asset, e.amount) for e in scenario.expected)
    got = _transfers(ws)
    assert got - expected == collections.Counter(), "transfers the scenario did not make"
    assert expected - got == collections.Counter(), "transfers the scenario made that were not ingested"
    kinds = {k[1] for k in got}
    assert {"call", "internal", "create", "selfdestruct", "token"} <= kinds
    # reverted transactions: no value moved, but the fee was paid
    for txid in scenario.reverted:
        rows = ws.query(f"SELECT kind FROM transfers WHERE txid = '{txid}'").column("kind").to_pylist()
        assert rows == ["fee"]
        assert ws.query(f"SELECT status FROM transactions WHERE txid = '{txid}'").column(0).to_pylist() == [0]


def test_auto_detects_a_trace_method(tmp_path, anvil, scenario):
    ws = Workspace(tmp_path)
    st = ingest_evm(ws, anvil.url, "anvil")
    assert st.trace_method in ("debug", "trace")
    assert ws.chain("anvil")["tip_height"] == anvil.block_number()


def test_balances_reconcile_with_the_node(tmp_path, anvil, scenario):
    """Every address's ETH balance change over the ingested blocks equals its ingested net flow, fees
    included (checked against eth_getBalance, independently of the traces)."""
    ws = Workspace(tmp_path)
    ingest_evm(ws, anvil.url, "anvil", end=scenario.last_block)
    first, last = scenario.first_block, scenario.last_block
    flows = ws.query(f"""
        SELECT address, sum(delta) AS net FROM (
          SELECT to_address AS address, amount AS delta FROM transfers WHERE asset = 'ETH' AND to_address IS NOT NULL
            AND height BETWEEN {first} AND {last}
          UNION ALL
          SELECT from_address, -amount FROM transfers WHERE asset = 'ETH' AND from_address IS NOT NULL
            AND height BETWEEN {first} AND {last}
        ) GROUP BY address""").to_pylist()
    miner = ws.query("SELECT DISTINCT miner FROM evm_blocks").column(0).to_pylist()
    checked = 0
    for r in flows:
        if r["address"] in miner:
            continue  # receives priority fees outside transfers
        before = anvil.balance(r["address"], first - 1)
        after = anvil.balance(r["address"], last)
        assert after - before == int(r["net"]), r["address"]
        checked += 1
    assert checked >= 15
    # token balances: balanceOf equals the net of token transfers
    usdt = scenario.contracts["usdt"]
    for who in (scenario.roles["thief"], scenario.roles["cashout"], scenario.contracts["pair"]):
        net = ws.query(f"""SELECT coalesce(sum(CASE WHEN to_address = '{who}' THEN amount ELSE 0 END)
                          - sum(CASE WHEN from_address = '{who}' THEN amount ELSE 0 END), 0) FROM transfers
                          WHERE asset = '{usdt}'""").column(0).to_pylist()[0]
        assert anvil.view("TestUSDT", usdt, "balanceOf", who)[0] == int(net)


def test_tables_and_tokens(tmp_path, anvil, scenario):
    ws = Workspace(tmp_path)
    ingest_evm(ws, anvil.url, "anvil")
    tok = ws.read("tokens", "anvil").to_pylist()
    assert tok == [{"chain": "anvil", "address": scenario.contracts["usdt"], "symbol": "USDT",
                    "name": "Test Tether USD (fundtrail test token)", "decimals": 6, "status": "ok",
                    "first_height": tok[0]["first_height"]}]
    # fee = gas_used * effective_gas_price, from the receipt
    for r in ws.query("SELECT txid, fee, gas_used, effective_gas_price FROM evm_transactions").to_pylist():
        assert int(r["fee"]) == r["gas_used"] * int(r["effective_gas_price"])
    n = ws.query("SELECT count(*) FROM evm_logs WHERE topic0 = "
                 "'0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef'").column(0)[0].as_py()
    assert n == sum(1 for e in scenario.expected if e.kind == "token")
    # lower-case addresses everywhere
    for a in ws.query("SELECT address FROM addresses WHERE chain = 'anvil'").column(0).to_pylist():
        assert a == a.lower() and a.startswith("0x") and len(a) == 42


def test_resume_and_chain_id_check(tmp_path, anvil, scenario):
    ws = Workspace(tmp_path)
    st1 = ingest_evm(ws, anvil.url, "anvil", end=10)
    assert (st1.first_height, st1.last_height) == (0, 10)
    st2 = ingest_evm(ws, anvil.url, "anvil")
    assert st2.first_height == 11 and st2.last_height == anvil.block_number()
    st3 = ingest_evm(ws, anvil.url, "anvil")
    assert st3.blocks == 0
    whole = Workspace(tmp_path / "whole")
    ingest_evm(whole, anvil.url, "anvil")
    assert _transfers(ws) == _transfers(whole)
    with pytest.raises(ChainMismatchError):
        ingest_evm(Workspace(tmp_path / "x"), anvil.url, "ethereum")


def test_reorg_rolls_back_to_the_fork(tmp_path, anvil, scenario):
    ws = Workspace(tmp_path)
    a = anvil.accounts
    snap = anvil.call("evm_snapshot")
    base = anvil.block_number()
    for _ in range(3):
        anvil.send(a[5], a[6], value=10**15, gas=21_000)
    ingest_evm(ws, anvil.url, "anvil")
    old_tip = ws.chain("anvil")["tip_hash"]
    anvil.call("evm_revert", [snap])
    for _ in range(5):  # a longer, different branch from the fork point
        anvil.send(a[5], a[7], value=2 * 10**15, gas=21_000)
    st = ingest_evm(ws, anvil.url, "anvil")
    assert st.reorgs == 1 and st.rolled_back_blocks == 3
    assert ws.chain("anvil")["tip_height"] == base + 5 and ws.chain("anvil")["tip_hash"] != old_tip
    hashes = ws.query(f"SELECT height, hash FROM blocks WHERE chain='anvil' AND height > {base} ORDER BY 1").to_pylist()
    for r in hashes:
        assert anvil.call("eth_getBlockByNumber", [hex(r["height"]), False])["hash"] == r["hash"]
    assert len(hashes) == 5
    assert ws.query(f"SELECT count(*) FROM transfers WHERE chain='anvil' AND height > {base} AND "
                    f"to_address = '{a[6]}'").column(0)[0].as_py() == 0
    assert ws.query(f"SELECT count(*) FROM transfers WHERE chain='anvil' AND height > {base} AND "
                    f"to_address = '{a[7]}'").column(0)[0].as_py() == 5


def _snapshot(home: Path) -> dict:
    ws = Workspace(home)
    out = {}
    for view in ("blocks", "transactions", "transfers"):
        rows = ws.query(f"SELECT * EXCLUDE (from_id, to_id) FROM {view} WHERE chain='anvil'" if view == "transfers"
                        else f"SELECT * FROM {view} WHERE chain='anvil'").to_pylist()
        out[view] = sorted(json.dumps(r, default=str, sort_keys=True) for r in rows)
    for t in ("evm_logs", "tokens"):
        out[t] = sorted(json.dumps(r, default=str, sort_keys=True) for r in ws.read(t, "anvil").to_pylist())
    return out


def test_sigkill_and_resume_gives_identical_tables(tmp_path):
    """A subprocess ingesting block by block is SIGKILLed mid-run; re-running completes the same tables an
    uninterrupted run makes."""
    from fundtrail.simulate.contracts.anvil import find_anvil, start_anvil

    if find_anvil() is None:
        pytest.skip("anvil is not installed: run dev/setup")
    with start_anvil() as node:
        play(node, rounds=2)
        node.mine(150)
        end = node.block_number()
        killed, whole = tmp_path / "killed", tmp_path / "whole"
        cmd = [sys.executable, "-c",
               "import sys; from fundtrail.store import Workspace; from fundtrail.ingest.evm.service import ingest_evm;"
               f"ingest_evm(Workspace(sys.argv[1]), '{node.url}', 'anvil', end={end}, batch_blocks=1)", str(killed)]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        p = subprocess.Popen(cmd, env=env)
        deadline = time.monotonic() + 60
        tip = None
        while time.monotonic() < deadline:
            m = killed / "manifest.json"
            if m.exists():
                try:
                    tip = json.loads(m.read_text())["chains"].get("anvil", {}).get("tip_height")
                except json.JSONDecodeError:
                    tip = None
                if tip is not None and tip >= 25:
                    break
            time.sleep(0.01)
        p.send_signal(signal.SIGKILL)
        p.wait()
        tip = Workspace(killed).chain("anvil")["tip_height"]
        assert tip < end, "the run finished before it could be killed"
        st = ingest_evm(Workspace(killed), node.url, "anvil", end=end, batch_blocks=1)
        assert st.first_height == tip + 1 and st.last_height == end
        ingest_evm(Workspace(whole), node.url, "anvil", end=end, batch_blocks=1)
        assert _snapshot(killed) == _snapshot(whole)
        for home in (killed, whole):  # one part per block-sized batch, merged in tiers of 16 as it goes
            ws = Workspace(home)
            parts = ws.parts("evm_blocks", "anvil")
            assert len(parts) < 32 and max(p.level for p in parts) >= 1
            listed = {p.file for t in S.TABLES for p in ws.parts(t)}
            assert {str(f.relative_to(home)) for f in (home / "tables").rglob("*.parquet")} == listed

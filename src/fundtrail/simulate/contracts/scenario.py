"""A laundering scenario played on a real node with the project's contracts, recording every value
movement it makes (the ground truth that ingestion must reproduce).

Theft from an exchange's hot wallet (the owner key in the thief's hands) -> split across fresh addresses ->
mixer deposits and relayed withdrawals -> bridge deposits (ETH and token) and a bridge release -> DEX swaps
both ways -> token transfers; plus a reverted transaction that would have moved value, a reverted split, a
failed internal call inside a succeeding transaction, a CREATE with value, SELFDESTRUCTs with value, a
contract-creating transaction with value and a plain EOA payment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fundtrail.errors import SourceError
from fundtrail.model.address import keccak256
from fundtrail.simulate.contracts import load_artifact
from fundtrail.simulate.contracts.anvil import AnvilNode

ETH = 10**18
USDT = 10**6


@dataclass(frozen=True, slots=True)
class Expected:
    txid: str
    kind: str  # call | internal | create | selfdestruct | token
    frm: str
    to: str
    asset: str  # ETH or the token address
    amount: int


@dataclass
class Scenario:
    node: AnvilNode
    expected: list[Expected] = field(default_factory=list)
    contracts: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    txids: list[str] = field(default_factory=list)
    reverted: list[str] = field(default_factory=list)
    first_block: int = 0
    last_block: int = 0

    def _rc(self, rc: dict[str, Any], ok: bool = True) -> str:
        txid = str(rc["transactionHash"]).lower()
        status = int(rc["status"], 16)
        if ok and status != 1:
            raise SourceError(f"scenario transaction {txid} reverted unexpectedly")
        if not ok and status != 0:
            raise SourceError(f"scenario transaction {txid} should have reverted")
        self.txids.append(txid)
        if not ok:
            self.reverted.append(txid)
        return txid

    def expect(self, txid: str, kind: str, frm: str, to: str, amount: int, asset: str = "ETH") -> None:
        self.expected.append(Expected(txid, kind, frm.lower(), to.lower(), asset, amount))

    def tx(self, art: str, addr: str, fn: str, *args: Any, sender: str, value: int = 0, ok: bool = True) -> str:
        rc = self.node.transact(art, addr, fn, *args, sender=sender, value=value)
        txid = self._rc(rc, ok)
        if ok and value:
            self.expect(txid, "call", sender, addr, value)
        return txid


def play(node: AnvilNode, *, rounds: int = 1) -> Scenario:
    """Play the scenario (``rounds`` times the laundering part) and return what it moved."""
    a = node.accounts
    s = Scenario(node)
    s.first_block = node.block_number() + 1
    deployer, owner, thief, r1, r2, r3, cashout, relayer, operator, lp = a[:10]
    s.roles = dict(deployer=deployer, hot_wallet_owner=owner, thief=thief, split1=r1, split2=r2, split3=r3,
                   cashout=cashout, relayer=relayer, bridge_operator=operator, liquidity=lp)
    c = s.contracts
    c["usdt"] = node.deploy("TestUSDT", sender=deployer)
    c["mixer"] = node.deploy("MixerPool", 1 * ETH, sender=deployer)
    c["bridge"] = node.deploy("Bridge", sender=operator)
    c["pair"] = node.deploy("DexPair", c["usdt"], sender=deployer)
    c["splitter"] = node.deploy("Splitter", sender=deployer)
    c["rejecter"] = node.deploy("Rejecter", sender=deployer)
    c["factory"] = node.deploy("Factory", sender=deployer)
    # the hot wallet, funded at creation (a contract-creating transaction with value)
    rc = node.send(owner, None, value=100 * ETH, data=load_artifact("HotWallet").deploy_data(), gas=3_000_000)
    txid = s._rc(rc)
    c["hot_wallet"] = str(rc["contractAddress"]).lower()
    s.expect(txid, "create", owner, c["hot_wallet"], 100 * ETH)
    usdt, hw = c["usdt"], c["hot_wallet"]

    def mint(to: str, amt: int) -> None:
        t = s.tx("TestUSDT", usdt, "mint", to, amt, sender=deployer)
        s.expect(t, "token", "0x" + "00" * 20, to, amt, usdt)

    mint(lp, 1_000_000 * USDT)
    mint(hw, 200_000 * USDT)
    t = s.tx("TestUSDT", usdt, "approve", c["pair"], 2**256 - 1, sender=lp)
    t = s.tx("DexPair", c["pair"], "addLiquidity", 500_000 * USDT, sender=lp, value=250 * ETH)
    s.expect(t, "token", lp, c["pair"], 500_000 * USDT, usdt)

    nonce = 0
    for rnd in range(rounds):
        # theft: the hot wallet's owner key, used by the thief
        t = s.tx("HotWallet", hw, "send", thief, 40 * ETH, sender=owner)
        s.expect(t, "internal", hw, thief, 40 * ETH)
        t = s.tx("HotWallet", hw, "sendToken", usdt, thief, 50_000 * USDT, sender=owner)
        s.expect(t, "token", hw, thief, 50_000 * USDT, usdt)
        # split
        t = s.tx("Splitter", c["splitter"], "split", [r1, r2, r3], [10 * ETH, 12 * ETH, 8 * ETH], sender=thief,
                 value=30 * ETH)
        for r, v in ((r1, 10), (r2, 12), (r3, 8)):
            s.expect(t, "internal", c["splitter"], r, v * ETH)
        # mixer: deposits, then relayed withdrawals to the cash-out address
        notes = []
        for who, k in ((r1, 3), (r2, 2)):
            for _ in range(k):
                nonce += 1
                nul = keccak256(b"nullifier%d" % nonce)
                sec = keccak256(b"secret%d" % nonce)
                s.tx("MixerPool", c["mixer"], "deposit", keccak256(nul + sec), sender=who, value=1 * ETH)
                notes.append((nul, sec))
        fee = ETH // 100
        for nul, sec in notes:
            t = s.tx("MixerPool", c["mixer"], "withdraw", cashout, nul, sec, relayer, fee, sender=relayer)
            s.expect(t, "internal", c["mixer"], cashout, ETH - fee)
            s.expect(t, "internal", c["mixer"], relayer, fee)
        # a deposit of the wrong amount reverts: it moves no value
        s.tx("MixerPool", c["mixer"], "deposit", keccak256(b"bad%d" % rnd), sender=r1, value=ETH // 2, ok=False)
        # bridge: ETH and token deposits, a release from the other side
        s.tx("Bridge", c["bridge"], "depositETH", "regtest", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
             sender=r3, value=5 * ETH)
        s.tx("TestUSDT", usdt, "approve", c["bridge"], 10_000 * USDT, sender=thief)
        t = s.tx("Bridge", c["bridge"], "depositToken", usdt, 10_000 * USDT, "regtest",
                 "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", sender=thief)
        s.expect(t, "token", thief, c["bridge"], 10_000 * USDT, usdt)
        t = s.tx("Bridge", c["bridge"], "release", rnd, r2, "0x" + "00" * 20, 1 * ETH, "regtest", "ab" * 32,
                 sender=operator)
        s.expect(t, "internal", c["bridge"], r2, 1 * ETH)
        # DEX: ETH -> token and token -> ETH
        out = node.view("DexPair", c["pair"], "getAmountOut", 3 * ETH,
                        *node.view("DexPair", c["pair"], "reserve0"), *node.view("DexPair", c["pair"], "reserve1"))[0]
        t = s.tx("DexPair", c["pair"], "swapETHForTokens", 1, r2, sender=r2, value=3 * ETH)
        s.expect(t, "token", c["pair"], r2, out, usdt)
        s.tx("TestUSDT", usdt, "approve", c["pair"], 2**256 - 1, sender=thief)
        r0 = node.view("DexPair", c["pair"], "reserve0")[0]
        r1_ = node.view("DexPair", c["pair"], "reserve1")[0]
        out = node.view("DexPair", c["pair"], "getAmountOut", 1_000 * USDT, r1_, r0)[0]
        t = s.tx("DexPair", c["pair"], "swapTokensForETH", 1_000 * USDT, 1, thief, sender=thief)
        s.expect(t, "token", thief, c["pair"], 1_000 * USDT, usdt)
        s.expect(t, "internal", c["pair"], thief, out)
        # token transfers
        t = s.tx("TestUSDT", usdt, "transfer", cashout, 20_000 * USDT, sender=thief)
        s.expect(t, "token", thief, cashout, 20_000 * USDT, usdt)
        # a split that reverts as a whole (one recipient refuses ETH)
        s.tx("Splitter", c["splitter"], "split", [r1, c["rejecter"]], [ETH, ETH], sender=thief, value=2 * ETH,
             ok=False)
        # a failed internal call inside a succeeding transaction: the rejecter's share stays in the splitter
        t = s.tx("Splitter", c["splitter"], "splitLenient", [c["rejecter"], cashout], [ETH, ETH], sender=thief,
                 value=2 * ETH)
        s.expect(t, "internal", c["splitter"], cashout, ETH)
        # CREATE with value, then SELFDESTRUCT with value; and both in one transaction
        rc = node.transact("Factory", c["factory"], "create", sender=thief, value=2 * ETH)
        t = s._rc(rc)
        s.expect(t, "call", thief, c["factory"], 2 * ETH)
        vault = "0x" + rc["logs"][0]["data"][2 + 24 : 2 + 64]
        s.expect(t, "create", c["factory"], vault, 2 * ETH)
        t = s.tx("Vault", vault, "destroy", cashout, sender=thief)
        s.expect(t, "selfdestruct", vault, cashout, 2 * ETH)
        rc = node.transact("Factory", c["factory"], "createAndDestroy", r1, sender=thief, value=1 * ETH)
        t = s._rc(rc)
        s.expect(t, "call", thief, c["factory"], 1 * ETH)
        vault2 = "0x" + rc["logs"][0]["data"][2 + 24 : 2 + 64]
        s.expect(t, "create", c["factory"], vault2, 1 * ETH)
        s.expect(t, "selfdestruct", vault2, r1, 1 * ETH)
        # a plain payment between externally owned accounts
        rc = node.send(cashout, relayer, value=ETH // 4, gas=21_000)
        t = s._rc(rc)
        s.expect(t, "call", cashout, relayer, ETH // 4)
    s.last_block = node.block_number()
    return s

"""The EVM side of a simulated world: accounts, the token / DEX / mixer / bridge contracts, transactions
with receipts, logs and call traces, kept as an in-memory chain and written out as recorded JSON-RPC
responses (``rpc.jsonl``) in the replay format the EVM ingester reads.

Events carry the real topic0 (keccak256 of the event signature) and ABI-encoded data, exactly as the
contracts in src/fundtrail/simulate/contracts/ emit them. Transaction and block hashes are keccak256 of an RLP
encoding of their fields (there are no real signatures in a simulated chain). Every state change is checked:
balances never go negative, gas fees (gas_used × effective gas price) are paid by the sender.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fundtrail.model import evm_abi
from fundtrail.model.address import keccak256

GWEI = 10**9
ETHER = 10**18
ZERO = "0x" + "00" * 20


def rlp(item: Any) -> bytes:
    if isinstance(item, int):
        item = item.to_bytes((item.bit_length() + 7) // 8, "big") if item else b""
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _rlp_len(len(item), 0x80) + item
    body = b"".join(rlp(x) for x in item)
    return _rlp_len(len(body), 0xC0) + body


def _rlp_len(n: int, off: int) -> bytes:
    if n < 56:
        return bytes((off + n,))
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((off + 55 + len(b),)) + b


def addr_bytes(a: str) -> bytes:
    return bytes.fromhex(a[2:])


def contract_address(sender: str, nonce: int) -> str:
    return "0x" + keccak256(rlp([addr_bytes(sender), nonce]))[12:].hex()


def eoa(seed: int, label: str) -> str:
    return "0x" + keccak256(f"fundtrail-sim/{seed}/{label}".encode())[12:].hex()


# the events and calls the runtime decodes, from the one place that defines them
T_TRANSFER = evm_abi.TRANSFER
T_DEPOSIT = evm_abi.MIXER_DEPOSIT
T_WITHDRAWAL = evm_abi.MIXER_WITHDRAWAL
T_BRIDGE_DEPOSIT = evm_abi.BRIDGE_DEPOSIT
T_BRIDGE_RELEASE = evm_abi.BRIDGE_RELEASE
T_SWAP = evm_abi.SWAP
selector = evm_abi.selector
abi_encode = evm_abi.encode


def w_uint(n: int) -> bytes:
    return n.to_bytes(32, "big")


def w_addr(a: str) -> bytes:
    return b"\x00" * 12 + addr_bytes(a)


def t_addr(a: str) -> str:
    return "0x" + w_addr(a).hex()


def t_uint(n: int) -> str:
    return "0x" + w_uint(n).hex()


@dataclass(slots=True)
class Log:
    address: str
    topics: list[str]
    data: bytes


@dataclass(slots=True)
class Call:
    """An internal call (a trace frame below the top-level call)."""

    type: str  # CALL | CREATE
    frm: str
    to: str
    value: int
    input: bytes = b""
    gas: int = 0
    gas_used: int = 0


@dataclass(slots=True)
class Move:
    """A movement of value a transaction makes (for balances and for the truth)."""

    asset: str  # ETH or token contract address
    frm: str
    to: str
    amount: int
    kind: str  # call | internal | token | mint


@dataclass(slots=True)
class EvmTx:
    hash: str
    frm: str
    to: str | None
    value: int
    nonce: int
    input: bytes
    gas: int
    gas_used: int
    max_fee: int
    tip: int
    effective_price: int
    logs: list[Log]
    calls: list[Call]
    moves: list[Move]
    contract: str | None = None
    block: int = -1
    index: int = -1
    time: int = 0
    note: str = ""

    @property
    def fee(self) -> int:
        return self.gas_used * self.effective_price


@dataclass(slots=True)
class EvmBlock:
    number: int
    time: int
    txs: list[EvmTx] = field(default_factory=list)
    hash: str = ""
    parent: str = ""
    base_fee: int = GWEI


class EvmWorld:
    """An EVM chain built transaction by transaction (one open block at a time)."""

    def __init__(self, seed: int, chain_id: int, genesis_time: int, genesis_alloc: dict[str, int]) -> None:
        self.seed = seed
        self.chain_id = chain_id
        self.eth: dict[str, int] = dict(genesis_alloc)
        self.tokens: dict[str, dict[str, int]] = {}
        self.token_meta: dict[str, tuple[str, str, int]] = {}
        self.nonces: dict[str, int] = {}
        self.miner = eoa(seed, "validator")
        self.blocks: list[EvmBlock] = [EvmBlock(0, genesis_time)]
        self.genesis_alloc = dict(genesis_alloc)
        self._open: EvmBlock | None = None
        self.base_fee = GWEI
        self.tip = GWEI
        self.deposit_count: dict[str, int] = {}
        self.bridge_deposits: list[dict[str, Any]] = []

    # --- blocks ----------------------------------------------------------------------------------------
    def begin_block(self, time: int) -> None:
        self.end_block()
        last = self.blocks[-1]
        self._open = EvmBlock(last.number + 1, max(time, last.time + 1), base_fee=self.base_fee)

    def end_block(self) -> None:
        b = self._open
        self._open = None
        if b is None or not b.txs:
            return
        self.blocks.append(b)

    @property
    def now(self) -> int:
        assert self._open is not None
        return self._open.time

    def _ensure_block(self) -> EvmBlock:
        if self._open is None:
            raise RuntimeError("no open block")
        return self._open

    # --- state ---------------------------------------------------------------------------------------------
    def _move(self, m: Move) -> None:
        if m.asset == "ETH":
            bal = self.eth
        else:
            bal = self.tokens[m.asset]
        if m.kind != "mint":
            have = bal.get(m.frm, 0)
            if have < m.amount:
                raise RuntimeError(f"simulated world bug: {m.frm} has {have} {m.asset}, sends {m.amount}")
            bal[m.frm] = have - m.amount
        bal[m.to] = bal.get(m.to, 0) + m.amount

    def balance(self, addr: str, asset: str = "ETH") -> int:
        return (self.eth if asset == "ETH" else self.tokens[asset]).get(addr, 0)

    def send(self, frm: str, to: str | None, value: int, data: bytes, gas_used: int, *, logs: list[Log] = (),
             calls: list[Call] = (), extra_moves: list[Move] = (), contract: str | None = None,
             note: str = "") -> EvmTx:
        """Execute one transaction from EOA ``frm``: fee first, then the value and the other moves."""
        b = self._ensure_block()
        nonce = self.nonces.get(frm, 0)
        price = b.base_fee + self.tip
        fee = gas_used * price
        moves: list[Move] = []
        if value:
            moves.append(Move("ETH", frm, to or contract or ZERO, value, "call"))
        moves += list(extra_moves)
        if self.eth.get(frm, 0) < fee + value:
            raise RuntimeError(f"simulated world bug: {frm} cannot pay {value} + fee {fee}")
        self.eth[frm] -= fee
        self.eth[self.miner] = self.eth.get(self.miner, 0) + fee - gas_used * b.base_fee  # base fee burned
        for m in moves:
            self._move(m)
        self.nonces[frm] = nonce + 1
        gas = gas_used + gas_used // 5
        h = "0x" + keccak256(b"\x02" + rlp([self.chain_id, nonce, self.tip, b.base_fee * 2, gas,
                                            addr_bytes(to) if to else b"", value, data,
                                            [], 1, keccak256(frm.encode()), keccak256(data)])).hex()
        tx = EvmTx(h, frm, to, value, nonce, data, gas, gas_used, b.base_fee * 2, self.tip, price,
                   list(logs), list(calls), moves, contract, b.number, len(b.txs), b.time, note)
        b.txs.append(tx)
        return tx

    # --- operations ----------------------------------------------------------------------------------------
    def transfer_eth(self, frm: str, to: str, value: int, note: str = "") -> EvmTx:
        return self.send(frm, to, value, b"", 21000, note=note)

    def deploy(self, frm: str, init_code: bytes, gas_used: int, note: str) -> tuple[str, EvmTx]:
        addr = contract_address(frm, self.nonces.get(frm, 0))
        tx = self.send(frm, None, 0, init_code, gas_used, contract=addr, note=note,
                       calls=[])
        return addr, tx

    def deploy_token(self, frm: str, init_code: bytes, name: str, symbol: str, decimals: int,
                     supply: int) -> str:
        addr = contract_address(frm, self.nonces.get(frm, 0))
        self.tokens[addr] = {}
        self.token_meta[addr] = (name, symbol, decimals)
        self.send(frm, None, 0, init_code, 900_000, contract=addr, note=f"deploy {symbol}",
                  logs=[Log(addr, [T_TRANSFER, t_addr(ZERO), t_addr(frm)], w_uint(supply))],
                  extra_moves=[Move(addr, ZERO, frm, supply, "mint")])
        return addr

    def transfer_token(self, token: str, frm: str, to: str, amount: int, note: str = "") -> EvmTx:
        data = selector("transfer(address,uint256)") + w_addr(to) + w_uint(amount)
        return self.send(frm, token, 0, data, 51_000 if self.balance(to, token) else 34_000 + 17_100,
                         logs=[Log(token, [T_TRANSFER, t_addr(frm), t_addr(to)], w_uint(amount))],
                         extra_moves=[Move(token, frm, to, amount, "token")], note=note)

    def swap_eth_for_tokens(self, pair: str, token: str, trader: str, eth_in: int, tokens_out: int,
                            note: str = "") -> EvmTx:
        data = selector("swapExactETHForTokens(uint256,address)") + w_uint(tokens_out) + w_addr(trader)
        logs = [Log(token, [T_TRANSFER, t_addr(pair), t_addr(trader)], w_uint(tokens_out)),
                Log(pair, [T_SWAP, t_addr(trader), t_addr(trader)],
                    w_uint(eth_in) + w_uint(0) + w_uint(0) + w_uint(tokens_out))]
        calls = [Call("CALL", pair, token, 0, selector("transfer(address,uint256)") + w_addr(trader)
                      + w_uint(tokens_out), 40_000, 29_000)]
        return self.send(trader, pair, eth_in, data, 118_000, logs=logs, calls=calls,
                         extra_moves=[Move(token, pair, trader, tokens_out, "token")], note=note)

    def swap_tokens_for_eth(self, pair: str, token: str, trader: str, tokens_in: int, eth_out: int,
                            note: str = "") -> EvmTx:
        data = selector("swapExactTokensForETH(uint256,uint256,address)") + w_uint(tokens_in) \
            + w_uint(eth_out) + w_addr(trader)
        logs = [Log(token, [T_TRANSFER, t_addr(trader), t_addr(pair)], w_uint(tokens_in)),
                Log(pair, [T_SWAP, t_addr(trader), t_addr(trader)],
                    w_uint(0) + w_uint(tokens_in) + w_uint(eth_out) + w_uint(0))]
        calls = [Call("CALL", pair, token, 0, selector("transferFrom(address,address,uint256)")
                      + w_addr(trader) + w_addr(pair) + w_uint(tokens_in), 40_000, 31_000),
                 Call("CALL", pair, trader, eth_out, b"", 2300, 0)]
        return self.send(trader, pair, 0, data, 126_000, logs=logs, calls=calls,
                         extra_moves=[Move(token, trader, pair, tokens_in, "token"),
                                      Move("ETH", pair, trader, eth_out, "internal")], note=note)

    def mixer_deposit(self, pool: str, user: str, denomination: int, note: str = "") -> EvmTx:
        leaf = self.deposit_count.get(pool, 0)
        self.deposit_count[pool] = leaf + 1
        commitment = keccak256(f"commit/{self.seed}/{pool}/{leaf}".encode())
        data = selector("deposit(bytes32)") + commitment
        logs = [Log(pool, [T_DEPOSIT, "0x" + commitment.hex()], w_uint(leaf) + w_uint(self.now))]
        return self.send(user, pool, denomination, data, 1_020_000, logs=logs, note=note)

    def mixer_withdraw(self, pool: str, relayer: str, to: str, denomination: int, fee: int, note: str = ""
                       ) -> EvmTx:
        nullifier = keccak256(f"null/{self.seed}/{pool}/{to}/{self.now}".encode())
        data = selector("withdraw(bytes,bytes32,bytes32,address,address,uint256)") + nullifier + w_addr(to)
        logs = [Log(pool, [T_WITHDRAWAL, t_addr(relayer)], w_addr(to) + nullifier + w_uint(fee))]
        calls = [Call("CALL", pool, to, denomination - fee)]
        moves = [Move("ETH", pool, to, denomination - fee, "internal")]
        if fee:
            calls.append(Call("CALL", pool, relayer, fee))
            moves.append(Move("ETH", pool, relayer, fee, "internal"))
        return self.send(relayer, pool, 0, data, 340_000, logs=logs, calls=calls, extra_moves=moves, note=note)

    def bridge_deposit_eth(self, bridge: str, user: str, amount: int, dest_chain: str, dest_address: str,
                           note: str = "") -> tuple[int, EvmTx]:
        dep_id = len(self.bridge_deposits) + 1
        data = selector("depositNative(string,string)") + abi_encode(["string", "string"],
                                                                     [dest_chain, dest_address])
        logs = [Log(bridge, [T_BRIDGE_DEPOSIT, t_uint(dep_id), t_addr(user)],
                    abi_encode(["address", "uint256", "string", "string"],
                               [ZERO, amount, dest_chain, dest_address]))]
        tx = self.send(user, bridge, amount, data, 64_000, logs=logs, note=note)
        self.bridge_deposits.append({"id": dep_id, "sender": user, "amount": amount, "dest_chain": dest_chain,
                                     "dest_address": dest_address, "txid": tx.hash, "time": tx.time})
        return dep_id, tx

    # --- finishing -----------------------------------------------------------------------------------------
    def finish(self) -> None:
        self.end_block()
        parent = "0x" + "00" * 32
        for b in self.blocks:
            b.parent = parent
            b.hash = "0x" + keccak256(rlp([bytes.fromhex(parent[2:]), b.number, b.time,
                                           [bytes.fromhex(t.hash[2:]) for t in b.txs]])).hex()
            parent = b.hash

    @property
    def all_txs(self) -> list[EvmTx]:
        return [t for b in self.blocks for t in b.txs]


# --- JSON-RPC rendering ------------------------------------------------------------------------------------

def hx(n: int) -> str:
    return hex(n)


def _tx_json(b: EvmBlock, t: EvmTx, chain_id: int) -> dict[str, Any]:
    r = keccak256(b"r" + bytes.fromhex(t.hash[2:]))
    s = keccak256(b"s" + bytes.fromhex(t.hash[2:]))
    return {
        "blockHash": b.hash, "blockNumber": hx(b.number), "from": t.frm, "gas": hx(t.gas),
        "gasPrice": hx(t.effective_price), "maxFeePerGas": hx(t.max_fee), "maxPriorityFeePerGas": hx(t.tip),
        "hash": t.hash, "input": "0x" + t.input.hex(), "nonce": hx(t.nonce), "to": t.to,
        "transactionIndex": hx(t.index), "value": hx(t.value), "type": "0x2", "accessList": [],
        "chainId": hx(chain_id), "v": "0x1", "yParity": "0x1", "r": "0x" + r.hex(), "s": "0x" + s.hex(),
    }


def block_json(b: EvmBlock, full: bool, chain_id: int, miner: str) -> dict[str, Any]:
    gas_used = sum(t.gas_used for t in b.txs)
    return {
        "number": hx(b.number), "hash": b.hash, "parentHash": b.parent, "nonce": "0x0000000000000000",
        "sha3Uncles": "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347",
        "logsBloom": "0x" + "00" * 256, "transactionsRoot": "0x" + keccak256(b.hash.encode()).hex(),
        "stateRoot": "0x" + keccak256(b"state" + b.hash.encode()).hex(),
        "receiptsRoot": "0x" + keccak256(b"receipts" + b.hash.encode()).hex(),
        "miner": miner, "difficulty": "0x0", "totalDifficulty": "0x0", "extraData": "0x",
        "size": hx(600 + sum(110 + len(t.input) for t in b.txs)), "gasLimit": hx(30_000_000),
        "gasUsed": hx(gas_used), "timestamp": hx(b.time),
        "transactions": [_tx_json(b, t, chain_id) if full else t.hash for t in b.txs],
        "uncles": [], "baseFeePerGas": hx(b.base_fee), "mixHash": "0x" + "00" * 32,
        "withdrawals": [], "withdrawalsRoot": "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421",
    }


def receipts_json(b: EvmBlock) -> list[dict[str, Any]]:
    out = []
    cum = 0
    log_index = 0
    for t in b.txs:
        cum += t.gas_used
        logs = []
        for lg in t.logs:
            logs.append({"address": lg.address, "topics": lg.topics, "data": "0x" + lg.data.hex(),
                         "blockNumber": hx(b.number), "blockHash": b.hash, "transactionHash": t.hash,
                         "transactionIndex": hx(t.index), "logIndex": hx(log_index), "removed": False})
            log_index += 1
        out.append({"transactionHash": t.hash, "transactionIndex": hx(t.index), "blockHash": b.hash,
                    "blockNumber": hx(b.number), "from": t.frm, "to": t.to, "cumulativeGasUsed": hx(cum),
                    "gasUsed": hx(t.gas_used), "effectiveGasPrice": hx(t.effective_price),
                    "contractAddress": t.contract if t.to is None else None, "logs": logs,
                    "logsBloom": "0x" + "00" * 256, "status": "0x1", "type": "0x2"})
    return out


def _frame(c: Call) -> dict[str, Any]:
    return {"type": c.type, "from": c.frm, "to": c.to, "value": hx(c.value), "gas": hx(c.gas),
            "gasUsed": hx(c.gas_used), "input": "0x" + c.input.hex(), "output": "0x"}


def call_trace_json(b: EvmBlock) -> list[dict[str, Any]]:
    """``debug_traceBlockByNumber(n, {"tracer": "callTracer"})``."""
    out = []
    for t in b.txs:
        top = {"type": "CREATE" if t.to is None else "CALL", "from": t.frm,
               "to": t.contract if t.to is None else t.to, "value": hx(t.value), "gas": hx(t.gas),
               "gasUsed": hx(t.gas_used), "input": "0x" + t.input.hex(), "output": "0x"}
        if t.calls:
            top["calls"] = [_frame(c) for c in t.calls]
        out.append({"txHash": t.hash, "result": top})
    return out


def parity_trace_json(b: EvmBlock) -> list[dict[str, Any]]:
    """``trace_block(n)`` (Parity / OpenEthereum flat traces)."""
    out = []
    for t in b.txs:
        base = {"blockHash": b.hash, "blockNumber": b.number, "transactionHash": t.hash,
                "transactionPosition": t.index}
        if t.to is None:
            out.append({**base, "type": "create", "subtraces": 0, "traceAddress": [],
                        "action": {"from": t.frm, "value": hx(t.value), "gas": hx(t.gas),
                                   "init": "0x" + t.input.hex(), "creationMethod": "create"},
                        "result": {"gasUsed": hx(t.gas_used), "address": t.contract, "code": "0x"}})
            continue
        out.append({**base, "type": "call", "subtraces": len(t.calls), "traceAddress": [],
                    "action": {"callType": "call", "from": t.frm, "to": t.to, "value": hx(t.value),
                               "gas": hx(t.gas), "input": "0x" + t.input.hex()},
                    "result": {"gasUsed": hx(t.gas_used), "output": "0x"}})
        for i, c in enumerate(t.calls):
            out.append({**base, "type": "call", "subtraces": 0, "traceAddress": [i],
                        "action": {"callType": "call", "from": c.frm, "to": c.to, "value": hx(c.value),
                                   "gas": hx(c.gas), "input": "0x" + c.input.hex()},
                        "result": {"gasUsed": hx(c.gas_used), "output": "0x"}})
    return out


def _abi_string(s: str) -> str:
    return "0x" + abi_encode(["string"], [s]).hex()


class RpcRecorder:
    """Writes the JSON-RPC exchanges an ingester makes against the simulated chain, one JSON object a
    line: ``{"method", "params", "result"}``. ``methods`` picks which per-block requests to record."""

    PER_BLOCK = ("eth_getBlockByNumber", "eth_getBlockReceipts", "debug_traceBlockByNumber", "trace_block",
                 "eth_getTransactionReceipt")

    def __init__(self, world: EvmWorld) -> None:
        self.w = world

    def lines(self) -> Any:
        w = self.w
        tip = w.blocks[-1].number
        yield {"method": "eth_chainId", "params": [], "result": hx(w.chain_id)}
        yield {"method": "net_version", "params": [], "result": str(w.chain_id)}
        yield {"method": "eth_blockNumber", "params": [], "result": hx(tip)}
        yield {"method": "web3_clientVersion", "params": [], "result": "fundtrail-sim/1.0 (recorded)"}
        for token, (name, symbol, decimals) in sorted(w.token_meta.items()):
            for tag in ("latest", hx(tip)):
                for sig, val in (("name()", _abi_string(name)), ("symbol()", _abi_string(symbol)),
                                 ("decimals()", "0x" + w_uint(decimals).hex()),
                                 ("totalSupply()", "0x" + w_uint(sum(w.tokens[token].values())).hex())):
                    yield {"method": "eth_call",
                           "params": [{"to": token, "data": "0x" + selector(sig).hex()}, tag],
                           "result": val}
        for b in w.blocks:
            n = hx(b.number)
            yield {"method": "eth_getBlockByNumber", "params": [n, True],
                   "result": block_json(b, True, w.chain_id, w.miner)}
            yield {"method": "eth_getBlockByNumber", "params": [n, False],
                   "result": block_json(b, False, w.chain_id, w.miner)}
            rec = receipts_json(b)
            yield {"method": "eth_getBlockReceipts", "params": [n], "result": rec}
            for r in rec:
                yield {"method": "eth_getTransactionReceipt", "params": [r["transactionHash"]], "result": r}
            yield {"method": "debug_traceBlockByNumber", "params": [n, {"tracer": "callTracer"}],
                   "result": call_trace_json(b)}
            yield {"method": "trace_block", "params": [n], "result": parity_trace_json(b)}
        for addr, bal in sorted(w.genesis_alloc.items()):
            yield {"method": "eth_getBalance", "params": [addr, "0x0"], "result": hx(bal)}

    def write(self, path: Path) -> int:
        n = 0
        with open(path, "w") as f:
            for line in self.lines():
                f.write(json.dumps(line, separators=(",", ":")) + "\n")
                n += 1
        return n

"""The project's Solidity contracts and their compiled artifacts.

Sources live beside this file (*.sol); ``dev/compile-contracts`` compiles them with the npm solc package
(offline) into ``build/<Name>.json`` (abi, bytecode, deployedBytecode), which are committed so that nothing
needs a compiler at run time. :func:`load_artifact` reads one; :class:`Artifact` encodes deployments and
calls. ``fundtrail.simulate.contracts.anvil`` starts a local node to deploy them on.

Contracts: TestUSDT (ERC-20 test stablecoin, 6 decimals), MixerPool (simplified fixed-denomination
Tornado-style pool), Bridge (lock ETH/tokens, BridgeDeposit / BridgeRelease), DexPair (Uniswap-v2-style
ETH/token pair, Swap), HotWallet (victim wallet), Splitter and Rejecter (internal transfers, failed
internal calls), Factory and Vault (CREATE with value, SELFDESTRUCT with value).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fundtrail.errors import NotFoundError, UsageError
from fundtrail.model import evm_abi as abi

BUILD_DIR = Path(__file__).resolve().parent / "build"
SOURCE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: str  # 0x hex, creation code
    deployed_bytecode: str
    compiler: str

    def function(self, name: str) -> dict[str, Any]:
        found = [e for e in self.abi if e.get("type") == "function" and e["name"] == name]
        if not found:
            raise UsageError(f"contract {self.name} has no function {name!r}")
        if len(found) > 1:
            raise UsageError(f"contract {self.name}: function {name!r} is overloaded; use encode_call")
        return found[0]

    def calldata(self, fn: str, *args: Any) -> str:
        """0x calldata calling ``fn`` with ``args``."""
        entry = self.function(fn)
        types = [i["type"] for i in entry["inputs"]]
        return "0x" + (abi.selector(abi.function_signature(entry)) + abi.encode(types, args)).hex()

    def deploy_data(self, *args: Any) -> str:
        """0x creation code with the constructor's ``args`` appended."""
        ctor = next((e for e in self.abi if e.get("type") == "constructor"), None)
        types = [i["type"] for i in ctor["inputs"]] if ctor else []
        return self.bytecode + abi.encode(types, args).hex()

    def decode_output(self, fn: str, data: str) -> list[Any]:
        entry = self.function(fn)
        return abi.decode([o["type"] for o in entry["outputs"]], bytes.fromhex(data.removeprefix("0x")))

    def event_topic(self, event: str) -> str:
        for e in self.abi:
            if e.get("type") == "event" and e["name"] == event:
                return abi.event_topic(f"{event}({','.join(i['type'] for i in e['inputs'])})")
        raise UsageError(f"contract {self.name} has no event {event!r}")


def artifact_names() -> list[str]:
    return sorted(p.stem for p in BUILD_DIR.glob("*.json"))


@cache
def load_artifact(name: str) -> Artifact:
    """The compiled artifact ``build/<name>.json``."""
    p = BUILD_DIR / f"{name}.json"
    if not p.exists():
        raise NotFoundError(f"no compiled contract {name!r} in {BUILD_DIR} (have: {', '.join(artifact_names())}); "
                            "run dev/compile-contracts")
    d = json.loads(p.read_text())
    return Artifact(d["contractName"], tuple(d["abi"]), d["bytecode"], d["deployedBytecode"], d["compiler"])

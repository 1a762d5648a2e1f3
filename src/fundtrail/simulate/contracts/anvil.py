"""Start a real local EVM node (anvil, from the npm package ``@foundry-rs/anvil-linux-amd64``) for tests,
benchmarks and the simulator, and drive it: deploy the project's contracts, send transactions.

``start_anvil()`` finds the binary (``$FUNDTRAIL_ANVIL``, then ``dev/node/node_modules`` of the repository,
then ``PATH``), picks a free loopback port, waits until the node answers ``eth_chainId`` and kills it on
exit. Its accounts are unlocked, so transactions go out with ``eth_sendTransaction`` (no signing here).
Every transaction is sent with an explicit gas limit, so one that reverts is still mined (anvil would
otherwise refuse it at gas estimation), and its receipt is returned whatever its status.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fundtrail.errors import NotFoundError, RpcError, SourceError
from fundtrail.ingest.evm.client import HttpTransport, RpcClient
from fundtrail.simulate.contracts import Artifact, load_artifact

REPO_ROOT = Path(__file__).resolve().parents[4]
NPM_ANVIL = REPO_ROOT / "dev" / "node" / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
DEFAULT_GAS = 3_000_000


def find_anvil() -> Path | None:
    """The anvil binary: $FUNDTRAIL_ANVIL, dev/node/node_modules (dev/setup installs it), or PATH."""
    env = os.environ.get("FUNDTRAIL_ANVIL")
    if env and Path(env).is_file():
        return Path(env)
    if NPM_ANVIL.is_file():
        return NPM_ANVIL
    found = shutil.which("anvil")
    return Path(found) if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class AnvilNode:
    """A running anvil: its URL, its unlocked accounts, and helpers to deploy and transact."""

    url: str
    process: subprocess.Popen[bytes]
    accounts: list[str] = field(default_factory=list)
    rpc: RpcClient | None = None

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        assert self.rpc is not None
        return self.rpc.call(method, params)

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def send(self, sender: str, to: str | None = None, *, value: int = 0, data: str = "0x",
             gas: int = DEFAULT_GAS) -> dict[str, Any]:
        """Send a transaction and return its receipt (mined at once unless mining is off)."""
        tx: dict[str, Any] = {"from": sender, "value": hex(value), "data": data, "gas": hex(gas)}
        if to is not None:
            tx["to"] = to
        txh = self.call("eth_sendTransaction", [tx])
        return self.receipt(txh)

    def receipt(self, txhash: str, timeout: float = 30.0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            r = self.call("eth_getTransactionReceipt", [txhash])
            if r is not None:
                return dict(r)
            if time.monotonic() > end:
                raise SourceError(f"transaction {txhash} not mined within {timeout}s")
            time.sleep(0.05)

    def deploy(self, artifact: str | Artifact, *args: Any, sender: str | None = None, value: int = 0,
               gas: int = 6_000_000) -> str:
        """Deploy a contract; returns its lower-case address."""
        art = load_artifact(artifact) if isinstance(artifact, str) else artifact
        rc = self.send(sender or self.accounts[0], None, value=value, data=art.deploy_data(*args), gas=gas)
        if int(rc["status"], 16) != 1:
            raise SourceError(f"deploying {art.name} reverted (tx {rc['transactionHash']})")
        return str(rc["contractAddress"]).lower()

    def transact(self, artifact: str | Artifact, address: str, fn: str, *args: Any, sender: str | None = None,
                 value: int = 0, gas: int = DEFAULT_GAS) -> dict[str, Any]:
        """Call ``fn`` of the contract at ``address`` in a transaction; returns the receipt (status may be 0)."""
        art = load_artifact(artifact) if isinstance(artifact, str) else artifact
        return self.send(sender or self.accounts[0], address, value=value, data=art.calldata(fn, *args), gas=gas)

    def view(self, artifact: str | Artifact, address: str, fn: str, *args: Any) -> list[Any]:
        art = load_artifact(artifact) if isinstance(artifact, str) else artifact
        out = self.call("eth_call", [{"to": address, "data": art.calldata(fn, *args)}, "latest"])
        return art.decode_output(fn, out)

    def balance(self, address: str, block: str | int = "latest") -> int:
        tag = hex(block) if isinstance(block, int) else block
        return int(self.call("eth_getBalance", [address, tag]), 16)

    def mine(self, blocks: int = 1) -> None:
        self.call("anvil_mine", [hex(blocks)])


@contextlib.contextmanager
def start_anvil(*, port: int | None = None, chain_id: int = 31337, accounts: int = 10,
                balance_eth: int = 10_000, block_time: float | None = None, timestamp: int | None = None,
                hardfork: str | None = None, extra_args: Sequence[str] = (), binary: Path | str | None = None,
                startup_timeout: float = 30.0) -> Iterator[AnvilNode]:
    """Run anvil on 127.0.0.1 for the duration of the ``with`` block."""
    exe = Path(binary) if binary else find_anvil()
    if exe is None or not Path(exe).is_file():
        raise NotFoundError("anvil not found: run dev/setup (it installs @foundry-rs/anvil-linux-amd64 under "
                            "dev/node), or set FUNDTRAIL_ANVIL to an anvil binary")
    last_err: Exception | None = None
    for _attempt in range(3):
        p = port or free_port()
        args = [str(exe), "--host", "127.0.0.1", "--port", str(p), "--chain-id", str(chain_id),
                "--accounts", str(accounts), "--balance", str(balance_eth), "--silent"]
        if block_time is not None:
            args += ["--block-time", str(block_time)]
        if timestamp is not None:
            args += ["--timestamp", str(timestamp)]
        if hardfork:
            args += ["--hardfork", hardfork]
        args += list(extra_args)
        # stderr to a file, never a pipe: nobody reads a pipe while the node runs, and once its buffer (64 KiB)
        # is full anvil blocks on its next write and stops answering
        errlog = tempfile.TemporaryFile()  # noqa: SIM115 (closed in _stop)
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog)
        _ERRLOGS[proc.pid] = errlog
        url = f"http://127.0.0.1:{p}"
        rpc = RpcClient(HttpTransport(url, timeout=10), retries=0)
        node = AnvilNode(url, proc, rpc=rpc)
        try:
            deadline = time.monotonic() + startup_timeout
            while True:
                if proc.poll() is not None:
                    err = _stderr_tail(proc)
                    raise SourceError(f"anvil exited with code {proc.returncode}: {err.strip()[:500]}")
                try:
                    node.call("eth_chainId")
                    break
                except RpcError:
                    if time.monotonic() > deadline:
                        raise SourceError(f"anvil did not answer on {url} within {startup_timeout}s") from None
                    time.sleep(0.05)
            node.accounts = [a.lower() for a in node.call("eth_accounts")]
            node.rpc = RpcClient(HttpTransport(url, timeout=120))
        except SourceError as e:
            _stop(proc)
            rpc.close()
            last_err = e
            if port is not None:
                raise
            continue
        try:
            yield node
        finally:
            _stop(proc)
            rpc.close()
            if node.rpc is not None:
                node.rpc.close()
        return
    raise SourceError(f"could not start anvil: {last_err}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    errlog = _ERRLOGS.pop(proc.pid, None)
    if errlog is not None:
        errlog.close()


_ERRLOGS: dict[int, Any] = {}  # pid -> the temporary file holding that anvil's stderr


def _stderr_tail(proc: subprocess.Popen[bytes], limit: int = 2000) -> str:
    errlog = _ERRLOGS.get(proc.pid)
    if errlog is None:
        return ""
    errlog.flush()
    errlog.seek(0, os.SEEK_END)
    errlog.seek(max(0, errlog.tell() - limit))
    return errlog.read().decode(errors="replace")

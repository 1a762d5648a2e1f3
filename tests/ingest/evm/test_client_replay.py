from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fundtrail.errors import ChainMismatchError, RpcError
from fundtrail.ingest.evm.client import CallError, RetryableError, RpcClient
from fundtrail.ingest.evm.replay import ReplayTransport, etl_file_name
from fundtrail.ingest.evm.service import ingest_evm
from fundtrail.store import Workspace


class Flaky:
    """Fails in scripted ways, then answers eth_blockNumber with the request id."""

    url = "fake://flaky"

    def __init__(self, script):
        self.script = list(script)
        self.sent = []

    def send(self, reqs):
        self.sent.append(len(reqs))
        step = self.script.pop(0) if self.script else "ok"
        if step == "timeout":
            raise RetryableError("timeout")
        if step == "429":
            raise RetryableError("HTTP 429", retry_after=0.5)
        if step == "ratelimit-item":
            return [{"id": reqs[0]["id"], "error": {"code": -32005, "message": "rate limit exceeded"}}] + \
                [{"id": r["id"], "result": hex(r["id"])} for r in reqs[1:]]
        return [{"id": r["id"], "result": hex(r["id"])} for r in reversed(reqs)]

    def close(self):
        pass


def test_retries_timeouts_and_rate_limits_with_backoff():
    sleeps = []
    t = Flaky(["timeout", "429", "ratelimit-item"])
    c = RpcClient(t, max_batch=10, sleep=sleeps.append, backoff=0.1)
    res = c.batch([("eth_blockNumber", [])] * 3)
    assert len(res) == 3 and all(isinstance(r, str) for r in res)
    assert sleeps[0] == pytest.approx(0.1) and sleeps[1] >= 0.5 and len(sleeps) == 3
    assert t.sent == [3, 3, 3, 1]  # the rate-limited item alone is re-sent


def test_gives_up_after_the_retries():
    c = RpcClient(Flaky(["timeout"] * 10), retries=2, sleep=lambda s: None)
    with pytest.raises(RpcError, match="giving up"):
        c.call("eth_blockNumber")


def test_batches_are_split_and_matched_by_id():
    t = Flaky([])
    c = RpcClient(t, max_batch=4)
    res = c.batch([("eth_blockNumber", [])] * 10)
    assert t.sent == [4, 4, 2]
    assert [int(r, 16) for r in res] == list(range(1, 11))


def test_replay_matches_by_method_and_params_whatever_the_batching(tmp_path):
    rec = tmp_path / "rpc.jsonl"
    rec.write_text("\n".join(json.dumps(x) for x in [
        {"method": "eth_chainId", "params": [], "result": "0x7a69"},
        {"method": "eth_getBlockByNumber", "params": ["0x1A", True], "result": {"number": "0x1a"}},
        {"method": "eth_call", "params": [{"to": "0xAB", "data": "0x01"}, "latest"], "error": {"code": 3, "message": "execution reverted"}},
    ]) + "\n")
    c = RpcClient(ReplayTransport.open(f"file://{rec}"), max_batch=2)
    res = c.batch([("eth_getBlockByNumber", ["0x1a", True]), ("eth_chainId", []),
                   ("eth_call", [{"data": "0x01", "to": "0xab"}, "latest"]), ("trace_block", ["0x1"])], errors=True)
    assert res[0] == {"number": "0x1a"} and res[1] == "0x7a69"
    assert isinstance(res[2], CallError) and res[2].code == 3
    assert isinstance(res[3], CallError) and res[3].code == -32601  # a method the recording lacks
    with pytest.raises(RpcError, match="no answer"):
        c.call("eth_getBlockByNumber", ["0x2", True])


@given(st.lists(st.one_of(st.integers(0, 2**64), st.booleans(), st.text("0123456789abcdefx", max_size=8)), max_size=3))
def test_etl_file_names(params):
    name = etl_file_name("eth_x", params)
    assert name.startswith("web3_response.eth_x_") and name.endswith(".json") and name == name.lower()


def test_chain_id_is_checked(tmp_path):
    rec = tmp_path / "rpc.jsonl"
    rec.write_text(json.dumps({"method": "eth_chainId", "params": [], "result": "0x5"}) + "\n")
    with pytest.raises(ChainMismatchError):
        ingest_evm(Workspace(tmp_path / "ws"), f"file://{rec}", "ethereum", end=-1)
    ws = Workspace(tmp_path / "ws2")
    with ws.transaction() as txn:
        txn.set_chain("mine", kind="evm", chain_id=7)
    with pytest.raises(ChainMismatchError):
        ingest_evm(ws, f"file://{rec}", "mine", end=-1)


class SlowNode:
    """Times out (as an HTTP timeout would) on any batch carrying more than ``capacity`` requests, and on
    every request for a block in ``never``; otherwise answers each request with its first param."""

    url = "fake://slow"

    def __init__(self, capacity, never=()):
        self.capacity = capacity
        self.never = set(never)
        self.sent = []

    def send(self, reqs):
        self.sent.append(len(reqs))
        if len(reqs) > self.capacity or any(r["params"][0] in self.never for r in reqs):
            raise RetryableError("ReadTimeout after 60s", timeout=True)
        return [{"id": r["id"], "result": r["params"][0]} for r in reqs]

    def close(self):
        pass


def test_a_timed_out_batch_is_split_not_resent_whole():
    node = SlowNode(capacity=2)
    sleeps = []
    c = RpcClient(node, max_batch=50, sleep=sleeps.append)
    calls = [("debug_traceBlockByNumber", [hex(h), {"tracer": "callTracer"}]) for h in range(8)]
    assert c.batch(calls) == [hex(h) for h in range(8)]
    assert node.sent == [8, 4, 2, 2, 4, 2, 2] and sleeps == []  # halves until each fits; no blind re-sends


def test_a_request_that_never_answers_in_time_gives_up_naming_method_and_block():
    node = SlowNode(capacity=100, never={"0x2d"})
    sleeps = []
    c = RpcClient(node, max_batch=50, sleep=sleeps.append, timeout_retries=2)
    calls = [("debug_traceBlockByNumber", [hex(h), {"tracer": "callTracer"}]) for h in range(40, 50)]
    with pytest.raises(RpcError, match=r"giving up on debug_traceBlockByNumber block 45 \(0x2d\) after 3 attempts") as e:
        c.batch(calls)
    assert e.value.method == "debug_traceBlockByNumber"
    assert len(sleeps) == 2  # bounded: timeout_retries, not the rate-limit retries
    assert sum(1 for n in node.sent if n == 1) == 3

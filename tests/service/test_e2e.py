"""End to end over real HTTP: ``fundtrail serve`` (uvicorn, 2 workers) on a loopback port, keys made with
the CLI, the screening cases, the status codes, pick-up of another process's tag import, SIGTERM, and
SIGKILL under load losing no acknowledged transfer or verdict."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from fundtrail.service.store import open_store

REPO = Path(__file__).resolve().parents[2]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _cli(*args, home):
    r = subprocess.run([sys.executable, "-m", "fundtrail", *args, "--home", str(home)], capture_output=True,
                       text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


class Server:
    def __init__(self, home: Path, workers: int = 2):
        self.home = home
        self.proc = subprocess.Popen([sys.executable, "-m", "fundtrail", "serve", "--home", str(home), "--port", "0",
                                      "--workers", str(workers), "--poll", "1"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=_env(), start_new_session=True)
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.proc.stderr.read()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/v1/ready", timeout=2).status_code == 200:
                    # both workers answer (each loads the index)
                    if all(httpx.get(self.url + "/v1/ready", timeout=2).status_code == 200 for _ in range(6)):
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError("the server did not become ready")

    def kill(self, sig=signal.SIGKILL):
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def home(world, tmp_path_factory):
    h = tmp_path_factory.mktemp("e2e") / "ws"
    shutil.copytree(world.home, h, ignore=shutil.ignore_patterns("service"))
    return h


@pytest.fixture(scope="module")
def server(home):
    keys = {}
    for name, role, rate in (("adm", "admin", 1000), ("scr", "screener", 1000), ("view", "viewer", 1000),
                             ("tiny", "screener", 1)):
        out = _cli("keys", "create", name, "--role", role, "--rate", str(rate), home=home)
        assert out.count("\n") == 1 and out.startswith("ftk_")  # the secret alone, once
        keys[name] = out.strip()
    s = Server(home)
    s.keys = keys
    yield s
    s.kill(signal.SIGTERM)
    try:
        s.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        s.kill()


def _h(server, name):
    return {"Authorization": f"Bearer {server.keys[name]}"}


def test_cases_and_codes(server, world):
    c = httpx.Client(base_url=server.url, timeout=30)
    h = _h(server, "scr")
    for chain, a in world.cashout + world.dormant:
        assert c.post("/v1/screen/address", json={"chain": chain, "address": a}, headers=h).json()["decision"] == \
            "block"
    v = c.post("/v1/screen/address", json={"chain": world.deposit_2hops[0], "address": world.deposit_2hops[1]},
               headers=h).json()
    assert v["decision"] in ("review", "block") and any(e["kind"] == "indirect" for e in v["exposure"])
    assert c.post("/v1/screen/address", json={"chain": world.user[0], "address": world.user[1]},
                  headers=h).json()["decision"] == "allow"
    chain, a = world.later_sanctioned
    v = c.post("/v1/screen/transfer", json={"chain": chain, "direction": "sent", "address": a, "asset": "BTC",
                                            "amount": "1", "time": "2024-06-01"}, headers=h).json()
    assert v["decision"] == "allow" and v["entity"]["sanctions_status"] == "future"
    body = {"chain": world.user[0], "address": world.user[1]}
    assert c.post("/v1/screen/address", json=body).status_code == 401
    assert c.post("/v1/screen/address", json=body, headers={"Authorization": "Bearer x"}).status_code == 401
    assert c.post("/v1/screen/address", json=body, headers=_h(server, "view")).status_code == 403
    r = c.post("/v1/screen/address", json={"chain": world.user[0], "address": "zz"}, headers=h)
    assert r.status_code == 422 and r.json()["field"] == "address"
    assert c.post("/v1/screen/address", content=b"x" * (3 << 20), headers=h).status_code == 413
    codes = []
    for _ in range(8):
        r = c.post("/v1/screen/address", json=body, headers=_h(server, "tiny"))
        codes.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) >= 1
    assert 200 in codes and 429 in codes
    assert "fundtrail_http_requests_total" in c.get("/metrics").text


def test_picks_up_another_process_tag_import(server, world, home, tmp_path):
    chain, a = world.user
    csv = tmp_path / "scam.csv"
    csv.write_text(f"address,chain,label,category,entity,country,source,confidence\n{a},{chain},Scam-sim,scam,"
                   "Scam-sim,,test,1.0\n")
    c = httpx.Client(base_url=server.url, timeout=30)
    _cli("tags", "import", str(csv), home=home)
    t0 = time.monotonic()
    while True:
        v = c.post("/v1/screen/address", json={"chain": chain, "address": a}, headers=_h(server, "scr")).json()
        if v["decision"] == "block" and v["entity"] and v["entity"]["name"] == "Scam-sim":
            break
        assert time.monotonic() - t0 < 10, "the tag import was not picked up within 10 s"
        time.sleep(0.25)
    # every worker has it
    for _ in range(6):
        v = c.post("/v1/screen/address", json={"chain": chain, "address": a}, headers=_h(server, "scr")).json()
        assert v["decision"] == "block"
    # an incident created by another process (this one) becomes a risk group of the served index
    from fundtrail.incidents import create_incident
    from fundtrail.store import Workspace

    before = c.get("/v1/ready").json()["as_of"]["index_version"]
    create_incident(Workspace(home), "second-theft", chain, addresses=[world.dormant[0][1]])
    t0 = time.monotonic()
    while True:
        versions = {c.get("/v1/ready").json()["as_of"]["index_version"] for _ in range(4)}
        if min(versions) > before:
            break
        assert time.monotonic() - t0 < 10, "the new incident was not picked up within 10 s"
        time.sleep(0.25)
    meta = json.loads((home / "exposure" / (home / "exposure" / "CURRENT").read_text().strip() / "meta.json")
                      .read_text())
    assert "second-theft" in {g["entity"] for g in meta["groups"]}


def _worker_counts(home: Path, key: str) -> dict[int, int]:
    """Requests counted per live worker (their metrics snapshots, written every poll)."""
    out = {}
    for f in (home / "service" / "metrics").glob("*.json"):
        try:
            pid = int(f.stem)
            os.kill(pid, 0)
            out[pid] = json.loads(f.read_text())["requests"].get(key, 0)
        except (ValueError, OSError):
            continue
    return out


def _clients_on_both_workers(server, home) -> tuple[httpx.Client, httpx.Client]:
    """Two keep-alive connections served by different workers. Connection i sends 2**i health probes; the
    workers' counts (their metrics snapshots) then say, bit by bit, which worker holds which connection."""
    for _ in range(6):
        clients = [httpx.Client(base_url=server.url, timeout=30, limits=httpx.Limits(max_connections=1))
                   for _ in range(6)]
        before = _worker_counts(home, "GET|/v1/health|200")
        for i, c in enumerate(clients):
            for _ in range(2 ** i):
                assert c.get("/v1/health").status_code == 200
        time.sleep(2.5)  # the workers write their counts every poll (1 s here)
        after = _worker_counts(home, "GET|/v1/health|200")
        on = {pid: after[pid] - before.get(pid, 0) for pid in after}
        assert sum(on.values()) == 2 ** len(clients) - 1, (before, after)
        owner = [next(pid for pid, bits in on.items() if bits >> i & 1) for i in range(len(clients))]
        if len(set(owner)) == 2:
            a = clients[0]
            b = clients[next(i for i, o in enumerate(owner) if o != owner[0])]
            for c in clients:
                if c is not a and c is not b:
                    c.close()
            return a, b
        for c in clients:
            c.close()
    raise AssertionError("no two connections on different workers in 6 tries")


def test_rate_limit_is_shared_by_the_workers(server, world, home):
    a, b = _clients_on_both_workers(server, home)
    body = {"chain": world.user[0], "address": world.user[1]}
    # one worker may use the key's whole burst (a bucket per worker would hold rate / workers)
    rate = 10
    h = {"Authorization": "Bearer " + _cli("keys", "create", "shared-a", "--role", "screener", "--rate", str(rate),
                                           home=home).strip()}
    t0 = time.monotonic()
    codes = [a.post("/v1/screen/address", json=body, headers=h).status_code for _ in range(2 * rate)]
    took = time.monotonic() - t0
    assert set(codes) <= {200, 429} and rate <= codes.count(200) <= rate + rate * took + 1, (codes, took)
    # a key used up through one worker is refused by the other one at its first request
    h = {"Authorization": "Bearer " + _cli("keys", "create", "shared-b", "--role", "screener", "--rate", "1",
                                           home=home).strip()}
    for _ in range(10):
        if a.post("/v1/screen/address", json=body, headers=h).status_code == 429:
            break
    else:
        raise AssertionError("the key's limit was not reached")
    r = b.post("/v1/screen/address", json=body, headers=h)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    a.close()
    b.close()


def test_sigkill_under_load_loses_nothing(world, home):
    keys_home = home
    s = Server(keys_home)
    key = _cli("keys", "create", "load", "--role", "screener", home=keys_home).strip()
    acked: list[tuple[str, str]] = []
    stop = threading.Event()
    chain, a = world.user

    def load():
        with httpx.Client(base_url=s.url, timeout=10) as c:
            while not stop.is_set():
                try:
                    r = c.post("/v1/screen/transfer", json={"chain": chain, "direction": "received", "address": a,
                                                            "asset": "BTC", "amount": "0.01"},
                               headers={"Authorization": f"Bearer {key}"})
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    acked.append((r.json()["transfer_id"], r.json()["verdict_id"]))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(3)
    s.kill(signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(timeout=15)
    s.proc.wait(timeout=10)
    assert len(acked) > 20
    store = open_store(None, keys_home)
    tids = {r["transfer_id"] for r in store.transfers(limit=1_000_000)}
    for tid, vid in acked:
        assert tid in tids
        assert store.verdict(vid) is not None


def test_sigterm_stops_cleanly(server):
    """Last in the module: the shared server stops on SIGTERM (workers finish, exit status 0)."""
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(server.url + "/v1/health", timeout=2)

"""Monitoring end to end over real HTTP on loopback, on both stores (SQLite, PostgreSQL):

- a tag import while ``fundtrail serve --follow`` runs flips a registered transfer from allow to block and
  raises ``decision_changed``; a webhook receiver that fails its first deliveries gets every alert exactly
  once after deduplication, with valid signatures, across a SIGKILL and a restart of the service;
- a watched address that spends on a growing anvil chain raises ``watched_funds_moved`` within 2 s, and a
  reorganisation (anvil ``evm_snapshot`` / ``evm_revert``) withdraws it with a follow-up ``reorg`` alert.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from fundtrail.monitor.signing import verify
from fundtrail.service.store import open_store
from tests.service.conftest import service_db

REPO = Path(__file__).resolve().parents[2]
SECRET = "whsec_0123456789abcdef"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def db_url(request, tmp_path):
    """The service database: an SQLite file, or a PostgreSQL database of its own (in the slow run)."""
    yield from service_db(request.param, tmp_path)


def _env(db: str | None):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("FUNDTRAIL_DB", None)
    if db:
        env["FUNDTRAIL_DB"] = db
    return env


def _cli(*args, home, db=None):
    r = subprocess.run([sys.executable, "-m", "fundtrail", *args, "--home", str(home)], capture_output=True,
                       text=True, env=_env(db), timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


class Server:
    def __init__(self, home: Path, db: str, *extra: str, workers: int = 2):
        self.home = home
        self.proc = subprocess.Popen([sys.executable, "-m", "fundtrail", "serve", "--home", str(home), "--port", "0",
                                      "--workers", str(workers), "--poll", "0.5", "--follow",
                                      "--webhook-host", "127.0.0.1", "--webhook-delay", "0.3", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env(db),
                                     start_new_session=True)
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/v1/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("the server did not become ready")

    def kill(self, sig=signal.SIGKILL):
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


class Receiver:
    """A webhook receiver on a loopback port: answers 500 to its first ``fail`` requests, then 200."""

    def __init__(self, fail: int):
        self.fail = fail
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        rec = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with rec.lock:
                    n = len(rec.requests)
                    rec.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                self.send_response(500 if n < rec.fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def accepted(self) -> dict[str, dict]:
        """Deduplicated on X-Fundtrail-Delivery: the requests answered 200."""
        out = {}
        with self.lock:
            for i, r in enumerate(self.requests):
                if i >= self.fail:
                    out.setdefault(r["headers"]["x-fundtrail-delivery"], r)
        return out

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _h(key):
    return {"Authorization": f"Bearer {key}"}


def _alerts(c, key, **params):
    out, since = [], None
    while True:
        r = c.get("/v1/alerts", params={"since": since, **params} if since else params, headers=_h(key))
        assert r.status_code == 200, r.text
        page = r.json()
        out += page["alerts"]
        if not page["alerts"]:
            return out
        since = page["next"]


def _keys(home, db):
    return {n: _cli("keys", "create", n, "--role", role, home=home, db=db).strip()
            for n, role in (("adm", "admin"), ("inv", "investigator"), ("scr", "screener"))}


# --- tags -> decision_changed -> webhooks, across SIGKILL ---------------------------------------------------

@pytest.mark.slow
def test_tag_import_flips_transfer_and_webhooks_survive_sigkill(world, db_url, tmp_path):
    home = tmp_path / "ws"
    shutil.copytree(world.home, home, ignore=shutil.ignore_patterns("service"))
    keys = _keys(home, db_url)
    rec = Receiver(fail=3)
    s = Server(home, db_url)
    try:
        c = httpx.Client(base_url=s.url, timeout=30)
        r = c.post("/v1/webhooks", json={"url": rec.url, "secret": SECRET, "events": ["*"]}, headers=_h(keys["adm"]))
        assert r.status_code == 201, r.text
        wid = r.json()["webhook_id"]
        # a receiver elsewhere is refused
        r = c.post("/v1/webhooks", json={"url": "http://192.0.2.1/hook", "secret": SECRET}, headers=_h(keys["adm"]))
        assert r.status_code == 422 and r.json()["field"] == "url"
        assert c.post("/v1/webhooks", json={"url": rec.url, "secret": SECRET},
                      headers=_h(keys["inv"])).status_code == 403
        users = sorted(a for a, o in world.truth["owners"]["regtest"].items()
                       if o.startswith("user:") and not o.startswith("user:cj"))[2:6]
        tids = {}
        for i, a in enumerate(users):
            r = c.post("/v1/transfers", json={"chain": "regtest", "direction": "sent", "address": a, "asset": "BTC",
                                              "amount": "0.5", "external_id": f"ext-{i}", "customer_id": "cust-1"},
                       headers=_h(keys["scr"]))
            assert r.status_code == 200, r.text
            assert r.json()["decision"] == "allow", r.json()
            tids[a] = r.json()["transfer_id"]
        csv = tmp_path / "scam.csv"
        csv.write_text("address,chain,label,category,entity,country,source,confidence\n" + "".join(
            f"{a},regtest,Scam-mon,scam,Scam-mon,,test,1.0\n" for a in users))
        _cli("tags", "import", str(csv), home=home, db=db_url)
        store = open_store(db_url, home)
        t0 = time.monotonic()
        while True:
            n = store.execute("SELECT count(*) FROM alerts WHERE kind = 'decision_changed'")[0][0]
            if n >= len(users):
                break
            assert time.monotonic() - t0 < 60, f"only {n} decision_changed alerts"
            time.sleep(0.2)
        # the receiver has failed the first deliveries; kill the service with deliveries pending
        s.kill(signal.SIGKILL)
        pending = store.execute("SELECT count(*) FROM deliveries WHERE status = 'pending'")[0][0]
        s = Server(home, db_url)
        c = httpx.Client(base_url=s.url, timeout=30)
        alerts = _alerts(c, keys["inv"])
        assert len({a["alert_id"] for a in alerts}) == len(alerts) >= len(users)
        t0 = time.monotonic()
        while len(rec.accepted()) < len(alerts):
            assert time.monotonic() - t0 < 60, (len(rec.accepted()), len(alerts), pending)
            time.sleep(0.2)
        got = rec.accepted()
        assert len(got) == len(alerts)  # every alert exactly once after deduplication
        bodies = {}
        for r in got.values():
            hd = r["headers"]
            assert verify(SECRET, hd["x-fundtrail-timestamp"], r["body"], hd["x-fundtrail-signature"])
            body = json.loads(r["body"])
            assert hd["x-fundtrail-event"] == body["kind"]
            bodies[body["alert_id"]] = body
        assert set(bodies) == {a["alert_id"] for a in alerts}
        # the attempts are in the delivery log: one 200 per delivery; of the three failures all but the one
        # attempt in flight when the service was killed (sent, never recorded)
        d = c.get(f"/v1/webhooks/{wid}/deliveries", headers=_h(keys["adm"])).json()["deliveries"]
        assert all(x["status"] == "delivered" and x["log"][-1]["status_code"] == 200 for x in d)
        codes = [a["status_code"] for x in d for a in x["log"]]
        assert codes.count(200) == len(alerts) and codes.count(500) >= 2 and set(codes) == {200, 500}
        assert len(codes) <= len(rec.requests)
        # the transfers flipped, with their history
        for tid in tids.values():
            t = c.get(f"/v1/transfers/{tid}", headers=_h(keys["scr"])).json()
            assert t["decision"] == "block" and t["external_id"].startswith("ext-")
            assert t["changes"][-1]["decision_before"] == "allow"
            assert t["past_verdicts"][0]["decision"] == "allow"
        dc = [b for b in bodies.values() if b["kind"] == "decision_changed"]
        assert {b["subject"]["transfer_id"] for b in dc} == set(tids.values())
        assert all(b["verdict_before"]["decision"] == "allow" and b["verdict_after"]["decision"] == "block"
                   for b in dc)
        # manual redelivery: same delivery id again
        did = d[0]["delivery_id"]
        n0 = len(rec.requests)
        r = c.post(f"/v1/webhooks/{wid}/deliveries/{did}/redeliver", headers=_h(keys["adm"]))
        assert r.status_code == 200, r.text
        t0 = time.monotonic()
        while len(rec.requests) == n0:
            assert time.monotonic() - t0 < 10
            time.sleep(0.1)
        assert rec.requests[-1]["headers"]["x-fundtrail-delivery"] == did
        # acknowledge and resolve, with comments, audited
        aid = dc[0]["alert_id"]
        r = c.post(f"/v1/alerts/{aid}/actions", json={"action": "acknowledge", "comment": "looking"},
                   headers=_h(keys["inv"]))
        assert r.status_code == 200 and r.json()["status"] == "acknowledged"
        assert c.post(f"/v1/alerts/{aid}/actions", json={"action": "resolve"},
                      headers=_h(keys["scr"])).status_code == 403
        r = c.post(f"/v1/alerts/{aid}/actions", json={"action": "resolve", "comment": "frozen"},
                   headers=_h(keys["inv"]))
        assert r.json()["status"] == "resolved" and [x["comment"] for x in r.json()["actions"]] == ["looking", "frozen"]
        audit = store.execute("SELECT count(*) FROM audit WHERE endpoint = '/v1/alerts/{alert_id}/actions'")[0][0]
        assert audit >= 3
        # the cursor is stable: paging from the middle gives the rest in order
        mid = alerts[len(alerts) // 2]["cursor"]
        rest = c.get("/v1/alerts", params={"since": mid}, headers=_h(keys["inv"])).json()["alerts"]
        assert [a["alert_id"] for a in rest] == [a["alert_id"] for a in alerts[len(alerts) // 2 + 1:]]
        # the CLI shows the same alerts
        out = _cli("alerts", "--json", home=home, db=db_url)
        assert [json.loads(x)["alert_id"] for x in out.splitlines()] == [a["alert_id"] for a in alerts]
        store.close()
    finally:
        s.kill(signal.SIGTERM)
        rec.close()


# --- anvil: watches and reorgs ---------------------------------------------------------------------------------

@pytest.fixture
def anvil():
    from fundtrail.simulate.contracts.anvil import find_anvil, start_anvil

    if find_anvil() is None:
        pytest.skip("anvil is not installed: run dev/setup (npm installs @foundry-rs/anvil-linux-amd64 under dev/node)")
    with start_anvil() as node:
        yield node


def _wait(pred, timeout, what):
    t0 = time.monotonic()
    while True:
        v = pred()
        if v:
            return v, time.monotonic() - t0
        assert time.monotonic() - t0 < timeout, f"{what} not within {timeout} s"
        time.sleep(0.05)


def test_watch_on_growing_anvil_chain_and_reorg(anvil, db_url, tmp_path):
    from fundtrail.ingest.evm.service import ingest_evm
    from fundtrail.store import Workspace

    home = tmp_path / "ws"
    a0, watched, dest = anvil.accounts[0], anvil.accounts[1], anvil.accounts[2]
    anvil.send(a0, watched, value=5 * 10**18)
    anvil.mine(2)
    ingest_evm(Workspace(home), anvil.url, "anvil")
    keys = _keys(home, db_url)
    s = Server(home, db_url, "--source", f"evm:anvil={anvil.url}", workers=1)
    try:
        c = httpx.Client(base_url=s.url, timeout=30)
        r = c.post("/v1/watches", json={"chain": "anvil", "address": watched, "note": "thief"},
                   headers=_h(keys["inv"]))
        assert r.status_code == 201, r.text
        wid = r.json()["watch_id"]
        assert c.post("/v1/watches", json={"chain": "anvil", "address": watched},
                      headers=_h(keys["scr"])).status_code == 403
        assert c.post("/v1/watches", json={"chain": "anvil", "address": "0x12"},
                      headers=_h(keys["inv"])).json()["field"] == "address"
        # the chain grows; nothing moves yet
        for _ in range(3):
            anvil.mine(1)
            time.sleep(0.3)
        assert not _alerts(c, keys["inv"], kind="watched_funds_moved")
        snap = anvil.call("evm_snapshot")
        tx = anvil.send(watched, dest, value=2 * 10**18)["transactionHash"]
        t_mined = time.monotonic()

        def moved():
            got = [a for a in _alerts(c, keys["inv"], kind="watched_funds_moved") if a["details"]["txid"] == tx]
            return got[0] if got else None

        alert, _ = _wait(moved, 10, "the watched_funds_moved alert")
        lag = time.monotonic() - t_mined
        print(f"watched spend -> alert: {lag:.2f} s")
        assert lag < 2.0, f"alert after {lag:.2f} s"
        assert alert["subject"]["watch_id"] == wid and alert["subject"]["note"] == "thief"
        assert alert["details"]["spent"][0]["address"] == watched
        assert {d["address"] for d in alert["details"]["destinations"]} == {dest}
        assert alert["details"]["destinations"][0]["amount"] == "2.000000000000000000"
        anvil.mine(2)
        # reorg: back to before the spend, and a longer branch without it
        assert anvil.call("evm_revert", [snap]) is True
        anvil.mine(6)

        def withdrawn():
            a = c.get(f"/v1/alerts/{alert['alert_id']}", headers=_h(keys["inv"])).json()
            return a if a["status"] == "withdrawn" else None

        _wait(withdrawn, 15, "the withdrawal")
        reorg = [a for a in _alerts(c, keys["inv"], kind="reorg")
                 if a["details"]["withdrawn_alert_id"] == alert["alert_id"]]
        assert len(reorg) == 1 and reorg[0]["details"]["orphaned_hash"] == alert["block"]["hash"]
        # the same spend on the new branch fires again (a follow-up alert on the new block)
        tx2 = anvil.send(watched, dest, value=10**18)["transactionHash"]
        _wait(lambda: [a for a in _alerts(c, keys["inv"], kind="watched_funds_moved")
                       if a["details"]["txid"] == tx2], 10, "the alert on the new branch")
        # the CLI lists and removes the watch
        assert wid in _cli("watch", "list", home=home, db=db_url)
        _cli("watch", "remove", wid, home=home, db=db_url)
        assert c.get(f"/v1/watches/{wid}", headers=_h(keys["inv"])).json()["removed"]
    finally:
        s.kill(signal.SIGTERM)

"""The alert store and the webhook outbox against a real receiver on loopback, on both stores."""

from __future__ import annotations

import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrail.errors import FieldError
from fundtrail.monitor.alerts import Alert, AlertBook
from fundtrail.monitor.outbox import MIN_MAX_AGE, Backoff, Dispatcher, Webhooks, check_url
from fundtrail.monitor.signing import sign, verify

SECRET = "s3cret-s3cret-s3cret"


class Receiver:
    def __init__(self, codes):
        self.codes = list(codes)
        self.got = []
        rec = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                rec.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(rec.codes.pop(0) if rec.codes else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/in"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _alert(i, **kw):
    return Alert(kind="decision_changed", severity="high", dedupe_key=f"k{i}", subject={"transfer_id": f"t{i}"},
                 **kw)


def test_signature_format():
    body = b'{"alert_id":"al_1"}'
    sig = sign("key", "1700000000", body)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert verify("key", "1700000000", body, sig)
    assert not verify("key", "1700000001", body, sig)
    assert not verify("other", "1700000000", body, sig)


@given(st.integers(1, 60), st.integers(0, 2**32))
def test_backoff_grows_within_bounds(attempts, seed):
    b = Backoff(base=5, cap=3600, jitter=0.25)
    d = b.delay(attempts, random.Random(seed))
    ideal = min(3600, 5 * 2 ** (attempts - 1))
    assert 0.75 * ideal <= d <= 1.25 * ideal
    assert b.max_age >= MIN_MAX_AGE  # retries go on for at least 24 h


def test_only_configured_hosts():
    assert check_url("http://127.0.0.1:9/x", ("127.0.0.1",))
    for url in ("http://10.0.0.1/x", "ftp://127.0.0.1/x", "http://u:p@127.0.0.1/x"):
        with pytest.raises(FieldError):
            check_url(url, ("127.0.0.1",))
    with pytest.raises(FieldError, match="no webhook host"):
        check_url("http://127.0.0.1/x", ())


def test_alerts_dedupe_cursor_and_outbox(db):
    rec = Receiver([500, 503])
    try:
        hooks = Webhooks(db, ("127.0.0.1",))
        w = hooks.add(rec.url, SECRET, ["decision_changed"], "adm")
        other = hooks.add(rec.url + "2", SECRET, ["reorg"], "adm")
        book = AlertBook(db)
        book.raise_([_alert(i) for i in range(5)])
        book.raise_([_alert(1), _alert(2)])  # the same events again: stored once
        items, nxt = book.page(None, 3)
        assert len(items) == 3 and nxt == items[-1]["cursor"]
        rest, _ = book.page(nxt, 100)
        assert len(rest) == 2 and int(rest[0]["cursor"]) > int(nxt)
        assert db.execute("SELECT count(*) FROM deliveries WHERE webhook_id = ?", (w["webhook_id"],))[0][0] == 5
        assert db.execute("SELECT count(*) FROM deliveries WHERE webhook_id = ?", (other["webhook_id"],))[0][0] == 0
        d = Dispatcher(db, ("127.0.0.1",), Backoff(base=0.0, jitter=0.0))
        sent = 0
        for _ in range(5):
            sent += d.run_once()
        d.close()
        assert sent == 7  # two failures, then five deliveries
        ids = [h["x-fundtrail-delivery"] for h, _ in rec.got]
        assert len(set(ids)) == 5
        for h, body in rec.got:
            assert verify(SECRET, h["x-fundtrail-timestamp"], body, h["x-fundtrail-signature"])
            assert h["x-fundtrail-event"] == "decision_changed" and json.loads(body)["alert_id"]
        log = hooks.deliveries(w["webhook_id"])
        assert all(x["status"] == "delivered" for x in log)
        codes = [[a["status_code"] for a in x["log"]] for x in log]
        assert sum(len(c) for c in codes) == 7 and all(c[-1] == 200 for c in codes)
        assert sorted(x for c in codes for x in c[:-1]) == [500, 503]
        # a manual redelivery sends the same delivery id again
        did = log[0]["delivery_id"]
        assert hooks.redeliver(w["webhook_id"], did)["status"] == "pending"
        d = Dispatcher(db, ("127.0.0.1",))
        assert d.run_once() == 1
        d.close()
        assert rec.got[-1][0]["x-fundtrail-delivery"] == did
    finally:
        rec.close()


def test_dispatcher_never_contacts_other_hosts_and_keeps_retrying(db):
    hooks = Webhooks(db, ("127.0.0.1",))
    w = hooks.add("http://127.0.0.1:9/none", SECRET, None, "adm")
    AlertBook(db).raise_([_alert(1)])
    # the configuration changed: 127.0.0.1 is no longer a webhook host
    d = Dispatcher(db, ("example.invalid",), Backoff(base=0.0, jitter=0.0, max_age=0.0))
    assert d.run_once() >= 1
    d.close()
    (x,) = hooks.deliveries(w["webhook_id"])
    assert x["log"][0]["status_code"] is None and "not a configured webhook host" in x["log"][0]["error"]
    # max_age is raised to 24 h: still pending, retried later
    assert x["status"] == "pending"


def test_ack_resolve_and_withdraw(db):
    book = AlertBook(db)
    a = _alert(1, chain="c", height=7, block_hash="h7")
    book.raise_([a])
    assert book.act(a.alert_id, "acknowledge", "on it", "inv")["status"] == "acknowledged"
    with pytest.raises(FieldError):
        book.act(a.alert_id, "delete", None, "inv")
    assert book.on_blocks("c", 5) == [(a.alert_id, 7, "h7", "decision_changed")]
    (f,) = book.withdraw(book.on_blocks("c", 5), "c", {7: "h7b"})
    assert book.get(a.alert_id)["status"] == "withdrawn"
    assert f.kind == "reorg" and f.details["new_hash"] == "h7b"
    assert book.on_blocks("c", 5) == []
    with pytest.raises(FieldError):
        book.act(a.alert_id, "resolve", None, "inv")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.integers(0, 30), max_size=8), min_size=1, max_size=8), st.integers(1, 7))
def test_paging_gives_every_event_once_in_order(tmp_path_factory, batches, page):
    from fundtrail.service.store import open_store

    d = tmp_path_factory.mktemp("page")
    db = open_store(f"sqlite:///{d / 'service.db'}", d)
    book = AlertBook(db)
    first_seen: list[int] = []
    for b in batches:
        book.raise_([_alert(i) for i in b])
        first_seen += [i for i in dict.fromkeys(b) if i not in first_seen]
    got, since = [], None
    while True:
        items, since = book.page(since, page)
        if not items:
            break
        got += [a["subject"]["transfer_id"] for a in items]
    assert got == [f"t{i}" for i in first_seen]
    db.close()

"""The service's commands: keys, policy (show, set, backtest), audit, screen and exposure build."""

from __future__ import annotations

import json
import shutil

import pytest

from fundtrail.cli.main import main
from fundtrail.service.screening import Screener
from fundtrail.service.store import open_store
from fundtrail.store import Workspace


@pytest.fixture(scope="module")
def home(world, tmp_path_factory):
    h = tmp_path_factory.mktemp("cli") / "ws"
    shutil.copytree(world.home, h, ignore=shutil.ignore_patterns("service"))
    return h


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_keys(capsys, home):
    code, out, _ = run(capsys, "keys", "create", "alice", "--role", "investigator", "--home", str(home))
    assert code == 0 and out.startswith("ftk_") and out.count("\n") == 1
    secret = out.strip()
    code, out, err = run(capsys, "keys", "create", "alice", "--role", "viewer", "--home", str(home))
    assert code != 0 and "exists" in err
    code, out, _ = run(capsys, "keys", "create", "bob", "--role", "boss", "--home", str(home))
    assert code != 0
    code, out, _ = run(capsys, "keys", "list", "--json", "--home", str(home))
    rows = [json.loads(x) for x in out.splitlines()]
    assert rows[0]["name"] == "alice" and rows[0]["role"] == "investigator" and secret not in out
    store = open_store(None, home)
    assert secret not in json.dumps(store.execute("SELECT * FROM api_keys"))  # only the hash is stored
    assert run(capsys, "keys", "revoke", "alice", "--home", str(home))[0] == 0
    assert open_store(None, home).keys()[0]["revoked"]


def test_screen_and_exposure_build(capsys, home, world):
    code, out, _ = run(capsys, "exposure", "build", "--home", str(home), "--json")
    assert code == 0 and json.loads(out)["version"] >= 2
    chain, a = world.cashout[0]
    code, out, _ = run(capsys, "screen", "--chain", chain, a, world.cashout[1][1], "--json", "--home", str(home))
    vs = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and [v["decision"] for v in vs] == ["block", "block"]
    code, out, _ = run(capsys, "screen", "--chain", world.user[0], world.user[1], "--home", str(home))
    assert code == 0 and out.startswith("ALLOW")
    code, _, err = run(capsys, "screen", "--chain", "nochain", "x", "--home", str(home))
    assert code == 2 and "chain" in err


def test_policy_backtest(capsys, home, world, tmp_path):
    ws = Workspace(home)
    store = open_store(None, home)
    from fundtrail.service.policies import current_policy

    s = Screener.open(ws, current_policy(store))
    vs = [s.screen_address(c, a).to_json() for c, a in [world.deposit_2hops, world.user, world.cashout[0]]]
    store.save_verdicts(vs, "test")
    cand = tmp_path / "lenient.yaml"
    cand.write_text("id: lenient\nrules:\n  - {id: ONLY-DIRECT, text: only direct stolen funds, "
                    "category: stolen_funds, kind: direct, decision: block}\n")
    code, out, _ = run(capsys, "policy", "test", str(cand), "--json", "--home", str(home))
    res = json.loads(out)
    assert code == 0 and res["replayed"] == 3
    changed = {c["address"]: c for c in res["changed"]}
    assert world.deposit_2hops[1] in changed and changed[world.deposit_2hops[1]]["after"] == "allow"
    assert world.cashout[0][1] not in changed and world.user[1] not in changed
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [{id: X, text: t, decision: nope}]")
    code, _, err = run(capsys, "policy", "test", str(bad), "--home", str(home))
    assert code == 3 and "rules[0].decision" in err
    assert run(capsys, "policy", "set", str(cand), "--home", str(home))[0] == 0
    code, out, _ = run(capsys, "policy", "show", "--home", str(home))
    assert "ONLY-DIRECT" in out


def test_audit_cli(capsys, home):
    store = open_store(None, home)
    store.audit("k", "admin", "GET", "/v1/policy", "0" * 64, 200, None)
    code, out, _ = run(capsys, "audit", "--json", "--home", str(home))
    rows = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and rows[-1]["endpoint"] == "/v1/policy"

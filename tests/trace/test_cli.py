"""``fundtrail trace`` end to end through the CLI."""

from __future__ import annotations

import json

from fundtrail.cli.main import main
from fundtrail.store import Workspace

from .test_utxo import _story
from .world import addr


def test_trace_json_and_tables(home, capsys):
    _story(Workspace(home))
    rc = main(["trace", "--chain", "regtest", "--address", addr("thief"), "--json", "--home", str(home)])
    assert rc == 0
    j = json.loads(capsys.readouterr().out)
    assert list(j)[:8] == ["model", "direction", "seeds", "traced_amount", "endpoints", "unspent", "mixers",
                           "bridges"]
    assert j["traced_amount"] == [{"chain": "regtest", "asset": "BTC", "amount": "0.00099000", "symbol": "BTC",
                                   "usd": None}]
    assert j["endpoints"][0]["entity"] == "Garantex" and j["endpoints"][0]["amount"] == "0.00031893"
    assert all(b["balanced"] for b in j["conservation"])
    rc = main(["trace", "--chain", "regtest", "--address", addr("thief"), "--model", "all", "--home", str(home)])
    out = capsys.readouterr().out
    assert rc == 0 and "Garantex" in out and "endpoints by model" in out
    rc = main(["trace", "--chain", "regtest", "--address", addr("thief"), "--home", str(home)])
    assert rc == 0 and "conservation" in capsys.readouterr().out


def test_trace_without_seeds_is_a_usage_error(home, capsys):
    assert main(["trace", "--chain", "regtest", "--home", str(home)]) == 2

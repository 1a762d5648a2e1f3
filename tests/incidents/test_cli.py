"""``fundtrail incident`` and ``fundtrail prices`` from the command line."""

from __future__ import annotations

import json

from fundtrail.cli.main import main
from fundtrail.incidents import get_incident
from fundtrail.prices import PriceBook
from fundtrail.store import Workspace

BTC_A = "bc1qdc6qh88lkdaf3899gnntk7q293ufq8flalcz86"
ETH = "0x7521D1CAdBCFa91Eec65Aa16715b94FfC1c9654b"


def test_incident_create_list_show(home, capsys):
    assert main(["incident", "create", "heist", "--chain", "bitcoin", "--chain", "ethereum", "--address", BTC_A,
                 "--address", ETH, "--actor", "lazarus", "--since", "2024-03-01", "--home", str(home)]) == 0
    inc = get_incident(Workspace(home), "heist")
    assert [s.chain for s in inc.seeds] == ["bitcoin", "ethereum"] and inc.actor == "lazarus"
    capsys.readouterr()
    assert main(["incident", "list", "--json", "--home", str(home)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["name"] == "heist" and rows[0]["since"] == "2024-03-01T00:00:00Z"
    assert main(["incident", "show", "heist", "--home", str(home)]) == 0
    assert ETH.lower() in capsys.readouterr().out


def test_incident_errors_have_exit_codes(home, capsys):
    bad = ETH[:-1] + "B"
    assert main(["incident", "create", "x", "--chain", "ethereum", "--address", bad, "--home", str(home)]) == 3
    assert "EIP-55" in capsys.readouterr().err
    assert main(["incident", "create", "x", "--chain", "bitcoin", "--home", str(home)]) == 2
    assert main(["incident", "show", "nope", "--home", str(home)]) == 2


def test_prices_import(home, tmp_path, capsys):
    p = tmp_path / "p.csv"
    p.write_text("date,asset,usd\n2024-03-01,BTC,62000\n2024-03-01,ETH,3400\n")
    assert main(["prices", "import", str(p), "--home", str(home)]) == 0
    assert "imported 2 prices" in capsys.readouterr().out
    assert PriceBook.load(Workspace(home)).usd("bitcoin", "BTC", None, __import__("datetime").date(2024, 3, 1),
                                               50_000_000, 8) == 31000.0
    p.write_text("date,asset,usd\n2024-03-01,BTC,x\n")
    assert main(["prices", "import", str(p), "--home", str(home)]) == 3
    assert "line 2" in capsys.readouterr().err

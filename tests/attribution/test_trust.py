"""Issue 23, findings 1 and 4: no import can erase, replace or out-rank another dataset; authoritative
lists only from their official source or a pinned digest; one OFAC list across its formats.

The attacks run through the command in a child process (tests/attribution/hostile.py), as a co-user
(``FUNDTRAIL_USER=mallory``) or as the workspace owner, on the real OFAC files in ../shared/data.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from tests.attribution.hostile import run, sanctioned
from tests.conftest import shared_path

LAZARUS_ETH = "0x01e2919679362dfbc9ee1644ba9c6da6d6245bb1"  # real SDN address (LAZARUS GROUP, DPRK3)
TORNADO_ETH = "0x12d66f87a04a9e220743712ce6d9bb1b5616b8fc"
TORNADO_UID = "39796"
ADDR = "0x51e9d833ecae4e8d9d8be17300aee6d3398c135d"  # a real, valid address (FBI Bybit list)

FAKE_SDN_XML = """<sdnList><publshInformation><Publish_Date>{date}</Publish_Date></publshInformation>
<sdnEntry><uid>1</uid><lastName>Nobody</lastName><sdnType>Entity</sdnType><idList><id><idType>Digital Currency \
Address - ETH</idType><idNumber>0x1111111111111111111111111111111111111111</idNumber></id></idList></sdnEntry>
</sdnList>
"""


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _ofac_pair() -> list[Path]:
    return [shared_path("ofac", "ofac_sdn_full_2024-05-03.csv"),
            shared_path("ofac", "watchman_sdn_comments_2025-02-27.csv")]


def pin(home: Path, files: list[Path], *extra: str, dataset: str = "ofac:sdn"):
    args = ["tags", "import", *map(str, files), "--as", dataset]
    for f in files:
        args += ["--sha256", sha(f)]
    return run([*args, *extra], home=home)


def _count(home: Path, dataset: str) -> int:
    r = run(["query", f"select count(*) AS n from tag_observations where dataset = '{dataset}'", "--json"],
            home=home)
    assert r.code == 0, r.err
    return json.loads(r.out.splitlines()[0])["n"]


@pytest.fixture(scope="module")
def pinned_home(tmp_path_factory) -> Path:
    """A workspace whose owner imported the real sdn.csv (+ comments) of 2024-05-03 as ofac:sdn, pinned."""
    home = tmp_path_factory.mktemp("pinned") / "ws"
    r = pin(home, _ofac_pair())
    assert r.code == 0, r.err
    assert sanctioned(home, LAZARUS_ETH, "2024-07-01")
    return home


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


# --- finding 1: a fake file cannot erase or delist the authoritative list --------------------------------

@pytest.mark.parametrize("user", ["mallory", None])  # a co-user, and the workspace owner without a pin
@pytest.mark.parametrize("date", ["05/03/2024", "06/01/2024"])  # same date (replace) and later (delist)
def test_fake_sdn_xml_cannot_erase_ofac(pinned_home: Path, tmp_path: Path, user: str | None, date: str) -> None:
    home = _copy(pinned_home, tmp_path / "ws")
    before = _count(home, "ofac:sdn")
    fake = tmp_path / "SDN.XML"
    fake.write_text(FAKE_SDN_XML.format(date=date))
    r = run(["tags", "import", str(fake)], home=home, user=user)
    assert r.code == 0, r.err
    assert "ofac:sdn version" not in r.out  # stored in the importer's own dataset, not in ofac:sdn
    assert sanctioned(home, LAZARUS_ETH, "2024-07-01")
    assert sanctioned(home, LAZARUS_ETH, "2026-01-01")
    assert _count(home, "ofac:sdn") == before == 599
    # --as-of cannot move it either, nor can --as name the authoritative dataset without a pin
    r = run(["tags", "import", str(fake), "--as-of", "2030-01-01"], home=home, user=user)
    assert r.code == 0 and sanctioned(home, LAZARUS_ETH, "2031-01-01")
    r = run(["tags", "import", str(fake), "--as", "ofac:sdn"], home=home, user=user)
    assert r.code == 2 and "not yours" in r.err
    assert _count(home, "ofac:sdn") == 599


def test_only_an_admin_can_pin_and_the_digest_must_match(pinned_home: Path, tmp_path: Path) -> None:
    home = _copy(pinned_home, tmp_path / "ws")
    fake = tmp_path / "SDN.XML"
    fake.write_text(FAKE_SDN_XML.format(date="06/01/2024"))
    r = run(["tags", "import", str(fake), "--as", "ofac:sdn", "--sha256", sha(fake)], home=home, user="mallory")
    assert r.code == 2 and "only an admin" in r.err
    r = run(["tags", "import", str(fake), "--as", "ofac:sdn", "--sha256", "0" * 64], home=home)
    assert r.code == 2 and "not among the pinned" in r.err
    assert _count(home, "ofac:sdn") == 599 and sanctioned(home, LAZARUS_ETH, "2024-07-01")


def _derived_sdn(src: Path, out: Path, *, drop: set[str]) -> Path:
    """A later snapshot of the real sdn.csv without the entries ``drop`` (made here, by the test)."""
    with open(src, encoding="latin-1", newline="") as fh, open(out, "w", encoding="latin-1", newline="") as w:
        wr = csv.writer(w, lineterminator="\r\n")
        for row in csv.reader(fh):
            if len(row) == 12 and row[0] not in drop:
                wr.writerow(row)
    return out


def test_large_delisting_and_replacement_need_confirm_and_are_recorded(pinned_home: Path,
                                                                         tmp_path: Path) -> None:
    home = _copy(pinned_home, tmp_path / "ws")
    src, comments = _ofac_pair()
    # a later list without Tornado Cash (90 of ~600 addresses, 15%) and the Lazarus Group entry
    later = _derived_sdn(src, tmp_path / "sdn_2026-01-15.csv", drop={TORNADO_UID})
    r = pin(home, [later, comments])
    assert r.code == 3 and "--confirm" in r.err and "delists" in r.err
    assert sanctioned(home, TORNADO_ETH, "2026-09-01")  # refused: nothing changed
    r = pin(home, [later, comments], "--confirm")
    assert r.code == 0, r.err
    assert not sanctioned(home, TORNADO_ETH, "2026-09-01") and sanctioned(home, TORNADO_ETH, "2025-01-01")
    # a different file for a date already stored replaces it only with --confirm; the old version is kept
    same_day = _derived_sdn(src, tmp_path / "sdn_2024-05-03.csv", drop={"1"})  # drops nothing real
    same_day.write_bytes(same_day.read_bytes() + b"\r\n")
    r = pin(home, [same_day, comments])
    assert r.code == 3 and "replaces the version of 2024-05-03" in r.err
    r = pin(home, [same_day, comments], "--confirm")
    assert r.code == 0, r.err
    h = run(["tags", "history", "ofac:sdn", "--json"], home=home)
    assert h.code == 0, h.err
    rows = [json.loads(x) for x in h.out.splitlines()]
    assert [(r["version"], r["superseded"], r["confirmed"]) for r in rows] == \
        [(1, True, False), (3, False, True), (2, False, True)]
    assert rows[0]["superseded_by"] == 3 and rows[1]["replaces"] == 1
    assert rows[2]["delisted"] == 90 and all(r["importer"] and r["digest"] for r in rows)
    s = run(["tags", "sources", "--json"], home=home)
    src_rows = [json.loads(x) for x in s.out.splitlines()]
    assert src_rows == [{**src_rows[0], "dataset": "ofac:sdn", "tier": "authoritative", "versions": 2,
                         "replaced": 1}]


# --- one publication, many copies ----------------------------------------------------------------------

def _json_without_tornado(src: Path, out: Path, date: str) -> Path:
    doc = json.loads(src.read_text())
    doc["metadata"]["sdnListDate"] = date
    doc["addresses"] = {a: r for a, r in doc["addresses"].items()
                        if not any(e.get("uid") == TORNADO_UID for e in r["entries"])}
    out.write_text(json.dumps(doc, indent=2))
    return out


@pytest.mark.parametrize("order", ["oldest-first", "newest-first"])
def test_ofac_copies_in_other_formats_are_versions_of_one_list(tmp_path: Path, order: str) -> None:
    """The real sdn.csv of 2024-05-03, the real JSON mirror of 2025-02-26 and a 2026 JSON snapshot
    derived from it without Tornado Cash (delisted 2025-03-21): the newest version governs."""
    home = tmp_path / "ws"
    mirror = shared_path("ofac", "thomasgregg_sanctioned-addresses_sdn-2025-02-26.json")
    later = _json_without_tornado(mirror, tmp_path / "sdn-2026-01-15.json", "01/15/2026")
    steps = [_ofac_pair(), [mirror], [later]]
    for files in (steps if order == "oldest-first" else steps[::-1]):
        r = pin(home, files, "--confirm")
        assert r.code == 0, r.err
    assert sanctioned(home, TORNADO_ETH, "2024-06-01")
    assert sanctioned(home, TORNADO_ETH, "2025-03-01")
    assert not sanctioned(home, TORNADO_ETH, "2026-09-01")
    r = run(["tags", "at", TORNADO_ETH, "--date", "2026-09-01", "--json"], home=home)
    hist = r.json()["sanctions"]
    assert hist and not any(x["valid_now"] for x in hist)  # listed once, not any more: historical
    # the mirror lower-cased base58 addresses: restored from the csv version, not taken as delisted
    legacy = "12QtD5BFwRsdNsAZY76UVE1xyCGNTojH9h"
    assert sanctioned(home, legacy, "2025-06-01") and sanctioned(home, legacy, "2026-09-01")


def test_owners_older_copy_is_superseded_by_the_authoritative_list(tmp_path: Path) -> None:
    """The measured bug: the owner's own (unpinned) copy of the 2024 csv kept Tornado Cash sanctioned in
    2026 after a newer authoritative version delisted it. A lower tier's copy of the same publication
    stops counting once a higher tier holds a version at least as new."""
    home = tmp_path / "ws"
    assert run(["tags", "import", *map(str, _ofac_pair())], home=home).code == 0
    assert sanctioned(home, TORNADO_ETH, "2026-09-01")  # only the owner's copy so far
    mirror = shared_path("ofac", "thomasgregg_sanctioned-addresses_sdn-2025-02-26.json")
    later = _json_without_tornado(mirror, tmp_path / "sdn-2026-01-15.json", "01/15/2026")
    assert pin(home, [later]).code == 0
    assert not sanctioned(home, TORNADO_ETH, "2026-09-01")
    assert sanctioned(home, TORNADO_ETH, "2025-01-01")  # before the authoritative version: the owner's copy


# --- finding 4: self-declared attribution cannot out-rank others -----------------------------------------

PACK = """title: exchange wallets
creator: the workspace owner
lastmod: 2024-01-01
currency: ETH
confidence: ownership
is_cluster_definer: true
tags:
- address: '{addr}'
  label: Huione-sim
  category: exchange
"""


def test_co_users_confident_csv_does_not_replace_the_owners_attribution(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    pack = tmp_path / "exchanges.yaml"
    pack.write_text(PACK.format(addr=ADDR))
    assert run(["tags", "import", str(pack)], home=home).code == 0
    evil = tmp_path / "t.csv"
    evil.write_text("address,chain,label,category,entity,country,source,confidence,sanctioned\n"
                    f"{ADDR},ethereum,x,exchange,Attacker Ltd,KP,https://home.treasury.gov/ofac,ownership,true\n")
    r = run(["tags", "import", str(evil)], home=home, user="mallory")
    assert r.code == 0, r.err
    res = run(["tags", "resolve", "--chain", "ethereum", "--json"], home=home)
    row = [json.loads(x) for x in res.out.splitlines()][0]
    assert row["entity"] == "Huione-sim" and row["tier"] == "owner"
    assert row["confidence"] == 0.55  # the owner's own "ownership" capped below authority_data
    assert row["sanctioned"] is False and row["sanctioned_review"] is True  # mallory's claim: review only
    show = run(["tags", "show", ADDR, "--json"], home=home)
    rows = [json.loads(x) for x in show.out.splitlines()]
    m = [x for x in rows if x["dataset"] == "user:mallory:csv-t"][0]
    assert m["tier"] == "user" and m["confidence"] == 0.4 and m["rank"] == 2


def test_a_file_named_like_the_fbi_list_is_not_the_fbi(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    fake = tmp_path / "fbi_bybit_victims.txt"
    fake.write_text(ADDR + "\n")
    run(["tags", "import", str(fake)], home=home, user="mallory")
    r = run(["tags", "show", ADDR, "--json"], home=home)
    assert "Lazarus" not in r.out
    real = shared_path("tags", "fbi_bybit_2025", "fbi_psa250226_bybit_eth_addresses.txt")
    renamed = tmp_path / "list.txt"
    renamed.write_bytes(real.read_bytes())  # the published content under any name: recognised by digest
    assert run(["tags", "import", str(renamed)], home=home, user="mallory").code == 0
    rows = [json.loads(x) for x in run(["tags", "show", ADDR, "--json"], home=home).out.splitlines()]
    assert [(x["dataset"], x["tier"], x["entity"]) for x in rows] == [("fbi:bybit-2025", "authoritative",
                                                                       "Lazarus Group")]


def test_a_co_users_actorpack_cannot_redefine_an_actor(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    actors = shared_path("tags", "graphsense-tagpacks", "actors")
    fbi = shared_path("tags", "fbi_bybit_2025", "fbi_psa250226_bybit_eth_addresses.txt")
    assert run(["tags", "import", str(actors), str(fbi)], home=home).code == 0
    evil = tmp_path / "evil.actorpack.yaml"
    evil.write_text("title: x\nactors:\n- id: lazarusgroup\n  label: Friendly Folks\n  jurisdictions: [US]\n"
                    "  categories: [exchange]\n")
    assert run(["tags", "import", str(evil)], home=home, user="mallory").code == 0
    rows = [json.loads(x) for x in run(["tags", "show", ADDR, "--json"], home=home).out.splitlines()]
    assert rows[0]["entity"] != "Friendly Folks" and rows[0]["country"] == "KP"
    assert rows[0]["category"] == "theft_perpetrator"

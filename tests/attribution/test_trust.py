"""Issue 23, findings 1 and 4: no import can erase, replace or out-rank another dataset; authoritative
lists only from their official source or a pinned digest; one OFAC list across its formats.

The attacks import as a co-user (``mallory``, role user) or as the workspace owner, on the real OFAC files
in ../shared/data: through the library with an explicit principal (fast), and through the command in a
child process (``FUNDTRAIL_USER=mallory``, tests/attribution/hostile.py) for the audit's own reproduction.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fundtrail.attribution.resolve import address_tags, resolve_labels, sanctioned_at
from fundtrail.attribution.service import dataset_history, import_paths, sources
from fundtrail.attribution.trust import Provenance
from fundtrail.errors import UsageError
from fundtrail.principal import Principal
from fundtrail.store import Workspace
from tests.attribution.hostile import run
from tests.conftest import shared_path

SDN_ETH = "0x01e2919679362dfbc9ee1644ba9c6da6d6245bb1"  # the audit's address (a TORNADO CASH entry)
LAZARUS_ETH = "0x098b716b8aaf21512996dc57eb0615e2383e2f96"  # real SDN address (LAZARUS GROUP, DPRK3)
TORNADO_ETH = "0x12d66f87a04a9e220743712ce6d9bb1b5616b8fc"
TORNADO_UID = "39796"
ADDR = "0x51e9d833ecae4e8d9d8be17300aee6d3398c135d"  # a real, valid address (FBI Bybit list)
OWNER = Principal("owner", "admin")
MALLORY = Principal("mallory", "user")

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


def imp(ws: Workspace, files: list[Path], who: Principal = OWNER, **kw):  # noqa: ANN201
    return import_paths(ws, files, provenance=Provenance.of_import(who, **kw))


def pin(ws: Workspace, files: list[Path], *, confirm: bool = False, dataset: str = "ofac:sdn"):  # noqa: ANN201
    return imp(ws, files, as_name=dataset, sha256=[sha(f) for f in files], confirm=confirm)


def listed(ws: Workspace, address: str, date: str) -> bool:
    return sanctioned_at(ws, address, date)[0]


def _count(ws: Workspace, dataset: str) -> int:
    t = ws.read("tag_observations")
    return t.filter(pc.equal(t["dataset"], dataset)).num_rows


@pytest.fixture(scope="module")
def pinned_home(tmp_path_factory) -> Path:
    """A workspace whose owner imported the real sdn.csv (+ comments) of 2024-05-03 as ofac:sdn, pinned."""
    home = tmp_path_factory.mktemp("pinned") / "ws"
    ws = Workspace(home)
    stats = pin(ws, _ofac_pair())
    assert [v["dataset"] for v in stats.versions] == ["ofac:sdn"]
    assert listed(ws, SDN_ETH, "2024-07-01") and _count(ws, "ofac:sdn") == 599
    return home


def _copy(src: Path, dst: Path) -> Workspace:
    shutil.copytree(src, dst)
    return Workspace(dst)


# --- finding 1: a fake file cannot erase or delist the authoritative list --------------------------------

@pytest.mark.parametrize("who,date", [  # a co-user and the owner without a pin; same date (a replacement)
    (MALLORY, "05/03/2024"), (OWNER, "06/01/2024"),  # and a later one (a delisting)
    pytest.param(OWNER, "05/03/2024", marks=pytest.mark.slow),
    pytest.param(MALLORY, "06/01/2024", marks=pytest.mark.slow)])
def test_fake_sdn_xml_cannot_erase_ofac(pinned_home: Path, tmp_path: Path, who: Principal, date: str) -> None:
    ws = _copy(pinned_home, tmp_path / "ws")
    fake = tmp_path / "SDN.XML"
    fake.write_text(FAKE_SDN_XML.format(date=date))
    stats = imp(ws, [fake], who)
    assert [v["dataset"] for v in stats.versions] == [f"user:{who.name}:ofac-sdn"]
    stats = imp(ws, [fake], who, as_name="mine")  # --as names a list in the importer's own namespace
    assert [v["dataset"] for v in stats.versions] == [f"user:{who.name}:mine"]
    imp(ws, [fake], who) if False else import_paths(ws, [fake], as_of="2030-01-01",  # --as-of neither
                                                    provenance=Provenance.of_import(who))
    for d in ("2024-07-01", "2026-01-01", "2031-01-01"):
        assert listed(ws, SDN_ETH, d) and listed(ws, LAZARUS_ETH, d)
    assert _count(ws, "ofac:sdn") == 599
    for name in ("ofac:sdn", "fbi:bybit-2025", "graphsense:x", "user:somebody:list"):
        with pytest.raises(UsageError, match="not yours"):
            Provenance.of_import(who, as_name=name)


def test_only_an_admin_can_pin_and_the_digest_must_match(pinned_home: Path, tmp_path: Path) -> None:
    ws = _copy(pinned_home, tmp_path / "ws")
    fake = tmp_path / "SDN.XML"
    fake.write_text(FAKE_SDN_XML.format(date="06/01/2024"))
    with pytest.raises(UsageError, match="only an admin"):
        Provenance.of_import(MALLORY, as_name="ofac:sdn", sha256=[sha(fake)])
    with pytest.raises(UsageError, match="not among the pinned"):
        imp(ws, [fake], as_name="ofac:sdn", sha256=["0" * 64])
    with pytest.raises(UsageError, match="copy of 'ofac:sdn', not of 'fbi:bybit-2025'"):
        imp(ws, [fake], as_name="fbi:bybit-2025", sha256=[sha(fake)])
    assert _count(ws, "ofac:sdn") == 599 and listed(ws, LAZARUS_ETH, "2024-07-01")


def test_cli_fake_sdn_xml_by_a_co_user(tmp_path: Path) -> None:
    """The audit's reproduction through the command, with nothing but plain imports: the owner imports a
    real SDN copy, a co-user a four-line SDN.XML of the same date. Before the fix the address was no longer
    sanctioned (the fake replaced the snapshot); now each import has its own dataset. Then the owner pins
    the real copy as the authoritative ofac:sdn."""
    home = tmp_path / "ws"
    real = tmp_path / "sdn_2024-05-03.csv"  # alone in its folder: no sdn_comments.csv is paired with it
    real.write_bytes(shared_path("ofac", "DERIVED_ofac_sdn_dca_rows_2024-05-03.csv").read_bytes())
    assert run(["tags", "import", str(real)], home=home).code == 0
    fake = tmp_path / "SDN.XML"
    fake.write_text(FAKE_SDN_XML.format(date="05/03/2024"))
    r = run(["tags", "import", str(fake)], home=home, user="mallory")
    assert r.code == 0, r.err
    r = run(["tags", "at", LAZARUS_ETH, "--date", "2024-07-01", "--json"], home=home)
    assert r.json()["sanctioned"] is True
    r = run(["tags", "import", str(real), "--as", "ofac:sdn", "--sha256", sha(real)], home=home)
    assert r.code == 0 and "stored ofac:sdn version 1 of 2024-05-03 (authoritative" in r.out, r.err
    s = sources(Workspace(home)).to_pylist()
    assert [(x["dataset"], x["tier"], x["importers"], x["versions"]) for x in s] == [
        ("ofac:sdn", "authoritative", "root", 1), ("user:mallory:ofac-sdn", "user", "mallory", 1),
        ("user:root:ofac-sdn", "owner", "root", 1)]
    assert s[0]["newest_sha256"] == sha(real)


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
    ws = _copy(pinned_home, tmp_path / "ws")
    src, comments = _ofac_pair()
    # a later list without Tornado Cash (90 of the 599 addresses: 15%)
    later = _derived_sdn(src, tmp_path / "sdn_2026-01-15.csv", drop={TORNADO_UID})
    stats = pin(ws, [later, comments])
    assert not stats.versions and "--confirm" in stats.skipped[0].message
    assert "delists 90 of the 587 tags" in stats.skipped[0].message  # (chain, address) pairs
    assert listed(ws, TORNADO_ETH, "2026-09-01")  # refused: nothing changed
    assert pin(ws, [later, comments], confirm=True).versions[0]["confirmed"]
    assert not listed(ws, TORNADO_ETH, "2026-09-01") and listed(ws, TORNADO_ETH, "2025-01-01")
    # another file for a date already stored replaces it only when confirmed; the old version is kept
    same_day = _derived_sdn(src, tmp_path / "sdn_2024-05-03.csv", drop={"1"})
    same_day.write_bytes(same_day.read_bytes() + b"\r\n")
    stats = pin(ws, [same_day, comments])
    assert "replaces the version of 2024-05-03" in stats.skipped[0].message
    pin(ws, [same_day, comments], confirm=True)
    assert pin(ws, [same_day, comments]).unchanged == 1  # the same content again: nothing to do
    rows = dataset_history(ws, "ofac:sdn").to_pylist()
    assert [(r["version"], r["superseded"], r["confirmed"]) for r in rows] == \
        [(1, True, False), (3, False, True), (2, False, True)]
    assert rows[0]["superseded_by"] == 3 and rows[1]["replaces"] == 1
    assert rows[2]["delisted"] == 90 and all(r["importer"] == "owner" and len(r["digest"]) == 64 for r in rows)
    src_rows = sources(ws).to_pylist()
    assert [(r["dataset"], r["tier"], r["versions"], r["replaced"]) for r in src_rows] == [
        ("ofac:sdn", "authoritative", 2, 1)]
    assert _count(ws, "ofac:sdn") == 3 * 599 - 90  # append-only: every version's rows are kept


# --- one publication, many copies ----------------------------------------------------------------------

def _json_without_tornado(src: Path, out: Path, date: str) -> Path:
    doc = json.loads(src.read_text())
    doc["metadata"]["sdnListDate"] = date
    doc["addresses"] = {a: r for a, r in doc["addresses"].items()
                        if not any(e.get("uid") == TORNADO_UID for e in r["entries"])}
    out.write_text(json.dumps(doc, indent=2))
    return out


@pytest.mark.parametrize("order", ["oldest-first", pytest.param("newest-first", marks=pytest.mark.slow)])
def test_ofac_copies_in_other_formats_are_versions_of_one_list(tmp_path: Path, order: str) -> None:
    """The real sdn.csv of 2024-05-03, the real JSON mirror of 2025-02-26 and a 2026 JSON snapshot
    derived from it without Tornado Cash (delisted 2025-03-21): the newest version governs."""
    ws = Workspace(tmp_path / "ws")
    mirror = shared_path("ofac", "thomasgregg_sanctioned-addresses_sdn-2025-02-26.json")
    later = _json_without_tornado(mirror, tmp_path / "sdn-2026-01-15.json", "01/15/2026")
    steps = [_ofac_pair(), [mirror], [later]]
    for files in (steps if order == "oldest-first" else steps[::-1]):
        assert pin(ws, files, confirm=True).versions
    assert listed(ws, TORNADO_ETH, "2024-06-01")
    assert listed(ws, TORNADO_ETH, "2025-03-01")
    assert not listed(ws, TORNADO_ETH, "2026-09-01")
    hist = sanctioned_at(ws, TORNADO_ETH, "2026-09-01")[1].to_pylist()
    assert hist and not any(x["valid_now"] for x in hist)  # listed once, not any more: historical
    # the mirror lower-cased base58 addresses: restored from the csv version, not taken as delisted
    legacy = "12QtD5BFwRsdNsAZY76UVE1xyCGNTojH9h"
    assert listed(ws, legacy, "2025-06-01") and listed(ws, legacy, "2026-09-01")


def test_owners_older_copy_is_superseded_by_the_authoritative_list(tmp_path: Path) -> None:
    """The measured bug: the owner's own (unpinned) copy of the 2024 csv kept Tornado Cash sanctioned in
    2026 after a newer authoritative version delisted it. A lower tier's copy of the same publication
    stops counting once a higher tier holds a version at least as new."""
    ws = Workspace(tmp_path / "ws")
    imp(ws, _ofac_pair())
    # the per-asset extracts of the list (0xB10C, 2024-09-27): their own dataset, the same publication
    imp(ws, [shared_path("ofac", "ofac_0xB10C_lists_2024-09-27", "sanctioned_addresses_ETH.txt")])
    assert sorted(sources(ws)["dataset"].to_pylist()) == ["user:owner:ofac-asset-eth", "user:owner:ofac-sdn"]
    assert listed(ws, TORNADO_ETH, "2026-09-01")  # only the owner's copies so far
    mirror = shared_path("ofac", "thomasgregg_sanctioned-addresses_sdn-2025-02-26.json")
    later = _json_without_tornado(mirror, tmp_path / "sdn-2026-01-15.json", "01/15/2026")
    pin(ws, [later])
    assert not listed(ws, TORNADO_ETH, "2026-09-01")
    assert listed(ws, TORNADO_ETH, "2025-01-01")  # before the authoritative version: the owner's copy
    assert listed(ws, LAZARUS_ETH, "2026-09-01")  # in both: still listed


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
    """The audit's §6/7 script: a co-user's CSV row with ``confidence=ownership`` for the address of an
    exchange endpoint used to become the attribution every report showed. Imports through the command."""
    home = tmp_path / "ws"
    pack = tmp_path / "exchanges.yaml"
    pack.write_text(PACK.format(addr=ADDR))
    assert run(["tags", "import", str(pack)], home=home).code == 0
    evil = tmp_path / "t.csv"
    evil.write_text("address,chain,label,category,entity,country,source,confidence,sanctioned\n"
                    f"{ADDR},ethereum,x,exchange,Attacker Ltd,KP,https://home.treasury.gov/ofac,ownership,true\n")
    assert run(["tags", "import", str(evil)], home=home, user="mallory").code == 0
    ws = Workspace(home)
    row = resolve_labels(ws, "ethereum").to_pylist()[0]
    assert row["entity"] == "Huione-sim" and row["tier"] == "owner" and row["dataset"] == "user:root:graphsense-exchanges"
    assert row["confidence"] == 0.55  # the owner's own "ownership" capped below authority_data
    assert row["sanctioned"] is False and row["sanctioned_review"] is True  # mallory's claim: review only
    assert not listed(ws, ADDR, "2025-01-01")
    rows = address_tags(ws, ADDR).to_pylist()
    m = [x for x in rows if x["dataset"] == "user:mallory:csv-t"][0]
    assert m["tier"] == "user" and m["confidence"] == 0.4 and m["rank"] == 2 and m["importer"] == "mallory"


def test_a_file_named_like_the_fbi_list_is_not_the_fbi(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    fake = tmp_path / "fbi_bybit_victims.txt"
    fake.write_text(ADDR + "\n")
    imp(ws, [fake], MALLORY)
    assert address_tags(ws, ADDR).num_rows == 0
    real = shared_path("tags", "fbi_bybit_2025", "fbi_psa250226_bybit_eth_addresses.txt")
    renamed = tmp_path / "list.txt"
    renamed.write_bytes(real.read_bytes())  # the published content under any name: recognised by digest
    imp(ws, [renamed], MALLORY)
    rows = address_tags(ws, ADDR).to_pylist()
    assert [(x["dataset"], x["tier"], x["entity"]) for x in rows] == [("fbi:bybit-2025", "authoritative",
                                                                       "Lazarus Group")]


def test_a_co_users_actorpack_cannot_redefine_an_actor(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    actors = shared_path("tags", "graphsense-tagpacks", "actors")
    fbi = shared_path("tags", "fbi_bybit_2025", "fbi_psa250226_bybit_eth_addresses.txt")
    imp(ws, [actors, fbi])
    evil = tmp_path / "evil.actorpack.yaml"
    evil.write_text("title: x\nactors:\n- id: lazarusgroup\n  label: Friendly Folks\n  jurisdictions: [US]\n"
                    "  categories: [exchange]\n")
    imp(ws, [evil], MALLORY)
    a = ws.read("actors")
    mine = a.filter(pc.equal(a["actor"], "lazarusgroup"))
    assert "user:mallory:graphsense-evil.actorpack" in mine["dataset"].to_pylist() and mine.num_rows == 2
    row = address_tags(ws, ADDR).to_pylist()[0]
    assert row["entity"] != "Friendly Folks" and row["country"] == "KP" and row["category"] == "theft_perpetrator"


# --- property: nothing a non-authoritative importer does changes an authoritative answer -----------------

_DATES = ["2023-01-01", "2024-07-01", "2027-01-01"]


@pytest.fixture(scope="module")
def small_pinned(tmp_path_factory) -> tuple[Path, list[str], dict]:
    """The derived real SDN rows (54 entries) pinned as ofac:sdn; its ETH addresses; the answers."""
    home = tmp_path_factory.mktemp("small") / "ws"
    src = home.parent / "sdn_2024-05-03.csv"
    src.write_bytes(shared_path("ofac", "DERIVED_ofac_sdn_dca_rows_2024-05-03.csv").read_bytes())
    ws = Workspace(home)
    pin(ws, [src])
    t = ws.read("tags")
    eth = sorted(set(t.filter(pc.equal(t["chain"], "ethereum"))["address"].to_pylist()))[:6]
    return home, eth, _answers(ws, eth)


def _answers(ws: Workspace, addrs: list[str]) -> dict:
    out = {}
    for d in _DATES:
        r = resolve_labels(ws, "ethereum", at=d)
        rows = {x["address"]: x for x in r.to_pylist() if x["address"] in addrs}
        for a in addrs:  # sanctioned: the binding answer (what tags at says), and who the winner is
            x = rows.get(a)
            out[(a, d)] = x and (x["entity"], x["category"], x["country"], x["tier"], x["dataset"],
                                 x["sanctioned"])
    return out


_who = st.sampled_from([MALLORY, OWNER])
_conf = st.sampled_from(["ownership", "override", "1.0", "100", "authority_data", ""])


def _attack(kind: str, tmp: Path, i: int, addrs: list[str], date: str, conf: str, keep: list[bool]) -> Path:
    if kind == "sdnxml":  # a "newer" or same-day SDN list keeping only some addresses
        ids = "".join(f"<id><idType>Digital Currency Address - ETH</idType><idNumber>{a}</idNumber></id>"
                      for a, k in zip(addrs, keep, strict=False) if k)
        m, d, y = date[5:7], date[8:10], date[:4]
        f = tmp / f"a{i}" / "SDN.XML"
        f.parent.mkdir()
        f.write_text(f"<sdnList><publshInformation><Publish_Date>{m}/{d}/{y}</Publish_Date></publshInformation>"
                     f"<sdnEntry><uid>1</uid><lastName>Fake</lastName><sdnType>Entity</sdnType><idList>{ids}"
                     "</idList></sdnEntry></sdnList>")
    elif kind == "csv":  # confident, sanctioned-or-not claims about the listed addresses
        f = tmp / f"fbi_bybit_{i}.csv"
        f.write_text("address,chain,label,category,entity,country,source,confidence,sanctioned\n" + "".join(
            f"{a},ethereum,Friendly,exchange,Friendly Exchange,US,OFAC SDN,{conf},{str(not k).lower()}\n"
            for a, k in zip(addrs, keep, strict=False)))
    else:  # actors named like the SDN entities' slugs
        f = tmp / f"act{i}.actorpack.yaml"
        f.write_text("actors:\n" + "".join(f"- {{id: a{j}, label: Friendly, uri: 'https://www.garantex.io',"
                                           " categories: [exchange], jurisdictions: [US]}}\n" for j in range(3)))
    return f


_STEPS = st.lists(st.tuples(st.sampled_from(["sdnxml", "csv", "actors"]), _who, st.sampled_from(_DATES), _conf,
                            st.lists(st.booleans(), min_size=6, max_size=6), st.booleans(),
                            st.sampled_from([None, "2030-01-01", "2024-05-03"])), min_size=1, max_size=3)


def _no_change(small_pinned, tmp_path_factory, steps) -> None:  # noqa: ANN001
    home, addrs, before = small_pinned
    tmp = tmp_path_factory.mktemp("attack")
    ws = _copy(home, tmp / "ws")
    for i, (kind, who, date, conf, keep, confirm, as_of) in enumerate(steps):
        f = _attack(kind, tmp, i, addrs, date, conf, keep)
        import_paths(ws, [f], as_of=as_of, provenance=Provenance.of_import(who, confirm=confirm))
    after = _answers(ws, addrs)
    assert after == before
    assert all(v and v[3] == "authoritative" and v[5] for (_, d), v in after.items() if d != "2023-01-01")


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_STEPS)
def test_no_non_authoritative_import_changes_an_authoritative_answer(small_pinned, tmp_path_factory,
                                                                      steps) -> None:  # noqa: ANN001
    _no_change(small_pinned, tmp_path_factory, steps)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_STEPS)
def test_no_non_authoritative_import_changes_an_authoritative_answer_many(small_pinned, tmp_path_factory,
                                                                           steps) -> None:  # noqa: ANN001
    _no_change(small_pinned, tmp_path_factory, steps)


def test_rows_written_before_tiers_existed_still_resolve(tmp_path: Path) -> None:
    """A workspace of an older fundtrail: tags and actors parts without the provenance columns."""
    import pyarrow.parquet as pq

    ws = Workspace(tmp_path / "ws")
    pack = tmp_path / "exchanges.yaml"
    pack.write_text(PACK.format(addr=ADDR))
    imp(ws, [pack, shared_path("tags", "graphsense-tagpacks", "actors")])
    new = {"importer", "tier", "publication", "digest", "source_url", "version", "dataset", "imported_at"}
    for table, drop in (("tags", new - {"dataset", "imported_at"}), ("actors", new & {"dataset", "tier",
                                                                                      "importer", "imported_at"})):
        for p in ws.part_paths(table):
            t = pq.read_table(p)
            pq.write_table(t.drop_columns([c for c in t.column_names if c in drop]), p)
    ws = Workspace(tmp_path / "ws")
    row = resolve_labels(ws, "ethereum").to_pylist()[0]
    assert row["entity"] == "Huione-sim" and row["tier"] is None and row["dataset"].startswith("user:owner:")
    assert address_tags(ws, ADDR).num_rows == 1

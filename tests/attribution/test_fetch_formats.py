"""fetch (served by httpx.MockTransport from the real files), SDN.XML / sdn_advanced.xml readers, CLI."""

from __future__ import annotations

from pathlib import Path

import httpx
import pyarrow.compute as pc

from fundtrail.attribution import ofac
from fundtrail.attribution.detect import detect
from fundtrail.attribution.fetch import HttpFetcher, fetch
from fundtrail.cli.main import main
from fundtrail.store import Workspace
from tests.conftest import shared_path

LAZ = ["0x098B716B8Aaf21512996dC57EB0615e2383E2f96", "0xa0e1c89Ef1a489c9C7dE96311eD5Ce5D32c20E4B"]


def test_fetch_ofac_lists_through_a_mock_transport(home: Path) -> None:
    folder = shared_path("ofac", "ofac_0xB10C_lists_2024-09-27")
    served = []

    def handler(request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("/", 1)[-1]
        served.append(name)
        f = folder / name
        return httpx.Response(200, content=f.read_bytes()) if f.exists() else httpx.Response(404)

    ws = Workspace(home)
    urls = [f"https://lists.example/{n}" for n in ("sanctioned_addresses_XBT.txt", "sanctioned_addresses_ETH.txt")]
    stats = fetch(ws, "ofac-lists", urls=urls, fetcher=HttpFetcher(transport=httpx.MockTransport(handler)),
                  as_of="2024-09-27")
    assert served == ["sanctioned_addresses_XBT.txt", "sanctioned_addresses_ETH.txt"]
    t = ws.read("tags")
    assert pc.sum(pc.equal(t["asset"], "XBT")).as_py() == 435
    assert pc.sum(pc.equal(t["asset"], "ETH")).as_py() == 152
    assert stats.files == 2 and (home / "downloads" / "ofac-lists").is_dir()


def test_fetch_reports_http_errors(home: Path) -> None:
    import pytest

    from fundtrail.errors import FetchError

    f = HttpFetcher(transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    with pytest.raises(FetchError, match="HTTP 503"):
        fetch(Workspace(home), "ofac", fetcher=f)


SDN_XML = """<?xml version="1.0" standalone="yes"?>
<sdnList xmlns="https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/XML">
  <publshInformation><Publish_Date>02/26/2025</Publish_Date><Record_Count>1</Record_Count></publshInformation>
  <sdnEntry>
    <uid>27307</uid><lastName>LAZARUS GROUP</lastName><sdnType>Entity</sdnType>
    <programList><program>DPRK3</program></programList>
    <idList>
      <id><uid>1</uid><idType>Digital Currency Address - ETH</idType><idNumber>{a0}</idNumber></id>
      <id><uid>2</uid><idType>Digital Currency Address - ETH</idType><idNumber>{a1}</idNumber></id>
      <id><uid>3</uid><idType>Digital Currency Address - XBT</idType><idNumber>1BoatSLRHtKNngkdXEeobR76b53LETtpyX</idNumber></id>
    </idList>
  </sdnEntry>
</sdnList>
"""

ADVANCED = """<?xml version="1.0" encoding="utf-8"?>
<Sanctions xmlns="https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/ADVANCED_XML">
  <DateOfIssue><Year>2025</Year><Month>2</Month><Day>26</Day></DateOfIssue>
  <ReferenceValueSets>
    <CountryValues><Country ID="11" ISO2="KP">Korea, North</Country></CountryValues>
    <FeatureTypeValues><FeatureType ID="345">Digital Currency Address - ETH</FeatureType>
      <FeatureType ID="10">Nationality Country</FeatureType></FeatureTypeValues>
    <PartySubTypeValues><PartySubType ID="3">Entity</PartySubType></PartySubTypeValues>
  </ReferenceValueSets>
  <Locations><Location ID="900"><LocationCountry CountryID="11"/></Location></Locations>
  <DistinctParties><DistinctParty FixedRef="27307"><Profile ID="27307" PartySubTypeID="3">
    <Identity ID="1" Primary="true"><Alias Primary="true"><DocumentedName><DocumentedNamePart>
      <NamePartValue>LAZARUS GROUP</NamePartValue></DocumentedNamePart></DocumentedName></Alias></Identity>
    <Feature ID="5" FeatureTypeID="345"><FeatureVersion><VersionDetail>{a0}</VersionDetail></FeatureVersion></Feature>
    <Feature ID="6" FeatureTypeID="10"><FeatureVersion><VersionLocation LocationID="900"/></FeatureVersion></Feature>
  </Profile></DistinctParty></DistinctParties>
  <SanctionsEntries><SanctionsEntry ID="1" ProfileID="27307">
    <EntryEvent><Date><Year>2019</Year><Month>9</Month><Day>13</Day></Date></EntryEvent>
    <SanctionsMeasure SanctionsTypeID="1"><Comment>DPRK3</Comment></SanctionsMeasure>
  </SanctionsEntry></SanctionsEntries>
</Sanctions>
"""


def test_sdn_xml_and_advanced_readers(tmp_path: Path) -> None:
    # small files written here in the published layouts, around real Lazarus Group addresses
    x = tmp_path / "SDN.XML"
    x.write_text(SDN_XML.format(a0=LAZ[0], a1=LAZ[1]))
    assert detect(x) == "ofac-sdn-xml"
    p = ofac.read_sdn_xml(x)
    t = p.snapshots[0].tags.to_pylist()
    assert [r["address"] for r in t] == [a.lower() for a in LAZ]
    assert {r["program"] for r in t} == {"DPRK3"} and {r["country"] for r in t} == {"KP"}
    assert p.snapshots[0].as_of.date().isoformat() == "2025-02-26"
    assert [(i.line, i.level) for i in p.issues] == [(10, "error")]  # the bad XBT address, with its line
    adv = tmp_path / "sdn_advanced.xml"
    adv.write_text(ADVANCED.format(a0=LAZ[0]))
    assert detect(adv) == "ofac-sdn-advanced"
    r = ofac.read_sdn_advanced(adv).snapshots[0].tags.to_pylist()[0]
    assert (r["entity"], r["program"], r["country"]) == ("LAZARUS GROUP", "DPRK3", "KP")
    assert r["valid_from"].date().isoformat() == "2019-09-13"


def test_cli_import_show_at_search(home: Path, capsys) -> None:  # noqa: ANN001
    f = shared_path("tags", "fbi_bybit_2025", "fbi_psa250226_bybit_eth_addresses.txt")
    assert main(["tags", "import", str(f), "--home", str(home)]) == 0
    assert "51 tags" in capsys.readouterr().out
    assert main(["tags", "show", "0x51E9d833Ecae4E8D9D8Be17300AEE6D3398C135D", "--home", str(home), "--json"]) == 0
    out = capsys.readouterr().out
    assert "Lazarus Group" in out and "theft_perpetrator" in out
    assert main(["tags", "at", "0x51E9d833Ecae4E8D9D8Be17300AEE6D3398C135D", "--date", "2025-03-01",
                 "--home", str(home), "--json"]) == 0
    assert '"sanctioned": false' in capsys.readouterr().out
    assert main(["tags", "search", "Bybit", "--home", str(home), "--json"]) == 0
    assert capsys.readouterr().out.count("\n") == 51
    assert main(["tags", "import", str(home / "nope.csv"), "--home", str(home)]) == 2

"""Export on a simulated incident, verify, and tampering: every digest, the signature, the chain data."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from fundtrail.evidence.bundle import MANIFEST, SIGNATURE, SIGNER, SUMS, read_bundle
from fundtrail.evidence.verify import verify_bundle

REPO = Path(__file__).resolve().parents[2]


def _rezip(files: dict[str, bytes], path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def test_manifest_pins_everything(bundle, sim):
    e, _, _ = bundle
    _, truth, ws = sim
    m = e.manifest
    assert m["format"] == "fundtrail-evidence" and m["format_version"] == 1
    assert m["fundtrail"]["version"] and "git_commit" in m["fundtrail"]
    assert m["command"].startswith("fundtrail evidence export sim-theft")
    assert m["parameters"]["models"] == ["poison", "haircut", "fifo"] and m["parameters"]["max_hops"] == 20
    assert m["incident"]["name"] == "sim-theft"
    tips = {c: (s["tip_height"], s["tip_hash"]) for c, s in ws.chains().items()}
    assert {c["chain"]: (c["height"], c["hash"]) for c in m["chains"]} == tips
    ds = {d["dataset"]: d for d in m["tags"]["datasets"]}
    assert ds and all(d["rows_sha256"] and d["imported_at"] for d in ds.values())
    assert all(f["sha256"] == hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest()
               for d in ds.values() for f in d["files"])
    files = read_bundle(e.path)
    assert set(m["files"]) == set(files) - {MANIFEST, SIGNATURE, SIGNER}
    for name, meta in m["files"].items():
        assert hashlib.sha256(files[name]).hexdigest() == meta["sha256"]
    assert {"report/report.html", "report/report.json", "report/report.csv", "paths/paths.json",
            "tags/deciding.json", "methodology/methodology.md"} <= set(files)
    assert json.loads(files["report/report.json"])["model"] == "haircut"
    # the methodology page: the docs as they are at this version, and the measured accuracy figures
    assert files["methodology/tracing.md"] == (REPO / "docs" / "tracing.md").read_bytes()
    assert files["methodology/heuristics.md"] == (REPO / "docs" / "heuristics.md").read_bytes()
    meth = files["methodology/methodology.md"].decode()
    assert "Measured accuracy" in meth and "precision" in meth and "| none |" in meth
    # raw transactions of both chains, and paths with heights and block hashes
    raw = [n for n in files if n.startswith("raw/")]
    assert any(n.endswith(".hex") for n in raw) and any(n.endswith(".json") for n in raw)
    assert all(info["included"] and not info["missing"] for info in m["raw_transactions"].values())
    paths = json.loads(files["paths/paths.json"])
    assert paths and all(t["height"] is not None and t["block_hash"] and t["time"]
                         for p in paths for t in p["transactions"])
    # every endpoint entity has the tag that decided it, with its source file
    deciding = json.loads(files["tags/deciding.json"])
    ents = {e_.entity for s in e.report.models for e_ in s.result.endpoints}
    assert ents <= {d["entity"] for d in deciding}
    assert all(d["tag"]["dataset"] and d["tag"]["file"] for d in deciding)


def test_verify_passes(bundle, sim):
    e, _, pub = bundle
    _, _, ws = sim
    v = verify_bundle(e.path, ws, key=pub)
    assert v.ok, v.problems
    assert v.signer and v.checked_raw == sum(i["included"] for i in e.manifest["raw_transactions"].values())
    assert v.checked_paths > 0 and v.checked_files == len(e.manifest["files"])


def test_a_third_party_verifies_without_fundtrail(bundle, tmp_path):
    """sha256sum for the digests, OpenSSL for the signature, an independent Bitcoin library for the txids."""
    e, _, _ = bundle
    d = tmp_path / "b"
    with zipfile.ZipFile(e.path) as z:
        z.extractall(d)
    manifest = json.loads((d / MANIFEST).read_text())
    for name, meta in manifest["files"].items():
        assert hashlib.sha256((d / name).read_bytes()).hexdigest() == meta["sha256"]
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "--quiet", "-c", SUMS], cwd=d, check=True)
    if shutil.which("openssl"):
        r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", SIGNER, "-rawin", "-in", MANIFEST,
                            "-sigfile", SIGNATURE], cwd=d, capture_output=True, text=True)
        assert r.returncode == 0 and "Verified Successfully" in r.stdout, r.stderr
    try:
        from bitcoin.core import CTransaction, b2lx
    except ImportError:
        pytest.skip("python-bitcoinlib (dev extra) not installed")
    hexes = sorted((d / "raw").glob("*/*.hex"))
    assert hexes
    for f in hexes:
        assert b2lx(CTransaction.deserialize(bytes.fromhex(f.read_text().strip())).GetTxid()) == f.stem
    for f in sorted((d / "raw").glob("*/*.json")):
        doc = json.loads(f.read_text())
        assert doc["transaction"]["hash"] == f.stem and doc["transaction"]["blockHash"] == doc["block"]["hash"]


def test_flipping_one_byte_of_any_file_fails_naming_it(bundle, tmp_path):
    e, _, pub = bundle
    files = read_bundle(e.path)
    assert len(files) > 20
    for name, data in files.items():
        bad = dict(files)
        b = bytearray(data)
        b[len(b) // 2] ^= 0x01
        bad[name] = bytes(b)
        p = _rezip(bad, tmp_path / "bad.zip")
        v = verify_bundle(p, None, key=pub)
        assert not v.ok, name
        assert any(name in problem for problem in v.problems), (name, v.problems)


def test_cli_verify_names_the_mismatch(bundle, sim, tmp_path, capsys):
    from fundtrail.cli.main import main

    e, _, pub = bundle
    _, _, ws = sim
    assert main(["evidence", "verify", str(e.path), "--home", str(ws.home), "--key", str(pub)]) == 0
    assert "verified" in capsys.readouterr().out
    files = read_bundle(e.path)
    name = sorted(n for n in files if n.endswith(".hex"))[0]
    files[name] = files[name].replace(files[name][:2], b"ff" if files[name][:2] != b"ff" else b"00", 1)
    p = _rezip(files, tmp_path / "bad.zip")
    assert main(["evidence", "verify", str(p), "--home", str(ws.home)]) == 6
    assert name in capsys.readouterr().err
    assert main(["evidence", "verify", str(p), "--offline"]) == 6  # the digest alone names it
    assert name in capsys.readouterr().err
    assert main(["evidence", "verify", str(e.path), "--offline"]) == 0
    assert "give --key" in capsys.readouterr().out


def test_paths_and_raw_transactions_are_checked_against_the_workspace(bundle, sim, tmp_path):
    """A bundle whose digests were recomputed after a change (so only an unsigned copy can carry it) still
    fails on chain data: each transaction named with what the workspace says."""
    e, _, _ = bundle
    _, _, ws = sim
    files = read_bundle(e.path)
    manifest = json.loads(files[MANIFEST])
    paths = json.loads(files["paths/paths.json"])
    moved = paths[0]["transactions"][0]
    moved["height"] += 1
    files["paths/paths.json"] = json.dumps(paths).encode()
    raw = sorted(n for n in files if n.endswith(".json") and n.startswith("raw/"))[0]
    doc = json.loads(files[raw])
    doc["block"]["hash"] = doc["transaction"]["blockHash"] = "0x" + "00" * 32
    files[raw] = json.dumps(doc).encode()
    for n in ("paths/paths.json", raw):
        manifest["files"][n]["sha256"] = hashlib.sha256(files[n]).hexdigest()
    del files[SIGNATURE], files[SIGNER], files[SUMS], manifest["files"][SUMS]
    files[MANIFEST] = json.dumps(manifest).encode()
    v = verify_bundle(_rezip(files, tmp_path / "resigned.zip"), ws)
    assert any(moved["txid"] in p and "paths/paths.json" in p for p in v.problems), v.problems
    assert any(raw in p and "block hash" in p for p in v.problems), v.problems
    assert v.checked_files and v.signer is None

"""``fundtrail compact``: same rows in few parts, and ingestion carries on from a compacted workspace."""

from __future__ import annotations

from fundtrail.cli.main import main
from fundtrail.ingest.bitcoin import service as SV
from fundtrail.ingest.bitcoin.service import ingest_block_files
from fundtrail.store.workspace import Workspace
from tests.ingest.bitcoin.chaingen import make_chain
from tests.ingest.bitcoin.test_blockfiles import TABLES, _regtest_dir, dump


def test_compact_keeps_rows_and_ingest_resumes_after_it(tmp_path, monkeypatch, capsys):
    blocks, _ = make_chain(60, seed=21)
    d = _regtest_dir(tmp_path, blocks)
    ref = Workspace(tmp_path / "ref")
    ingest_block_files(ref, d, "regtest", batch_blocks=60)

    monkeypatch.setattr(SV, "MERGE_BELOW_BATCH_BYTES", 1)  # every batch counts as bulk: no merging
    home = tmp_path / "ws"
    ingest_block_files(Workspace(home), d, "regtest", batch_blocks=2, max_blocks=40)
    assert all(len(Workspace(home).parts(t, "regtest")) >= 16 for t in TABLES)  # (no inputs in early blocks)
    before = dump(Workspace(home))

    assert main(["compact", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert "utxo_outputs" in out and "20" in out
    ws = Workspace(home)
    assert all(len(ws.parts(t, "regtest")) == 1 for t in TABLES)
    assert dump(ws) == before
    listed = {p.file for t in TABLES for p in ws.parts(t, "regtest")}
    assert {str(f.relative_to(home)) for f in (home / "tables").rglob("*.parquet")} == listed

    ingest_block_files(Workspace(home), d, "regtest", batch_blocks=7)  # the rest of the chain, resumed
    ws = Workspace(home)
    assert ws.chain("regtest")["tip_height"] == 60
    assert dump(ws) == dump(ref)


def test_compact_of_an_unknown_chain_is_a_clear_error(tmp_path, capsys):
    assert main(["compact", "--chain", "nochain", "--home", str(tmp_path / "ws")]) != 0
    assert "nochain" in capsys.readouterr().err

"""The SQL sandbox of ``fundtrail query``: the workspace's tables and nothing else, within limits."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from fundtrail.cli.main import main
from fundtrail.errors import QueryLimitError, UsageError
from fundtrail.store import GLOBAL, Workspace
from fundtrail.store import sandbox as SB
from fundtrail.store.sandbox import QueryLimits


@pytest.fixture
def ws(tmp_path):
    ws = Workspace(tmp_path / "ws")
    with ws.transaction() as txn:
        txn.append("prices", GLOBAL, pa.table({"date": pa.array([19000], pa.date32()), "asset": ["BTC"],
                                               "usd": [42000.0], "source": ["test"]}))
    return ws


@pytest.fixture
def secret(tmp_path):
    p = tmp_path / "secret.csv"
    p.write_text("user,password\nalice,hunter2\n")
    return p


def test_the_workspace_tables_can_be_queried(ws):
    assert ws.user_query("SELECT usd FROM prices").to_pylist() == [{"usd": 42000.0}]
    assert ws.user_query("SELECT count(*) AS n FROM transactions").to_pylist() == [{"n": 0}]


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('{secret}')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('{secret}')",
    "SELECT * FROM glob('/*')",
    "SELECT * FROM read_text('{home}/manifest.json')",  # the workspace's own files other than its tables
    "SELECT * FROM read_parquet('{home}/tables/../../secret.csv')",
])
def test_files_outside_the_tables_are_refused(ws, secret, sql):
    with pytest.raises(QueryLimitError, match="file system operations are disabled|--allow-files"):
        ws.user_query(sql.format(secret=secret, home=ws.home))


@pytest.mark.parametrize("sql", [
    "ATTACH '/tmp/other.db' AS o", "INSTALL httpfs", "LOAD httpfs", "SET enable_external_access = true",
    "RESET enable_external_access", "COPY prices TO '/tmp/out.csv'", "CREATE TABLE t AS SELECT 1",
    "DROP VIEW prices", "PRAGMA enable_profiling", "SELECT 1; SET lock_configuration = false",
])
def test_statements_that_change_or_reach_out_are_refused(ws, sql):
    with pytest.raises(UsageError, match="read-only|refused"):
        ws.user_query(sql)


def test_the_configuration_is_locked_after_the_views_are_made(ws, tmp_path):
    """Even a statement that got past the read-only check could not undo the sandbox."""
    con = ws.connect()
    SB.lock_down(con, ws.home, QueryLimits(), allow_files=False, spill=tmp_path)
    for stmt in ("SET enable_external_access = true", "SET memory_limit = '100GB'", "SET threads = 64",
                 "RESET allowed_directories", "SET lock_configuration = false"):
        with pytest.raises(duckdb.InvalidInputException, match="locked"):
            con.execute(stmt)
    with pytest.raises(duckdb.PermissionException):
        con.execute("INSTALL httpfs")
    con.close()


def test_the_cross_join_bomb_is_stopped_by_the_timeout(ws):
    with pytest.raises(QueryLimitError, match=r"stopped after 1 s"):
        ws.user_query("SELECT sum(a.i * b.i) FROM range(1000000) a(i), range(1000000) b(i)",
                      limits=QueryLimits(timeout=1.0))


def test_results_memory_and_threads_are_bounded(ws):
    with pytest.raises(QueryLimitError, match="more than 1,000 rows"):
        ws.user_query("SELECT * FROM range(5000)", limits=QueryLimits(max_rows=1000))
    got = ws.user_query("SELECT current_setting('threads') AS t, current_setting('memory_limit') AS m",
                        limits=QueryLimits(threads=1, memory_limit="256MB")).to_pylist()[0]
    assert got["t"] == 1 and got["m"].replace(" ", "") in ("256.0MiB", "244.1MiB", "256MB")
    with pytest.raises(QueryLimitError, match="memory limit"):
        ws.user_query("SELECT list(i) FROM range(30000000) t(i) GROUP BY i % 3",
                      limits=QueryLimits(memory_limit="32MB", timeout=30, max_rows=None))


def test_allow_files_opts_back_in(ws, secret):
    got = ws.user_query(f"SELECT password FROM read_csv('{secret}')", allow_files=True)
    assert got.to_pylist() == [{"password": "hunter2"}]


def test_cli_refuses_with_a_clear_message_and_exit_2(ws, secret, capsys):
    assert main(["query", "--home", str(ws.home), f"SELECT * FROM read_csv('{secret}')"]) == 2
    err = capsys.readouterr().err
    assert "disabled by configuration" in err and "--allow-files" in err and "hunter2" not in err
    assert main(["query", "--home", str(ws.home), "--timeout", "0.5",
                 "SELECT sum(a.i * b.i) FROM range(1000000) a(i), range(1000000) b(i)"]) == 2
    assert "statement timeout" in capsys.readouterr().err
    assert main(["query", "--home", str(ws.home), "--allow-files", "--csv",
                 f"SELECT password FROM read_csv('{secret}')"]) == 0
    assert "hunter2" in capsys.readouterr().out

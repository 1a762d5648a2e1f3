"""The service's own state: keys, policies, verdicts, registered transfers, the audit log.

Two back ends behind one small interface: SQLite (a file in the workspace by default; WAL, a busy timeout,
one connection per thread, so several worker processes share it safely) and PostgreSQL (``postgresql://``
URLs, psycopg 3, one connection per thread). The schema is created and upgraded by the versioned
migrations in ``migrations/`` (one file per version and dialect), applied once under a lock
(``BEGIN IMMEDIATE`` / an advisory lock) by whichever process opens the store first. Every write commits
before the call returns: a registered transfer or a verdict that was answered is on disk.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from fundtrail.errors import UsageError

MIGRATIONS = "fundtrail.service.migrations"
_MIG = re.compile(r"^(\d{3})_([a-z0-9_]+)\.(sqlite|postgres)\.sql$")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    out = []
    for f in resources.files(MIGRATIONS).iterdir():
        m = _MIG.match(f.name)
        if m and m.group(3) == dialect:
            out.append((int(m.group(1)), m.group(2), f.read_text(encoding="utf-8")))
    return sorted(out)


class Store:
    """Thread-safe access to the service database (``open_store`` picks the back end)."""

    dialect = "sqlite"

    def __init__(self) -> None:
        self._local = threading.local()

    # back-end specifics
    def _connect(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql

    def conn(self) -> Any:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._connect()
            self._local.conn = c
        return c

    def execute(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        c = self.conn()
        cur = c.execute(self._sql(sql), params)
        rows = cur.fetchall() if cur.description else []
        self._commit(c)
        return rows

    def _commit(self, c: Any) -> None:
        c.commit()

    def many(self, statements: list[tuple[str, tuple | list]]) -> None:
        """Several writes in one transaction (runs of the same statement as one ``executemany``)."""
        with self._writing():
            c = self.conn()
            try:
                self._begin(c)
                cur = c.cursor()
                i, n = 0, len(statements)
                while i < n:
                    sql = statements[i][0]
                    j = i + 1
                    while j < n and statements[j][0] == sql:
                        j += 1
                    if j - i == 1:
                        cur.execute(self._sql(sql), statements[i][1])
                    else:
                        cur.executemany(self._sql(sql), [p for _, p in statements[i:j]])
                    i = j
                c.commit()
            except BaseException:
                c.rollback()
                raise

    def _writing(self) -> Any:
        return contextlib.nullcontext()

    def defer_checkpoints(self) -> None:
        """This thread's commits leave the write-ahead log's checkpoints to ``checkpoint`` (SQLite)."""

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database without blocking writers (SQLite; else nothing)."""

    def _begin(self, c: Any) -> None:
        pass

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    def schema_version(self) -> int:
        rows = self.execute("SELECT max(version) FROM schema_migrations")
        return int(rows[0][0] or 0)

    # --- keys ---------------------------------------------------------------------------------------
    def add_key(self, name: str, role: str, key_hash: str, prefix: str, rate_limit: float) -> None:
        if self.execute("SELECT 1 FROM api_keys WHERE name = ?", (name,)):
            raise UsageError(f"a key named {name!r} exists already (revoke it or choose another name)")
        self.execute("INSERT INTO api_keys (name, role, key_hash, prefix, rate_limit, created) VALUES (?,?,?,?,?,?)",
                     (name, role, key_hash, prefix, float(rate_limit), now_iso()))

    def keys(self) -> list[dict[str, Any]]:
        rows = self.execute("SELECT name, role, prefix, rate_limit, created, revoked FROM api_keys ORDER BY name")
        return [dict(zip(("name", "role", "prefix", "rate_limit", "created", "revoked"), r, strict=True))
                for r in rows]

    def key_by_hash(self, key_hash: str) -> dict[str, Any] | None:
        rows = self.execute("SELECT name, role, rate_limit, revoked FROM api_keys WHERE key_hash = ?", (key_hash,))
        if not rows:
            return None
        n, role, rate, rev = rows[0]
        return {"name": n, "role": role, "rate_limit": rate, "revoked": rev}

    def revoke_key(self, name: str) -> None:
        rows = self.execute("SELECT revoked FROM api_keys WHERE name = ?", (name,))
        if not rows:
            raise UsageError(f"no key named {name!r}")
        if rows[0][0] is None:
            self.execute("UPDATE api_keys SET revoked = ? WHERE name = ?", (now_iso(), name))

    # --- policies -----------------------------------------------------------------------------------
    def add_policy(self, policy_id: str, body: str, digest: str, author: str | None) -> int:
        for _ in range(5):
            v = self.execute("SELECT coalesce(max(version), 0) + 1 FROM policies")[0][0]
            try:
                self.execute("INSERT INTO policies (version, policy_id, body, digest, created, author) "
                             "VALUES (?,?,?,?,?,?)", (int(v), policy_id, body, digest, now_iso(), author))
                return int(v)
            except Exception as e:  # noqa: BLE001 - another process took the number: retry
                if "unique" not in str(e).lower() and "duplicate" not in str(e).lower() \
                        and "constraint" not in str(e).lower():
                    raise
                self.conn().rollback()
        raise UsageError("could not store the policy (concurrent changes)")

    def policy(self, version: int | None = None) -> dict[str, Any] | None:
        if version is None:
            rows = self.execute("SELECT version, policy_id, body, digest, created, author FROM policies "
                                "ORDER BY version DESC LIMIT 1")
        else:
            rows = self.execute("SELECT version, policy_id, body, digest, created, author FROM policies "
                                "WHERE version = ?", (int(version),))
        if not rows:
            return None
        return dict(zip(("version", "policy_id", "body", "digest", "created", "author"), rows[0], strict=True))

    def policy_versions(self) -> list[dict[str, Any]]:
        rows = self.execute("SELECT version, policy_id, digest, created, author FROM policies ORDER BY version")
        return [dict(zip(("version", "policy_id", "digest", "created", "author"), r, strict=True)) for r in rows]

    # --- verdicts and transfers ---------------------------------------------------------------------
    @staticmethod
    def _verdict_row(v: dict[str, Any], key_name: str | None, body: str | None = None) -> tuple[str, tuple]:
        return ("INSERT INTO verdicts (verdict_id, created, chain, address, decision, policy_version, index_version, "
                "key_name, body) VALUES (?,?,?,?,?,?,?,?,?)",
                (v["verdict_id"], now_iso(), v["chain"], v["address"], v["decision"], v["policy"]["version"],
                 v["as_of"].get("index_version"), key_name, body or json.dumps(v, separators=(",", ":"))))

    _AUDIT_SQL = ("INSERT INTO audit (time, key_name, role, method, endpoint, params_hash, status, decision) "
                  "VALUES (?,?,?,?,?,?,?,?)")

    def _audit_row(self, audit: tuple | None) -> list[tuple[str, tuple]]:
        """``audit``: (key_name, role, method, endpoint, params_hash, status, decision) or None."""
        return [(self._AUDIT_SQL, (now_iso(), *audit))] if audit else []

    def verdict_statements(self, verdicts: list[dict[str, Any]], key_name: str | None,
                           audit: tuple | None = None, bodies: list[str] | None = None) -> list[tuple[str, tuple]]:
        """``bodies``: the verdicts already serialised (as sent to the client), else serialised here."""
        bs = bodies or [None] * len(verdicts)
        return [self._verdict_row(v, key_name, b) for v, b in zip(verdicts, bs, strict=True)] + self._audit_row(audit)

    def save_verdicts(self, verdicts: list[dict[str, Any]], key_name: str | None, audit: tuple | None = None) -> None:
        """The verdicts (and the request's audit record) in one transaction."""
        self.many(self.verdict_statements(verdicts, key_name, audit))

    def save_transfer(self, t: dict[str, Any], verdict: dict[str, Any], key_name: str | None,
                      audit: tuple | None = None) -> None:
        self.many(self.transfer_statements(t, verdict, key_name, audit))

    def transfer_statements(self, t: dict[str, Any], verdict: dict[str, Any], key_name: str | None,
                            audit: tuple | None = None) -> list[tuple[str, tuple]]:
        return (self._audit_row(audit) + [self._verdict_row(verdict, key_name),
                   ("INSERT INTO transfers (transfer_id, created, chain, direction, address, counterparty, txid, vout, "
                    "asset, amount, time, verdict_id, decision, key_name, external_id, customer_id) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (t["transfer_id"], now_iso(), t["chain"], t["direction"], t["address"], t.get("counterparty"),
                     t.get("txid"), t.get("vout"), t["asset"], t["amount"], t.get("time"), verdict["verdict_id"],
                     verdict["decision"], key_name, t.get("external_id"), t.get("customer_id")))])

    def verdict(self, vid: str) -> dict[str, Any] | None:
        rows = self.execute("SELECT body FROM verdicts WHERE verdict_id = ?", (vid,))
        return json.loads(rows[0][0]) if rows else None

    def verdicts(self, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
        rows = self.execute("SELECT body FROM verdicts ORDER BY created, verdict_id LIMIT ? OFFSET ?",
                            (int(limit), int(offset)))
        return [json.loads(r[0]) for r in rows]

    def count(self, table: str) -> int:
        if table not in ("verdicts", "transfers", "audit", "api_keys", "policies"):
            raise UsageError(f"unknown table {table!r}")
        return int(self.execute(f"SELECT count(*) FROM {table}")[0][0])

    _TCOLS = ("transfer_id", "created", "chain", "direction", "address", "counterparty", "txid", "vout", "asset",
              "amount", "time", "verdict_id", "decision", "key_name", "external_id", "customer_id")

    def transfer(self, transfer_id: str) -> dict[str, Any] | None:
        rows = self.execute(f"SELECT {', '.join(self._TCOLS)} FROM transfers WHERE transfer_id = ?", (transfer_id,))
        return dict(zip(self._TCOLS, rows[0], strict=True)) if rows else None

    def transfers(self, limit: int = 100, after: str | None = None) -> list[dict[str, Any]]:
        cols = ", ".join(self._TCOLS)
        if after:
            rows = self.execute(f"SELECT {cols} FROM transfers WHERE transfer_id > ? ORDER BY transfer_id LIMIT ?",
                                (after, int(limit)))
        else:
            rows = self.execute(f"SELECT {cols} FROM transfers ORDER BY transfer_id LIMIT ?", (int(limit),))
        return [dict(zip(self._TCOLS, r, strict=True)) for r in rows]

    # --- audit --------------------------------------------------------------------------------------
    _ACOLS = ("id", "time", "key_name", "role", "method", "endpoint", "params_hash", "status", "decision")

    def audit(self, key_name: str | None, role: str | None, method: str, endpoint: str, params_hash: str,
              status: int, decision: str | None) -> None:
        self.execute(self._AUDIT_SQL, (now_iso(), key_name, role, method, endpoint, params_hash, int(status),
                                       decision))

    def audit_rows(self, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.execute(f"SELECT {', '.join(self._ACOLS)} FROM audit WHERE id > ? ORDER BY id LIMIT ?",
                            (int(after), int(limit)))
        return [dict(zip(self._ACOLS, r, strict=True)) for r in rows]


class SqliteStore(Store):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.url = f"sqlite:///{self.path}"
        self._migrate()

    def _connect(self) -> sqlite3.Connection:
        c = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level="DEFERRED")
        c.execute("PRAGMA busy_timeout = 30000")
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("PRAGMA synchronous = NORMAL")
        return c

    def _begin(self, c: sqlite3.Connection) -> None:
        if c.in_transaction:
            c.commit()
        c.execute("BEGIN IMMEDIATE")

    def defer_checkpoints(self) -> None:
        # an automatic checkpoint runs inside the commit that crosses 1,000 pages: it copies the pages into
        # the database file and syncs it, tens of milliseconds that every request waiting on that commit
        # would wait too
        self.conn().execute("PRAGMA wal_autocheckpoint = 0")

    def checkpoint(self) -> None:
        try:
            self.conn().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.OperationalError:
            pass  # another connection is checkpointing: it does the work

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """The group commits of the workers take turns through an ``flock`` on ``PATH.writers``: a waiting
        writer wakes the moment the other one is done (SQLite's busy handler would sleep 1, 2, 5, 10... ms
        and poll). Other writers (the CLI, single statements) still meet at SQLite's own lock."""
        fd = getattr(self._local, "lock_fd", None)
        if fd is None:
            fd = self._local.lock_fd = os.open(f"{self.path}.writers", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        super().close()
        fd = getattr(self._local, "lock_fd", None)
        if fd is not None:
            os.close(fd)
            self._local.lock_fd = None

    def _migrate(self) -> None:
        c = self._connect()
        try:
            c.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT, "
                      "applied TEXT)")
            c.commit()
            c.execute("BEGIN IMMEDIATE")
            done = {r[0] for r in c.execute("SELECT version FROM schema_migrations")}
            for v, name, sql in migrations("sqlite"):
                if v in done:
                    continue
                for stmt in _split_sql(sql):
                    c.execute(stmt)
                c.execute("INSERT INTO schema_migrations VALUES (?,?,?)", (v, name, now_iso()))
            c.commit()
        finally:
            c.close()


def _split_sql(sql: str) -> list[str]:
    """Statements of a migration (triggers keep their inner ``;`` up to ``END;``)."""
    out, buf = [], []
    for line in sql.splitlines():
        buf.append(line)
        text = "\n".join(buf).strip()
        if text.endswith(";") and (not text.upper().startswith("CREATE TRIGGER") or text.upper().endswith("END;")):
            out.append(text)
            buf = []
    if "\n".join(buf).strip():
        out.append("\n".join(buf).strip())
    return out


class PostgresStore(Store):
    dialect = "postgres"

    def __init__(self, url: str) -> None:
        super().__init__()
        try:
            import psycopg  # noqa: F401
        except ImportError:  # pragma: no cover - psycopg is a dependency
            raise UsageError("PostgreSQL needs psycopg 3 (pip install 'psycopg[binary]')") from None
        self.url = url
        self._migrate()

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=False)
        except psycopg.OperationalError as e:
            raise UsageError(f"cannot connect to PostgreSQL at {_redact(self.url)}: {str(e).strip()[:200]}") from None

    def _sql(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def _migrate(self) -> None:
        c = self._connect()
        try:
            c.execute("SELECT pg_advisory_xact_lock(7301015)")
            c.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT, "
                      "applied TEXT)")
            done = {r[0] for r in c.execute("SELECT version FROM schema_migrations").fetchall()}
            for v, name, sql in migrations("postgres"):
                if v in done:
                    continue
                c.execute(sql)
                c.execute("INSERT INTO schema_migrations VALUES (%s,%s,%s)", (v, name, now_iso()))
            c.commit()
        finally:
            c.close()

    def execute(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        c = self.conn()
        try:
            cur = c.execute(self._sql(sql), params)
            rows = cur.fetchall() if cur.description else []
            c.commit()
            return rows
        except BaseException:
            c.rollback()
            raise


def _redact(url: str) -> str:
    return re.sub(r"//([^:@/]+):[^@/]*@", r"//\1:***@", url)


def default_db_path(home: Path) -> Path:
    return Path(home) / "service" / "service.db"


def open_store(url: str | None, home: Path) -> Store:
    """``None`` or ``sqlite:///PATH`` or a path: SQLite; ``postgresql://...``: PostgreSQL."""
    if not url:
        return SqliteStore(default_db_path(home))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        return SqliteStore(Path(url[len("sqlite:///"):]))
    if "://" in url:
        raise UsageError(f"--db: unsupported database URL {_redact(url)!r} (sqlite:///PATH or postgresql://...)")
    return SqliteStore(Path(url))

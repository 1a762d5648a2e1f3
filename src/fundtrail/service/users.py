"""People who sign in to the web UI: users, passwords, sessions, CSRF tokens, lockout, the action log.

Users sit beside API keys (keys are for machines). ``create_user`` makes a random one-time password, shown
once; the store keeps its argon2id hash (argon2-cffi's defaults). A sign-in that fails ``MAX_FAILURES`` times
in a row locks the user for ``LOCK_SECONDS`` (a correct password during the lock is refused too); an unknown
name costs the same hash as a known one. A session is a random 256-bit id sent in an HttpOnly, SameSite=Strict
cookie; the store keeps its SHA-256, the user, the expiry and the session's CSRF token, which every mutating
request must echo (form field ``csrf`` or header ``X-CSRF-Token``). ``ui_actions`` is the append-only log of
what each user looked at, tagged and changed (the HTTP audit log records every request besides).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from fundtrail.errors import AuthError, FieldError, UsageError
from fundtrail.service.store import Store, now_iso

USER_ROLES = ("viewer", "investigator", "admin")
MAX_FAILURES = 5
LOCK_SECONDS = 15 * 60
SESSION_SECONDS = 12 * 3600
COOKIE = "ft_session"

_ph = PasswordHasher()
_DUMMY = _ph.hash("not a password of anyone")


@dataclass(frozen=True, slots=True)
class Session:
    user: str
    role: str
    csrf: str
    expires: str


def _valid_name(name: str) -> None:
    if not name or len(name) > 100 or not all(c.isalnum() or c in "._-@" for c in name):
        raise FieldError("name", "1-100 letters, digits or . _ - @")


def _sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_user(store: Store, name: str, role: str) -> str:
    """Store a new user and return the one-time password (the only time it exists in clear)."""
    _valid_name(name)
    if role not in USER_ROLES:
        raise FieldError("role", f"must be one of {', '.join(USER_ROLES)}")
    if store.execute("SELECT 1 FROM users WHERE name = ?", (name,)):
        raise UsageError(f"a user named {name!r} exists already")
    password = secrets.token_urlsafe(12)
    store.execute("INSERT INTO users (name, role, pw_hash, created, failed) VALUES (?,?,?,?,0)",
                  (name, role, _ph.hash(password), now_iso()))
    return password


def reset_password(store: Store, name: str) -> str:
    """A new one-time password for ``name``; clears a lock."""
    if not store.execute("SELECT 1 FROM users WHERE name = ?", (name,)):
        raise UsageError(f"no user named {name!r}")
    password = secrets.token_urlsafe(12)
    store.execute("UPDATE users SET pw_hash = ?, failed = 0, locked_until = NULL WHERE name = ?",
                  (_ph.hash(password), name))
    return password


def list_users(store: Store) -> list[dict[str, Any]]:
    cols = ("name", "role", "created", "failed", "locked_until", "disabled")
    return [dict(zip(cols, r, strict=True)) for r in
            store.execute(f"SELECT {', '.join(cols)} FROM users ORDER BY name")]


def user_names(store: Store) -> list[str]:
    return [r[0] for r in store.execute("SELECT name FROM users WHERE disabled IS NULL ORDER BY name")]


def disable_user(store: Store, name: str) -> None:
    if not store.execute("SELECT 1 FROM users WHERE name = ?", (name,)):
        raise UsageError(f"no user named {name!r}")
    store.many([("UPDATE users SET disabled = ? WHERE name = ?", (now_iso(), name)),
                ("DELETE FROM sessions WHERE user_name = ?", (name,))])


def sign_in(store: Store, name: str, password: str) -> tuple[str, Session]:
    """Check the password; return (session id for the cookie, session). AuthError(401) when refused."""
    rows = store.execute("SELECT role, pw_hash, failed, locked_until, disabled FROM users WHERE name = ?",
                         (name,))
    if not rows:
        try:
            _ph.verify(_DUMMY, password or "x")
        except VerificationError:
            pass
        raise AuthError("wrong user name or password", 401)
    role, pw_hash, failed, locked_until, disabled = rows[0]
    now = _now()
    if disabled:
        raise AuthError("this user is disabled", 401)
    if locked_until and locked_until > _iso(now):
        raise AuthError(f"too many failed sign-ins: locked until {locked_until[:19]}Z", 401)
    try:
        _ph.verify(pw_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        failed = int(failed) + 1
        lock = _iso(now + dt.timedelta(seconds=LOCK_SECONDS)) if failed >= MAX_FAILURES else None
        store.execute("UPDATE users SET failed = ?, locked_until = ? WHERE name = ?",
                      (0 if lock else failed, lock, name))
        if lock:
            raise AuthError(f"too many failed sign-ins: locked until {lock[:19]}Z", 401) from None
        raise AuthError("wrong user name or password", 401) from None
    sid = secrets.token_urlsafe(32)
    s = Session(name, role, secrets.token_urlsafe(24), _iso(now + dt.timedelta(seconds=SESSION_SECONDS)))
    store.many([("UPDATE users SET failed = 0, locked_until = NULL WHERE name = ?", (name,)),
                ("INSERT INTO sessions (sid_hash, user_name, csrf, created, expires) VALUES (?,?,?,?,?)",
                 (_sid_hash(sid), name, s.csrf, now_iso(), s.expires))])
    return sid, s


def session(store: Store, sid: str | None) -> Session | None:
    """The live session of a cookie value, or None (unknown, expired, or its user disabled)."""
    if not sid or len(sid) > 200:
        return None
    rows = store.execute("SELECT s.user_name, u.role, s.csrf, s.expires FROM sessions s JOIN users u "
                         "ON u.name = s.user_name WHERE s.sid_hash = ? AND u.disabled IS NULL", (_sid_hash(sid),))
    if not rows or rows[0][3] <= _iso(_now()):
        return None
    return Session(*rows[0])


def sign_out(store: Store, sid: str | None) -> None:
    if sid:
        store.execute("DELETE FROM sessions WHERE sid_hash = ?", (_sid_hash(sid),))


def csrf_ok(s: Session, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(s.csrf.encode(), str(token).encode())


# --- the action log ---------------------------------------------------------------------------------------

_ACOLS = ("id", "time", "user_name", "action", "target", "detail")


def log_action(store: Store, user: str | None, action: str, target: str, detail: str | None = None) -> None:
    store.execute("INSERT INTO ui_actions (time, user_name, action, target, detail) VALUES (?,?,?,?,?)",
                  (now_iso(), user, action, target[:500], detail[:2000] if detail else None))


def actions(store: Store, before: int | None = None, limit: int = 100, user: str | None = None) -> list[dict]:
    where, params = [], []
    if before:
        where.append("id < ?")
        params.append(int(before))
    if user:
        where.append("user_name = ?")
        params.append(user)
    sql = f"SELECT {', '.join(_ACOLS)} FROM ui_actions"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = store.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, int(limit)))
    return [dict(zip(_ACOLS, r, strict=True)) for r in rows]

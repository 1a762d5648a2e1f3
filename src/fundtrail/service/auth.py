"""API keys and roles.

A key is ``ftk_`` + 32 random bytes (URL-safe base64), shown once; the store keeps its SHA-256 (a key has
256 bits of entropy, so a fast hash is enough) and its first 8 characters to recognise it in lists.
Roles are ordered: viewer (reads) < screener (screens, registers transfers) < investigator (also watches,
alerts, cases) < admin (also keys, policy, webhooks, the audit log).
"""

from __future__ import annotations

import hashlib
import secrets

from fundtrail.errors import FieldError
from fundtrail.service.store import Store

ROLES = ("viewer", "screener", "investigator", "admin")
DEFAULT_RATE = 1000.0  # requests per second per key


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def allows(role: str, needed: str) -> bool:
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def create_key(store: Store, name: str, role: str, rate_limit: float = DEFAULT_RATE) -> str:
    """Store a new key and return its secret (the only time it exists in clear)."""
    if role not in ROLES:
        raise FieldError("role", f"must be one of {', '.join(ROLES)}")
    if not name or len(name) > 100 or not all(c.isalnum() or c in "._-@" for c in name):
        raise FieldError("name", "1-100 letters, digits or . _ - @")
    if not rate_limit > 0:
        raise FieldError("rate", "must be a positive number of requests per second")
    secret = "ftk_" + secrets.token_urlsafe(32)
    store.add_key(name, role, hash_key(secret), secret[:8], rate_limit)
    return secret

"""Who is asking: the principal a command or request runs as (name and role).

The service will authenticate its callers and pass a :class:`Principal` explicitly. Until then the CLI
user is the principal: :func:`cli_principal` takes the operating-system account of the process (from the
uid, never from ``$USER``/``$LOGNAME``, which anyone can set) and makes it ``admin`` when that account owns
the workspace directory (the workspace owner on their own machine). ``FUNDTRAIL_USER`` may name another
user, which only ever lowers the role to ``user`` (a co-user, or a test acting as one): it can never raise
it.
"""

from __future__ import annotations

import os
import pwd
import re
from dataclasses import dataclass
from pathlib import Path

from fundtrail.errors import UsageError

ADMIN = "admin"
USER = "user"
ROLES = (ADMIN, USER)

#: user names: what may appear in a dataset id (``user:NAME:...``) and an incident's owner
NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}\Z")


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str = USER

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise UsageError(f"user name {self.name!r}: use lower-case letters, digits, '_', '.', '-' "
                             "(at most 32, starting with a letter or '_')")
        if self.role not in ROLES:
            raise UsageError(f"role {self.role!r}: one of {', '.join(ROLES)}")

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


def _account(uid: int) -> str:
    try:
        name = pwd.getpwuid(uid).pw_name.lower()
    except KeyError:
        name = f"uid{uid}"
    return name if NAME.match(name) else f"uid{uid}"


def cli_principal(home: Path | str | None = None) -> Principal:
    """The CLI user: the process's account; ``admin`` when it owns the workspace ``home``."""
    uid = os.geteuid()
    account = _account(uid)
    asked = os.environ.get("FUNDTRAIL_USER", "").strip()
    if asked and asked != account:
        return Principal(asked, USER)
    owner = uid
    if home is not None:
        try:
            owner = Path(home).stat().st_uid
        except OSError:
            owner = uid  # not created yet: whoever creates it owns it
    return Principal(account, ADMIN if owner == uid else USER)

"""Where derived data lives: ``HOME/index/NAME/CHAIN-HASH/`` (the address index, the trace graph).

Derived data is rebuilt from the committed tables and sits outside the manifest, so deleting ``HOME/index``
is always safe. A workspace the process may not write keeps it in the temporary directory instead
(``TMP/fundtrail-NAME-UID/HOMEHASH/``). A chain's folder name is the chain made safe for a file name plus a
hash of the chain itself (two chains never share one).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from fundtrail.store.workspace import Workspace


def derived_root(ws: Workspace, name: str) -> Path:
    home = Path(ws.home)
    if os.access(home, os.W_OK):
        return home / "index" / name
    tag = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"fundtrail-{name}-{os.getuid()}" / tag


def chain_dir(root: Path, chain: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in chain)
    return root / f"{safe}-{hashlib.sha256(chain.encode()).hexdigest()[:8]}"


__all__ = ["derived_root", "chain_dir"]

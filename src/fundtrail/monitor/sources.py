"""The sources the follower keeps ingesting from, each through the existing ingest service.

A source is written ``evm:CHAIN=URL`` (an EVM JSON-RPC node), ``bitcoin:NETWORK=URL`` (Bitcoin Core's
JSON-RPC) or ``blocks:NETWORK=DIR`` (a growing directory of Bitcoin Core block files). One ``step`` is one
pass of the ingest service up to the source's tip; the services handle reorganisations themselves (they roll
the workspace back to the fork and ingest the new branch), each batch in one workspace transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fundtrail.errors import UsageError
from fundtrail.store import Workspace

KINDS = ("evm", "bitcoin", "blocks")


@dataclass(frozen=True, slots=True)
class Source:
    kind: str
    name: str  # the EVM chain name, or the Bitcoin network
    location: str  # URL or directory

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}={self.location}"

    def step(self, ws: Workspace) -> Any:
        """Ingest what is new at the source (one pass, no waiting)."""
        if self.kind == "evm":
            from fundtrail.ingest.evm.service import ingest_evm

            return ingest_evm(ws, self.location, self.name, batch_blocks=20, timeout=30.0)
        if self.kind == "bitcoin":
            from fundtrail.ingest.bitcoin.service import ingest_rpc

            return ingest_rpc(ws, self.location, self.name)
        from fundtrail.ingest.bitcoin.service import ingest_block_files

        return ingest_block_files(ws, Path(self.location), self.name)


def parse_source(text: str) -> Source:
    kind, sep, rest = text.partition(":")
    name, sep2, loc = rest.partition("=")
    if not sep or not sep2 or kind not in KINDS or not name or not loc:
        raise UsageError(f"--source {text!r}: write evm:CHAIN=URL, bitcoin:NETWORK=URL or blocks:NETWORK=DIR")
    if kind == "blocks" and not Path(loc).is_dir():
        raise UsageError(f"--source {text!r}: {loc} is not a directory")
    return Source(kind, name, loc)


def parse_sources(texts: list[str] | tuple[str, ...] | None) -> tuple[Source, ...]:
    return tuple(parse_source(t) for t in (texts or ()) if t)

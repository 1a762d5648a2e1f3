"""The one error tree of fundtrail.

Every error the library raises on purpose is a :class:`FundtrailError`. The edges (CLI, API) translate
them once: a message for a person and an exit code; nothing else catches them on the way.

    FundtrailError
    ├── UsageError                 a request that cannot be carried out as asked (bad option, unknown incident)
    │   ├── NotFoundError          a named thing (incident, address, chain, table) does not exist
    │   ├── FieldError             a request field with a bad value (names the field; HTTP 422)
    │   ├── AuthError              no key, an unknown or revoked key (HTTP 401) / a role too low (HTTP 403)
    │   └── QueryLimitError        user SQL refused by the sandbox or stopped by a limit (time, memory, rows)
    ├── InputError                 bad input data; names the file, line, byte offset, block or field
    │   ├── BlockFileError         a blk*.dat / .bz2 file that is truncated, corrupt or not a block file
    │   ├── DecodeError            a block, transaction or script that does not parse
    │   ├── AddressError           an address that is not valid for its chain
    │   ├── TagFileError           a tag / sanctions / label file that cannot be read
    │   └── PolicyError            a screening policy that does not parse (names the rule and field)
    ├── SourceError                a remote source (JSON-RPC node, download) failed
    │   ├── RpcError               a JSON-RPC call answered with an error, or not at all
    │   ├── FetchError             a download of a public data source failed
    │   ├── SourceTimeout          no complete answer within the per-read timeout or the per-call deadline
    │   ├── SourceUnreachable      the connection failed (refused, reset, DNS)
    │   └── ResponseLimitError     an answer broke a limit: size, redirect, JSON depth, decompressed size
    ├── WorkspaceError             the workspace cannot be used as asked
    │   ├── ChainMismatchError     a chain id / network differs from the one the workspace knows the chain by
    │   ├── LockedError            another writer holds the workspace (its writer lease)
    │   ├── ConflictError          the workspace changed since the writer read it: nothing was committed
    │   └── WriteFailedError       a write failed (disk full, read-only): the last committed state is kept
    ├── EvidenceError              an evidence bundle does not verify (names each file, tx or digest)
    └── EngineError                the distributed engine (Spark) is not installed, or one of its jobs failed
"""

from __future__ import annotations

from pathlib import Path


class FundtrailError(Exception):
    """Base of every error fundtrail raises on purpose."""

    exit_code: int = 1


class UsageError(FundtrailError):
    exit_code = 2


class NotFoundError(UsageError):
    pass


class FieldError(UsageError):
    """A bad value in a named field of a request."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class AuthError(UsageError):
    """Authentication (``status`` 401) or authorisation (403) failed."""

    def __init__(self, message: str, status: int = 401) -> None:
        self.status = status
        super().__init__(message)


class QueryLimitError(UsageError):
    pass


class InputError(FundtrailError):
    """Bad input. ``where`` says where: file, line, byte offset, block height or hash, field."""

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        offset: int | None = None,
        line: int | None = None,
        block: int | str | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.offset = offset
        self.line = line
        self.block = block
        self.field = field
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.path is not None:
            where.append(self.path)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.offset is not None:
            where.append(f"byte offset {self.offset}")
        if self.block is not None:
            where.append(f"block {self.block}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class PolicyError(InputError):
    pass


class BlockFileError(InputError):
    pass


class DecodeError(InputError):
    pass


class AddressError(InputError):
    def __init__(self, message: str, *, address: str, chain: str | None = None, **where: object) -> None:
        self.address = address
        self.chain = chain
        prefix = f"address {address!r}" + (f" ({chain})" if chain else "")
        super().__init__(f"{prefix}: {message}", **where)  # type: ignore[arg-type]


class TagFileError(InputError):
    pass


class SourceError(FundtrailError):
    exit_code = 4


class RpcError(SourceError):
    def __init__(self, message: str, *, url: str | None = None, method: str | None = None,
                 code: int | None = None) -> None:
        self.url = url
        self.method = method
        self.code = code
        parts = [p for p in (url, method) if p]
        super().__init__(f"{' '.join(parts)}: {message}" if parts else message)


class FetchError(SourceError):
    pass


class SourceTimeout(SourceError):
    pass


class SourceUnreachable(SourceError):
    pass


class ResponseLimitError(SourceError):
    pass


class WorkspaceError(FundtrailError):
    exit_code = 5


class ChainMismatchError(WorkspaceError):
    pass


class LockedError(WorkspaceError):
    pass


class ConflictError(WorkspaceError):
    pass


class WriteFailedError(WorkspaceError):
    pass


class EvidenceError(FundtrailError):
    """An evidence bundle that does not verify (a digest, the signature, a transaction or a replay differs).
    ``problems`` names each file, transaction or digest that does not match."""

    exit_code = 6

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        super().__init__(message + ("".join(f"\n  - {p}" for p in self.problems) if self.problems else ""))


class EngineError(FundtrailError):
    """The distributed engine (Spark) is not installed or not reachable, or one of its jobs failed."""

    exit_code = 7

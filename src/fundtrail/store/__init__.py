"""The workspace: Parquet parts, an atomic manifest, the address dictionary and DuckDB views."""

from fundtrail.store.workspace import GLOBAL, Transaction, Workspace, default_home, writes

__all__ = ["GLOBAL", "Transaction", "Workspace", "default_home", "writes"]

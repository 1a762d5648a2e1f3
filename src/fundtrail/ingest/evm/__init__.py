"""EVM ingestion over JSON-RPC: client (batching, retries), replay transport, mappers to Arrow, tokens,
and the ``ingest_evm`` service."""

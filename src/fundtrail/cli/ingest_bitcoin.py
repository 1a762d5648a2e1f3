"""``fundtrail ingest bitcoin``: block files or a Bitcoin Core node into the workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fundtrail.cli.common import CliProgress, HomeOpt, WaitOpt, console, workspace
from fundtrail.errors import UsageError
from fundtrail.netclient import HttpLimits


def register(app: typer.Typer) -> None:
    @app.command("bitcoin")
    def ingest_bitcoin(
        blocks_dir: Annotated[Path | None, typer.Option("--blocks-dir", help="Directory of blk*.dat (or .bz2) files.")] = None,
        network: Annotated[str, typer.Option("--network", help="mainnet | testnet | testnet4 | signet | regtest")] = "mainnet",
        rpc: Annotated[str | None, typer.Option("--rpc", help="Bitcoin Core JSON-RPC URL (http://user:pass@host:port).")] = None,
        rpc_cookie: Annotated[Path | None, typer.Option("--rpc-cookie", help="The node's .cookie file.")] = None,
        follow: Annotated[bool, typer.Option("--follow", help="Keep following the node's tip.")] = False,
        prevouts: Annotated[Path | None, typer.Option("--prevouts", help="Known previous outputs (btcd *.utxostore[.bz2]).")] = None,
        batch_mb: Annotated[int, typer.Option("--batch-mb", help="Commit every N MB of blocks.")] = 32,
        batch_blocks: Annotated[int, typer.Option("--batch-blocks", min=1, help="...or every N blocks, whichever comes first.")] = 100_000,
        start_height: Annotated[int | None, typer.Option("--start-height", help="Height of the first block (files/RPC starting mid-chain).")] = None,
        jobs: Annotated[int, typer.Option("--jobs", "-j", min=0, help="Processes parsing block files ahead of the in-order commit (0: one per core; block files only).")] = 1,
        compression: Annotated[str, typer.Option("--compression", help="Parquet codec of the block tables: lz4 (the default: fastest to write) | zstd (level 1: 8-15% smaller, slower to write) | none.")] = "lz4",
        index_memory_mb: Annotated[int, typer.Option("--index-memory", help="MB of RAM for the address and UTXO indexes (the rest is read from disk).")] = 256,
        rpc_timeout: Annotated[float, typer.Option("--rpc-timeout", help="Seconds to connect and for each read of an RPC answer.")] = 60.0,
        rpc_deadline: Annotated[float, typer.Option("--rpc-deadline", help="Seconds for a whole RPC call (all reads).")] = 600.0,
        rpc_max_mb: Annotated[int, typer.Option("--rpc-max-mb", help="Largest RPC answer accepted, in MiB.")] = 512,
        rpc_retries: Annotated[int, typer.Option("--rpc-retries", help="Retries (exponential backoff) of a failed RPC call.")] = 5,
        home: HomeOpt = None,
        wait: WaitOpt = 0.0,
    ) -> None:
        """Ingest Bitcoin blocks from Core's block files or from its JSON-RPC."""
        from fundtrail.ingest.bitcoin.service import ingest_block_files, ingest_rpc

        if (blocks_dir is None) == (rpc is None):
            raise UsageError("give exactly one of --blocks-dir DIR or --rpc URL")
        if compression not in ("zstd", "lz4", "none"):
            raise UsageError(f"--compression: {compression!r} is not one of zstd, lz4, none")
        if rpc is not None and jobs != 1:
            raise UsageError("--jobs applies to --blocks-dir (a node's RPC is read one batch at a time)")
        ws = workspace(home, wait=wait)
        with CliProgress() as progress:
            if blocks_dir is not None:
                stats = ingest_block_files(ws, blocks_dir, network, progress=progress, prevouts=prevouts,
                                           batch_bytes=batch_mb << 20, batch_blocks=batch_blocks,
                                           start_height=start_height,
                                           index_memory=index_memory_mb << 20, jobs=jobs,
                                           compression=compression)
            else:
                if prevouts is not None:
                    from fundtrail.ingest.bitcoin.service import seed_prevouts

                    seed_prevouts(ws, prevouts, network)
                stats = ingest_rpc(ws, rpc, network, cookie=rpc_cookie, follow=follow, progress=progress,
                                   start=start_height, index_memory=index_memory_mb << 20, timeout=rpc_timeout,
                                   limits=HttpLimits(max_bytes=rpc_max_mb << 20, timeout=rpc_timeout,
                                                     deadline=rpc_deadline), retries=rpc_retries)
        mb = stats.bytes / 1e6
        rate = mb / stats.seconds if stats.seconds else 0.0
        console.print(
            f"{stats.chain}: {stats.blocks:,} blocks ({stats.first_height}..{stats.tip_height}), "
            f"{stats.transactions:,} transactions, {stats.outputs:,} outputs, {stats.inputs:,} inputs, "
            f"{stats.new_addresses:,} new addresses; {mb:,.1f} MB in {stats.seconds:,.1f} s ({rate:,.1f} MB/s)"
            + (f"; {stats.unresolved_inputs:,} inputs spend outputs not ingested (value/address null)"
               if stats.unresolved_inputs else "")
            + (f"; {stats.stale_blocks:,} blocks not on the best chain" if stats.stale_blocks else "")
            + (f"; rolled back {stats.rolled_back:,} blocks (reorg)" if stats.rolled_back else ""),
            highlight=False)

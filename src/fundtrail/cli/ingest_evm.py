"""``fundtrail ingest evm --rpc URL --chain NAME [--from N] [--to N] [--follow]``."""

from __future__ import annotations

from typing import Annotated

import typer

from fundtrail.cli.common import CliProgress, HomeOpt, WaitOpt, console, workspace
from fundtrail.netclient import HttpLimits


def register(ingest_app: typer.Typer) -> None:
    @ingest_app.command("evm")
    def ingest_evm_cmd(
        rpc: Annotated[str, typer.Option("--rpc", help="JSON-RPC URL (http(s)://…) or a replay file:///…/rpc.jsonl.")],
        chain: Annotated[str, typer.Option("--chain", help="Chain name in the workspace (ethereum, base, …).")],
        start: Annotated[int | None, typer.Option("--from", help="First block (default: after the last ingested).")] = None,
        end: Annotated[int | None, typer.Option("--to", help="Last block (default: the node's tip).")] = None,
        follow: Annotated[bool, typer.Option("--follow", help="Keep polling for new blocks.")] = False,
        batch_blocks: Annotated[int, typer.Option("--batch-blocks", help="Blocks fetched and committed together.")] = 20,
        trace: Annotated[str, typer.Option("--trace", help="auto | debug | trace | none")] = "auto",
        rpc_timeout: Annotated[float, typer.Option("--rpc-timeout", help="Seconds to connect and for each read of an RPC answer.")] = 60.0,
        rpc_deadline: Annotated[float, typer.Option("--rpc-deadline", help="Seconds for a whole RPC call (all reads).")] = 600.0,
        rpc_max_mb: Annotated[int, typer.Option("--rpc-max-mb", help="Largest RPC answer accepted, in MiB.")] = 512,
        rpc_retries: Annotated[int, typer.Option("--rpc-retries", help="Retries (exponential backoff) of a failed RPC call.")] = 6,
        home: HomeOpt = None,
        wait: WaitOpt = 0.0,
    ) -> None:
        """Ingest an EVM chain over JSON-RPC: blocks, transactions, transfers (internal ones from traces),
        logs and tokens."""
        from fundtrail.ingest.evm.service import ingest_evm

        ws = workspace(home, wait=wait)
        with CliProgress() as progress:  # Ctrl-C: main() says what is kept and exits 130
            st = ingest_evm(ws, rpc, chain, start=start, end=end, follow=follow, progress=progress,
                            batch_blocks=batch_blocks, trace_method=trace, timeout=rpc_timeout,
                            limits=HttpLimits(max_bytes=rpc_max_mb << 20, timeout=rpc_timeout,
                                              deadline=rpc_deadline), retries=rpc_retries)
        rng = f"{st.first_height}..{st.last_height}" if st.blocks else "nothing new"
        console.print(f"{st.chain} (chain id {st.chain_id}): {st.blocks:,} blocks ({rng}), {st.transactions:,} "
                      f"transactions, {st.transfers:,} transfers, {st.logs:,} logs, {st.tokens:,} new tokens; "
                      f"traces: {st.trace_method}; {st.reorgs} reorgs; {st.seconds:.1f}s", highlight=False)

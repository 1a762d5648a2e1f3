"""``fundtrail cluster``: cluster addresses; ``cluster why A B``, ``cluster alarms``, ``cluster show A``."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import typer

from fundtrail.cli.common import CliProgress, HomeOpt, WaitOpt, console, emit_json, render_table, workspace


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Cluster addresses (co-spend, CoinJoin-aware, change and deposit heuristics), "
                        "with the evidence of every merge.", invoke_without_command=True)

    @group.callback()
    def cluster(
        ctx: typer.Context,
        home: HomeOpt = None,
        chain: str | None = typer.Option(None, "--chain", help="Chain to cluster (default: every chain)."),
        change_heuristics: str = typer.Option(
            "none", "--change-heuristics",
            help="Change heuristics used for merges: comma-separated of one_time, address_type, "
                 "round_amount, optimal_change, fingerprint, peel_chain; or all / none."),
        alarm_size: int = typer.Option(1000, "--alarm-size", help="Supercluster alarm: a merge of two "
                                       "clusters both at least this many addresses."),
        full: bool = typer.Option(False, "--full", help="Recompute from scratch instead of extending."),
        json_out: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
        engine: str = typer.Option("embedded", "--engine", help="Where the job runs: embedded (in process) "
                                   "or spark (UTXO chains on Apache Spark, always from scratch)."),
        spark_master: str = typer.Option("local[*]", "--spark-master", help="Spark master URL "
                                         "(local[*], spark://host:7077, yarn, k8s://...)."),
        spark_conf: list[str] = typer.Option([], "--spark-conf", help="A Spark setting key=value (repeatable)."),
        wait: WaitOpt = 0.0,
    ) -> None:
        """Cluster the addresses of one chain or all chains (incremental: new blocks extend the clusters)."""
        ctx.obj = {"home": home}
        if ctx.invoked_subcommand is not None:
            return
        from fundtrail.engine.base import engine_spec

        spec = engine_spec(engine, spark_master, spark_conf)
        ws = workspace(home, wait=wait)
        with CliProgress() as progress:
            if spec.distributed:
                from fundtrail.cluster.distributed import cluster as run_distributed

                stats = run_distributed(ws, chain, spec, change_heuristics=change_heuristics, progress=progress,
                                        alarm_size=alarm_size)
            else:
                from fundtrail.cluster.service import cluster as run

                stats = run(ws, chain, change_heuristics=change_heuristics, progress=progress,
                            alarm_size=alarm_size, full=full)
        rows = [dataclasses.asdict(s) for s in stats.chains]
        if json_out:
            emit_json(rows)
            return
        view = [{"chain": r["chain"], "mode": r["mode"],
                 "blocks": f"{r['from_height'] + 1}..{r['to_height']}" if r["kind"] == "utxo" else "all",
                 "addresses": r["addresses"], "clusters": r["clusters"], "merges": r["merges"],
                 "coinjoins": r["coinjoins"], "change edges": r["change_edges"], "deposits": r["deposits"],
                 "alarms": r["alarms"], "seconds": round(r["seconds"], 2)} for r in rows]
        render_table(pa.Table.from_pylist(view) if view else pa.table({"chain": []}), title="clusters")

    def _home(ctx: typer.Context, home):
        return home if home is not None else (ctx.obj or {}).get("home")

    @group.command("why")
    def why(
        ctx: typer.Context,
        address_a: str = typer.Argument(..., help="An address."),
        address_b: str = typer.Argument(..., help="Another address."),
        chain: str | None = typer.Option(None, "--chain", help="Chain (default: the one knowing A)."),
        home: HomeOpt = None,
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Explain why two addresses are in one cluster: the chain of merges joining them."""
        from fundtrail.cluster.evidence import guess_chain
        from fundtrail.cluster.evidence import why as explain

        ws = workspace(_home(ctx, home))
        chain = chain or guess_chain(ws, address_a)
        ex = explain(ws, chain, address_a, address_b)
        if json_out:
            emit_json({**dataclasses.asdict(ex), "same_cluster": ex.same_cluster, "confidence": ex.confidence})
            raise typer.Exit(0 if ex.same_cluster else 1)
        if not ex.same_cluster:
            console.print(f"{ex.address_a} (cluster {ex.cluster_a}) and {ex.address_b} (cluster {ex.cluster_b}) "
                          "are not in the same cluster.", highlight=False)
            for n in ex.coinjoins:
                console.print(f"Both spent in tx {n.txid} (height {n.height}), a multi-party transaction "
                              f"({n.kind}, confidence {n.confidence:.2f}), so its inputs were not merged:\n   "
                              + "\n   ".join(n.reasons), highlight=False, soft_wrap=True)
            raise typer.Exit(1)
        console.print(f"{ex.address_a} and {ex.address_b} are both in cluster {ex.cluster_a} on {ex.chain}, "
                      f"joined by {len(ex.steps)} merge(s) (combined confidence {ex.confidence:.3f}):",
                      highlight=False)
        for i, s in enumerate(ex.steps, 1):
            console.print(f"{i}. {s.from_address} -> {s.to_address}\n   tx {s.txid} (height {s.height}): "
                          f"{s.heuristic}, confidence {s.confidence:.2f}, merge #{s.seq}",
                          highlight=False, soft_wrap=True)

    @group.command("alarms")
    def alarms(
        ctx: typer.Context,
        chain: str | None = typer.Option(None, "--chain"),
        home: HomeOpt = None,
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """List supercluster alarms: merges of two clusters that were both large."""
        ws = workspace(_home(ctx, home))
        where = "WHERE al.chain = $c" if chain else ""
        con = ws.connect()
        try:
            t = con.sql(f"""
                SELECT al.chain, al.seq, al.height, al.txid, al.heuristic, al.size_a, al.size_b,
                       a.address AS address_a, b.address AS address_b, al.clustered_at
                FROM cluster_alarms al
                LEFT JOIN addresses a ON a.chain = al.chain AND a.address_id = al.a_id
                LEFT JOIN addresses b ON b.chain = al.chain AND b.address_id = al.b_id
                {where} ORDER BY al.chain, al.seq""", params={"c": chain} if chain else None).to_arrow_table()
        finally:
            con.close()
        render_table(t, "json" if json_out else "table", title="supercluster alarms")

    @group.command("show")
    def show(
        ctx: typer.Context,
        address: str = typer.Argument(..., help="An address."),
        chain: str | None = typer.Option(None, "--chain"),
        limit: int = typer.Option(50, "--limit", help="Members to list."),
        home: HomeOpt = None,
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Show the cluster of an address: id, size, members, merges by heuristic."""
        from fundtrail.cluster.evidence import guess_chain
        from fundtrail.cluster.evidence import show as show_cluster

        ws = workspace(_home(ctx, home))
        info = show_cluster(ws, chain or guess_chain(ws, address), address, limit)
        if json_out:
            emit_json(info)
            return
        console.print(f"{info['address']}: cluster {info['cluster_id']} on {info['chain']}, {info['size']} "
                      f"address(es); merges by heuristic: {info['merges_by_heuristic'] or 'none'}", highlight=False)
        render_table(pa.table({"member": info["members"]}))
        for n in info["coinjoins"]:
            console.print(f"Took part in tx {n['txid']} (height {n['height']}): {n['kind']}, confidence "
                          f"{n['confidence']:.2f}, inputs not merged ({', '.join(n['addresses'][:5])}):\n   "
                          + "\n   ".join(n["reasons"]), highlight=False, soft_wrap=True)

    app.add_typer(group, name="cluster")

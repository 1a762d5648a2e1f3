"""``fundtrail evidence export|verify|keygen|freeze-requests`` (docs/evidence.md)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import typer

from fundtrail.cli.common import CliProgress, HomeOpt, console, err_console, workspace
from fundtrail.errors import EvidenceError, UsageError

MODELS = ("poison", "haircut", "fifo")

evidence_app = typer.Typer(help="Evidence bundles a third party can verify, and freeze-request packets.",
                           no_args_is_help=True)


def _models(model: list[str] | None) -> tuple[str, ...]:
    out: list[str] = []
    for m in model or ["all"]:
        for x in m.split(","):
            x = x.strip()
            if x == "all":
                out += MODELS
            elif x in MODELS:
                out.append(x)
            else:
                raise UsageError(f"--model {x!r}: use haircut, poison, fifo or all")
    return tuple(dict.fromkeys(out))


def _per_chain(ws: Any, values: list[str] | None, kind: str, option: str) -> dict[str, str]:
    """``CHAIN=VALUE`` items, or one bare VALUE for the workspace's only chain of ``kind``."""
    out: dict[str, str] = {}
    chains = ws.chains()
    for v in values or []:
        chain, sep, value = v.partition("=")
        if sep and chain in chains:
            out[chain] = value
            continue
        of_kind = sorted(c for c, s in chains.items() if s.get("kind") == kind)
        if len(of_kind) != 1:
            raise UsageError(f"{option} {v!r}: name the chain (CHAIN=...): the workspace has "
                             f"{len(of_kind)} {kind} chains ({', '.join(of_kind) or 'none'})")
        out[of_kind[0]] = v
    return out


def _rpc_url(v: str) -> str:
    return v if "://" in v else Path(v).resolve().as_uri()


def _export_options(ws: Any, model: list[str] | None, blocks_dir: list[str] | None, rpc: list[str] | None,
                    direction: str, max_hops: int, dust: int | None, follow_mixers: bool,
                    docs: Path | None) -> dict[str, Any]:
    models = _models(model)
    return {"models": models, "primary": "haircut" if "haircut" in models else models[0], "direction": direction,
            "max_hops": max_hops, "dust": dust, "follow_mixers": follow_mixers,
            "blocks_dirs": _per_chain(ws, blocks_dir, "utxo", "--blocks-dir"),
            "rpc": {c: _rpc_url(u) for c, u in _per_chain(ws, rpc, "evm", "--rpc").items()}, "docs_dir": docs}


def _command(name: str, args: list[tuple[str, Any]]) -> str:
    parts = ["fundtrail", "evidence", name]
    for k, v in args:
        if v is None or v is False or v == []:
            continue
        if v is True:
            parts.append(k)
        elif isinstance(v, list):
            for x in v:
                parts += [k, str(x)]
        elif k:
            parts += [k, str(v)]
        else:
            parts.append(str(v))
    return shlex.join(parts)


ModelOpt = typer.Option(None, "--model", help="haircut | poison | fifo | all (default all; repeatable).")
BlocksOpt = typer.Option(None, "--blocks-dir", help="Bitcoin block files to read raw transactions from "
                         "([CHAIN=]DIR, repeatable).")
RpcOpt = typer.Option(None, "--rpc", help="EVM JSON-RPC URL (or recording) to read raw transactions from "
                      "([CHAIN=]URL, repeatable).")
DirectionOpt = typer.Option("forward", "--direction", help="forward | backward")
HopsOpt = typer.Option(20, "--max-hops", help="Stop following after this many hops.")
DustOpt = typer.Option(None, "--dust", help="Stop at amounts below this (base units).")
MixOpt = typer.Option(False, "--follow-mixers", help="Follow candidate mixer withdrawals.")
DocsOpt = typer.Option(None, "--docs", help="Folder with tracing.md and heuristics.md (default: the source tree's).")


def register(app: typer.Typer) -> None:
    @evidence_app.command("export")
    def export_cmd(
        incident: str = typer.Argument(..., help="Incident name (fundtrail incident list)."),
        out: Path = typer.Option(..., "--out", "-o", help="The bundle to write (FILE.zip)."),
        model: list[str] = ModelOpt,
        sign: Path | None = typer.Option(None, "--sign", help="Ed25519 private key (PEM) to sign the manifest with."),
        blocks_dir: list[str] = BlocksOpt,
        rpc: list[str] = RpcOpt,
        direction: str = DirectionOpt,
        max_hops: int = HopsOpt,
        dust: int | None = DustOpt,
        follow_mixers: bool = MixOpt,
        docs: Path | None = DocsOpt,
        home: HomeOpt = None,
    ) -> None:
        """Export an incident's evidence bundle: report, paths, raw transactions, tags, methodology, pins."""
        from fundtrail.evidence.bundle import export_bundle

        ws = workspace(home)
        opts = _export_options(ws, model, blocks_dir, rpc, direction, max_hops, dust, follow_mixers, docs)
        cmd = _command("export", [("", incident), ("--out", out), ("--model", model), ("--sign", sign),
                                  ("--blocks-dir", blocks_dir), ("--rpc", rpc), ("--direction", direction),
                                  ("--max-hops", max_hops), ("--dust", dust), ("--follow-mixers", follow_mixers)])
        with CliProgress() as progress:
            e = export_bundle(ws, incident, out, sign_key=sign, command=cmd, progress=progress, **opts)
        m = e.manifest
        console.print(f"wrote {e.path} ({e.path.stat().st_size:,} bytes, SHA-256 {e.sha256})", highlight=False)
        for c in m["chains"]:
            console.print(f"  pinned {c['chain']} at height {c['height']} ({c['hash']})", highlight=False)
        for chain, info in sorted(m["raw_transactions"].items()):
            console.print(f"  raw transactions {chain}: {info['included']} included"
                          + (f", {len(info['missing'])} without a raw copy" if info["missing"] else ""), highlight=False)
        console.print(f"  tags as of {m['tags']['as_of']} ({len(m['tags']['datasets'])} datasets)"
                      + ("; signed" if sign else "; not signed"), highlight=False)

    @evidence_app.command("verify")
    def verify_cmd(
        bundle: Path = typer.Argument(..., help="The bundle (FILE.zip)."),
        replay: bool = typer.Option(False, "--replay", help="Re-run the trace as of the pinned heights and tags."),
        key: Path | None = typer.Option(None, "--key", help="The signer's public key (PEM) the signature must match."),
        offline: bool = typer.Option(False, "--offline", help="Digests and signature only (no workspace: raw "
                                     "transactions and paths are not checked against chain data)."),
        home: HomeOpt = None,
    ) -> None:
        """Check every digest, the signature and the raw transactions; exit 0, or non-zero naming each mismatch."""
        from fundtrail.evidence.verify import verify_bundle

        if offline and replay:
            raise UsageError("--replay needs the workspace: drop --offline")
        ws = None if offline else workspace(home)
        with CliProgress():
            v = verify_bundle(bundle, ws, key=key, replay=replay)
        for line in v.summary():
            console.print(line, highlight=False)
        if not v.ok:
            for p in v.problems:
                err_console.print(f"[red]mismatch:[/] {p}", highlight=False)
            for d in v.differences:
                err_console.print(f"[red]replay differs:[/] {d}", highlight=False)
            raise EvidenceError(f"{bundle}: does not verify ({len(v.problems)} mismatch(es), "
                                f"{len(v.differences)} replay difference(s))")
        console.print("[green]verified[/]")

    @evidence_app.command("keygen")
    def keygen_cmd(out: Path = typer.Option(..., "--out", "-o", help="Private key file to write (the public key "
                                            "goes to FILE.pub).")) -> None:
        """Create an Ed25519 key pair for signing bundles."""
        from fundtrail.evidence.signing import fingerprint, keygen, load_private

        priv, pub = keygen(out)
        console.print(f"private key {priv} (keep it secret), public key {pub}; key SHA-256 "
                      f"{fingerprint(load_private(priv))}", highlight=False)

    @evidence_app.command("freeze-requests")
    def freeze_cmd(
        incident: str = typer.Argument(..., help="Incident name."),
        out: Path = typer.Option(..., "--out", "-o", help="Folder to write the packets and their index to."),
        bundle: Path | None = typer.Option(None, "--bundle", help="Where to write the bundle the packets are cut "
                                           "from (default OUT/evidence-bundle.zip)."),
        template: Path | None = typer.Option(None, "--template", help="Letter template ($entity, $amounts, "
                                             "$unspent, $bundle_sha256 …); default: the built-in one."),
        requester: str = typer.Option("", "--requester", help="Who asks (fills $requester)."),
        contact: str = typer.Option("", "--contact", help="How to reach the requester (fills $contact)."),
        reference: str = typer.Option("", "--reference", help="Case reference (fills $case_reference)."),
        pdf: bool | None = typer.Option(None, "--pdf/--no-pdf", help="Also print each packet to PDF (default: "
                                        "when a converter is installed)."),
        sign: Path | None = typer.Option(None, "--sign", help="Sign the bundle with this Ed25519 key."),
        model: list[str] = ModelOpt,
        blocks_dir: list[str] = BlocksOpt,
        rpc: list[str] = RpcOpt,
        direction: str = DirectionOpt,
        max_hops: int = HopsOpt,
        dust: int | None = DustOpt,
        follow_mixers: bool = MixOpt,
        docs: Path | None = DocsOpt,
        home: HomeOpt = None,
    ) -> None:
        """One freeze-request packet per exchange / OTC desk / custodian that received stolen funds."""
        from fundtrail.evidence.freeze import freeze_requests

        ws = workspace(home)
        opts = _export_options(ws, model, blocks_dir, rpc, direction, max_hops, dust, follow_mixers, docs)
        cmd = _command("freeze-requests", [("", incident), ("--out", out), ("--model", model),
                                           ("--blocks-dir", blocks_dir), ("--rpc", rpc)])
        with CliProgress() as progress:
            r = freeze_requests(ws, incident, out, bundle=bundle, template=template, pdf=pdf, sign_key=sign,
                                fields={"requester": requester, "contact": contact, "case_reference": reference},
                                command=cmd, progress=progress, **opts)
        console.print(f"bundle {r.bundle.path} (SHA-256 {r.bundle.sha256})", highlight=False)
        for i, p in enumerate(r.packets, 1):
            amounts = "; ".join(f"{a['chain']} {a['by_model'][p['primary_model']]['display']} "
                                f"{a['symbol'] or a['asset']}" for a in p["amounts"] if p["primary_model"] in a["by_model"])
            console.print(f"  {i:2d}. {p['entity']} ({p['category']}, {p['country'] or '?'}): {amounts}", highlight=False)
        console.print(f"{len(r.packets)} packets; index {r.index}", highlight=False)

    app.add_typer(evidence_app, name="evidence")

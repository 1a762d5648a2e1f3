"""Fixtures of the evidence tests: one simulated incident, fully ingested (shared, read-only)."""

from __future__ import annotations

import pytest

from . import world


@pytest.fixture(scope="session")
def sim(tmp_path_factory):
    """(out, truth, workspace): the demo world (seed 1) with incident ``sim-theft``. Do not write to it."""
    out = tmp_path_factory.mktemp("evidence-world")
    truth = world.simulate(out)
    ws = world.build(out, tmp_path_factory.mktemp("evidence-ws"), truth)
    return out, truth, ws


@pytest.fixture(scope="session")
def bundle(sim, tmp_path_factory):
    """A signed bundle of ``sim-theft`` with raw transactions: (Exported, private key, public key)."""
    from fundtrail.evidence.bundle import export_bundle
    from fundtrail.evidence.signing import keygen

    out, truth, ws = sim
    d = tmp_path_factory.mktemp("evidence-bundle")
    priv, pub = keygen(d / "signer")
    e = export_bundle(ws, "sim-theft", d / "sim-theft.zip", sign_key=priv, **world.sources(out, truth))
    return e, priv, pub

"""Finding 18: every runtime dependency has an upper bound, and the service's lock file pins each of them
(and everything they pull in) to one version with hashes, inside the declared range."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]


def _lock() -> dict[str, tuple[str, list[str]]]:
    text = (REPO / "requirements" / "service.lock").read_text()
    out: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        m = re.match(r"([A-Za-z0-9_.-]+)==([^\s\\]+)", block)
        if m:
            out[canonicalize_name(m.group(1))] = (m.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return out


def _deps() -> list[Requirement]:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in meta["dependencies"]]
    for extra in meta.get("optional-dependencies", {}).values():
        reqs += [Requirement(r) for r in extra]
    return reqs


def test_every_dependency_has_an_upper_bound():
    for r in _deps():
        assert any(s.operator in ("<", "<=", "==", "~=") for s in r.specifier), f"{r} has no upper bound"


def test_lock_pins_every_runtime_dependency_with_hashes():
    lock = _lock()
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for raw in meta["dependencies"]:
        r = Requirement(raw)
        name = canonicalize_name(r.name)
        assert name in lock, f"{name} missing from requirements/service.lock: regenerate it (docs/security.md)"
        version, hashes = lock[name]
        assert r.specifier.contains(version, prereleases=True), f"{name}=={version} outside {r.specifier}"
    assert all(h for _, h in lock.values()), "every locked package needs --hash lines"

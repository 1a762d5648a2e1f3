"""The house rules of src/fundtrail, read from the source with ``ast`` (nothing is imported, so this runs in
well under a second): no import cycle; the Solidity test contracts and the anvil launcher stay with the
simulator; imports point inward (edges -> services -> kernels -> model). docs/architecture.md draws the
map these rules keep true; a new top-level folder goes into ``RANKS`` below and into that map.

Every ``import`` counts, also one inside a function (a lazy import is still a dependency). ``from P import
x`` depends on the module ``P.x`` when there is one, otherwise on ``P``; importing a child module does not
count as importing its parent package (Python runs the parent's ``__init__`` first, but that is no
dependency of concepts unless the parent imports the child back by name, which *is* then a cycle).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# rank of every top-level folder or module: a module may import its own folder and folders of a lower or
# equal rank, never a higher one. Folders not built yet (wave 2) have their planned place already.
RANKS: dict[str, int] = {
    "fundtrail": 0,  # the package root (src/fundtrail/__init__.py)
    "errors": 0,
    "progress": 0,
    "model": 1,
    "store": 2,
    "engine": 3,  # the seam: embedded kernels | Spark jobs, below every service that runs a job
    "ingest": 3,
    "attribution": 3,
    "prices": 3,
    "cluster": 4,
    "incidents": 4,
    "incidents_catalogue": 4,  # reads incident catalogues (CSV/JSON/YAML) into incidents
    "trace": 5,
    "exposure": 5,
    "screen": 6,
    "report": 6,
    "evidence": 7,
    "stats": 7,  # totals over traces, drawn with the report's charts
    "monitor": 7,
    "service": 8,
    "ui": 8,
    "simulate": 8,
    "cli": 9,
    "__main__": 10,
}
# kernels: pure functions over arrays; they never touch the workspace, a service or an edge
KERNELS = frozenset({
    "fundtrail.trace.taint", "fundtrail.trace.peel", "fundtrail.cluster.unionfind", "fundtrail.cluster.coinjoin",
    "fundtrail.ingest.bitcoin.parse", "fundtrail.ingest.bitcoin.hashing", "fundtrail.ingest.bitcoin.script",
    "fundtrail.ingest.bitcoin.serialize",
})
SIMULATOR = "fundtrail.simulate"
EDGES = ("fundtrail.cli", "fundtrail.__main__")


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


@cache
def modules(src: Path) -> dict[str, Path]:
    """Every module under ``src/fundtrail``: dotted name -> file."""
    out = {}
    for p in sorted((src / "fundtrail").rglob("*.py")):
        rel = p.relative_to(src).with_suffix("")
        out[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = p
    return out


@cache
def imports(src: Path) -> dict[str, dict[str, int]]:
    """module -> {imported fundtrail module: line of the first such import}."""
    mods = modules(src)

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    for m, path in mods.items():
        package = m if path.name == "__init__.py" else m.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str | None] = []
            if isinstance(node, ast.Import):
                targets = [resolve(a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else resolve(base) for a in node.names]
            for t in targets:
                if t is not None and t != m and t.startswith("fundtrail"):
                    edges.setdefault(t, node.lineno)
        graph[m] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(graph.get(w, {}))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _where(src: Path, graph: dict[str, dict[str, int]], m: str, t: str) -> str:
    path = modules(src)[m].relative_to(src.parent)
    return f"{path}:{graph[m][t]} ({m} imports {t})"


def cycle_violations(src: Path) -> list[str]:
    graph = imports(src)
    out = []
    for comp in cycles(graph):
        inside = set(comp)
        edges = [_where(src, graph, m, t) for m in comp for t in graph[m] if t in inside]
        out.append("import cycle " + " <-> ".join(comp) + ":\n    " + "\n    ".join(edges))
    return out


def contract_packages(src: Path) -> list[str]:
    """The packages holding Solidity sources (the test contracts, their artifacts and the anvil launcher)."""
    found = {p.parent for p in (src / "fundtrail").rglob("*.sol")}
    return sorted(".".join(d.relative_to(src).parts) for d in found)


def contract_violations(src: Path) -> list[str]:
    """The test contracts outside the simulator, and runtime modules reaching them, directly or through
    other modules. Allowed to reach them: the simulator (it plays with them) and the CLI edge starting it."""
    graph = imports(src)
    packages = contract_packages(src)
    out = [f"{p}: the Solidity test contracts belong under {SIMULATOR}" for p in packages
           if not _within(p, SIMULATOR)]
    for m in graph:
        if any(_within(m, p) for p in (SIMULATOR, *EDGES, *packages)):
            continue
        # breadth-first, remembering the way, to name the chain of imports
        came: dict[str, str] = {m: ""}
        todo = [m]
        while todo:
            v = todo.pop(0)
            if any(_within(v, p) for p in packages):
                chain = [v]
                while came[chain[-1]]:
                    chain.append(came[chain[-1]])
                out.append(f"{m} reaches the test contracts: {' -> '.join(reversed(chain))}")
                break
            for w in graph.get(v, {}):
                if w not in came:
                    came[w] = v
                    todo.append(w)
    return out


def layer_violations(src: Path) -> list[str]:
    graph = imports(src)
    out = []
    for m, edges in graph.items():
        f = _folder(m)
        if f not in RANKS:
            out.append(f"{m}: the folder {f!r} has no place in the map (add it to RANKS in "
                       "tests/test_architecture.py and to docs/architecture.md)")
            continue
        edge = any(_within(m, e) for e in EDGES)
        for t in edges:
            g = _folder(t)
            if m in KERNELS and t not in KERNELS and g not in ("model", "errors"):
                why = "a kernel imports only kernels, model and errors"
            elif g == f or g not in RANKS:
                continue
            elif f == "model" and g != "errors":
                why = "model imports nothing but model and errors"
            elif g == "cli" and not edge:
                why = "nothing but the CLI imports the CLI"
            elif g == "simulate" and not edge:
                why = "the simulator is started by the CLI only"
            elif RANKS[g] > RANKS[f]:
                why = f"imports point inward: {f} (rank {RANKS[f]}) must not import {g} (rank {RANKS[g]})"
            else:
                continue
            out.append(f"{_where(src, graph, m, t)}: {why}")
    return out


def test_no_import_cycle():
    assert cycle_violations(SRC) == []


def test_no_runtime_import_of_the_test_contracts():
    assert contract_packages(SRC) == ["fundtrail.simulate.contracts"]
    assert contract_violations(SRC) == []


def test_imports_point_inward():
    assert layer_violations(SRC) == []


def test_every_kernel_exists():
    assert KERNELS <= set(modules(SRC)), sorted(KERNELS - set(modules(SRC)))


# --- the checks themselves catch what they are for -----------------------------------------------------------

def _write(root: Path, files: dict[str, str]) -> Path:
    src = root / "src"
    for name, text in files.items():
        p = src / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return src


@pytest.fixture
def clean() -> dict[str, str]:
    return {
        "fundtrail/__init__.py": "",
        "fundtrail/errors.py": "",
        "fundtrail/model/__init__.py": "",
        "fundtrail/model/evm_abi.py": "from fundtrail.errors import x\n",
        "fundtrail/trace/__init__.py": "",
        "fundtrail/trace/taint.py": "import numpy\n",
        "fundtrail/trace/service.py": "from fundtrail.trace import taint\nfrom ..model import evm_abi\n",
        "fundtrail/simulate/__init__.py": "",
        "fundtrail/simulate/contracts/__init__.py": "",
        "fundtrail/simulate/contracts/Pool.sol": "contract Pool {}\n",
        "fundtrail/simulate/world.py": "from fundtrail.simulate.contracts import load\n",
        "fundtrail/cli/__init__.py": "",
        "fundtrail/cli/main.py": "def f():\n    from fundtrail.simulate import world\n",
    }


def test_a_clean_tree_passes(tmp_path: Path, clean: dict[str, str]):
    src = _write(tmp_path, clean)
    assert imports(src)["fundtrail.trace.service"] == {"fundtrail.trace.taint": 1, "fundtrail.model.evm_abi": 2}
    assert cycle_violations(src) == contract_violations(src) == layer_violations(src) == []


def test_a_lazy_import_cycle_is_caught(tmp_path: Path, clean: dict[str, str]):
    clean["fundtrail/trace/taint.py"] = "def f():\n    from fundtrail.trace.service import g\n"
    (v,) = cycle_violations(_write(tmp_path, clean))
    assert "fundtrail.trace.service <-> fundtrail.trace.taint" in v and "taint.py:2" in v


def test_a_runtime_path_to_the_test_contracts_is_caught(tmp_path: Path, clean: dict[str, str]):
    clean["fundtrail/trace/service.py"] = "from fundtrail.simulate import world\n"
    v = contract_violations(_write(tmp_path, clean))
    assert v == ["fundtrail.trace.service reaches the test contracts: fundtrail.trace.service -> "
                 "fundtrail.simulate.world -> fundtrail.simulate.contracts"]


def test_outward_imports_are_caught(tmp_path: Path, clean: dict[str, str]):
    clean["fundtrail/model/evm_abi.py"] = "from fundtrail.trace import service\n"
    clean["fundtrail/trace/service.py"] = "import fundtrail.cli.main\n"
    clean["fundtrail/trace/taint.py"] = "\n\nfrom fundtrail.trace import service\n"
    clean["fundtrail/report/__init__.py"] = "from fundtrail.simulate.world import x\n"
    clean["fundtrail/cluster/__init__.py"] = "from fundtrail.report import y\n"
    clean["fundtrail/newthing/__init__.py"] = ""
    v = layer_violations(_write(tmp_path, clean))
    assert any("evm_abi.py:1" in x and "model imports nothing but model and errors" in x for x in v)
    assert any("service.py:1" in x and "nothing but the CLI imports the CLI" in x for x in v)
    assert any("taint.py:3" in x and "a kernel imports only kernels, model and errors" in x for x in v)
    assert any("report/__init__.py:1" in x and "the simulator is started by the CLI only" in x for x in v)
    assert any("cluster/__init__.py:1" in x and "cluster (rank 4) must not import report (rank 6)" in x for x in v)
    assert any("'newthing' has no place in the map" in x for x in v)


def test_test_contracts_outside_the_simulator_are_caught(tmp_path: Path, clean: dict[str, str]):
    clean["fundtrail/contracts/__init__.py"] = ""
    clean["fundtrail/contracts/Bridge.sol"] = "contract Bridge {}\n"
    clean["fundtrail/model/evm_abi.py"] = "from fundtrail.contracts import abi\n"
    v = contract_violations(_write(tmp_path, clean))
    assert v == ["fundtrail.contracts: the Solidity test contracts belong under fundtrail.simulate",
                 "fundtrail.model.evm_abi reaches the test contracts: fundtrail.model.evm_abi -> fundtrail.contracts",
                 "fundtrail.trace.service reaches the test contracts: fundtrail.trace.service -> "
                 "fundtrail.model.evm_abi -> fundtrail.contracts"]

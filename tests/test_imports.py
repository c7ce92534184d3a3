"""The package's import graph, read from the source (ast, nothing imported): layers and no circles.

Every ``import`` counts, at module level or inside a function: a function-level import is still an
edge (it only moves the circle from import time to call time). ARCHITECTURE.md's forbidden arrows:
methods, metrics, models and data never reach up into the runner, the board, the CLI, submission
or claims; run/ never imports the board; only ``bench/__main__.py`` imports the CLI; the registry
imports no plugin family.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "bench"
PLUGIN_FAMILIES = ("bench.data", "bench.methods", "bench.metrics", "bench.models")
# The board package.
BOARD = ("bench.board",)
ABOVE_PLUGINS = ("bench.run", *BOARD, "bench.cli", "bench.submit", "bench.claims")
# Edges waived until another branch lands, each with the edit that removes it:
WAIVED: set[tuple[str, str]] = set()  # (module, imported): an edge tolerated with a reason beside it


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The package module ``name`` refers to: itself, or the longest known module prefix of it."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """Package modules ``module`` imports anywhere in its source; ``from a import b`` is ``a.b`` when
    ``b`` is a module, else ``a``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level-1 parents
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        out |= {r for n in names if n.startswith("bench") and (r := _resolve(n)) and r != module}
    return out


GRAPH = {m: imports_of(m) for m in MODULES}


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def test_the_walker_sees_module_and_function_level_imports():
    assert "bench.registry" in GRAPH["bench.plugins"]  # module level
    assert "bench.submit" in GRAPH["bench.cli.submit"]  # inside command()
    assert "bench.run.runner" in GRAPH["bench.cli.run"]  # `from bench.run.runner import Runner`
    assert "bench.cli.run" in GRAPH["bench.cli"]  # `from bench.cli import cite, …, run, …`: modules
    assert "bench.methods.cam" in GRAPH["bench.methods"]  # `from bench.methods import cam, …`


def test_cycle_finder_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _under(m, PLUGIN_FAMILIES)))
def test_plugins_do_not_reach_up(module):
    up = sorted(t for t in GRAPH[module] if _under(t, ABOVE_PLUGINS))
    assert not up, f"{module} imports {up}: methods, metrics, models and data stay below run/, the board, " \
                    "the CLI, submission and claims"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _under(m, ("bench.run",))))
def test_run_does_not_import_the_board(module):
    assert not [t for t in GRAPH[module] if _under(t, BOARD)]


def test_only_main_imports_the_cli():
    assert sorted(m for m, ts in GRAPH.items() if "bench.cli" in ts) == ["bench.__main__"]


def test_registry_imports_no_plugin():
    assert not [t for t in GRAPH["bench.registry"] if _under(t, (*PLUGIN_FAMILIES, "bench.plugins"))]


def test_no_import_circles():
    graph = {m: {t for t in ts if (m, t) not in WAIVED} for m, ts in GRAPH.items()}
    assert cycles(graph) == []


def test_waived_edges_still_exist():
    """A waiver whose edge is gone must go too, or it would hide the next circle through it."""
    assert all(t in GRAPH.get(m, ()) for m, t in WAIVED)


def _reach(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for t in GRAPH.get(todo.pop(), ()):
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return seen


def test_the_suite_loader_does_not_reach_the_board():
    """``bench.suite`` validates claims with ``bench.claim_spec``; judging them (``bench.claims``) needs the
    board, which loads suites: one direction, no import (at any level) from the loader up to the board."""
    up = sorted(t for t in _reach("bench.suite") if _under(t, (*BOARD, "bench.claims")))
    assert not up, f"bench.suite reaches {up}"
    assert "bench.claim_spec" in GRAPH["bench.suite"]
    assert {"bench.board.stats", "bench.board.config", "bench.claim_spec"} <= GRAPH["bench.claims"]


def test_importing_the_suite_loader_loads_no_board_module():
    import subprocess
    import sys

    code = ("import sys, bench.suite; "
            "print(sorted(m for m in sys.modules if m.startswith(('bench.board', 'bench.claims'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT.parent).stdout.strip()
    assert out == "[]"

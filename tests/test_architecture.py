"""The package's shape as a specification: layers in the order the data flows, no cycles,
one door to each heavy dependency (README, "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "verifier"
# Lowest first; a module may import its own layer and the layers below it.
LAYERS = (
    ("errors", "verdicts", "version", "progress", "mdp", "graph", "documents", "budget", "stdout"),
    ("storm",),
    ("engine",),
    ("inputs",),
    ("spec",),
    ("policy",),
    ("analyses",),
    ("output",),
    (
        "commands",
        "families",
        "runner",
        "suite",
        "arguments",
        "cli",
        "integrations",
        "__init__",
        "__main__",
    ),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """The verifier modules and third-party packages a file imports (dotted names), those
    deferred into functions included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = list(ast.walk(tree))
    found = set()
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name}


def _internal(names: set[str]) -> set[str]:
    """The verifier modules among dotted names (a `from m import f` counts as m)."""
    return {n for n in names if n in MODULES and n != "verifier"} | {
        n.rpartition(".")[0] for n in names if n not in MODULES and n.rpartition(".")[0] in MODULES
    } - {"verifier"}


def _layer(module: str) -> int:
    parts = module.split(".")
    key = "__init__" if len(parts) == 1 else parts[1]
    return RANK[key]


def test_every_module_has_a_layer():
    assert all(_layer(m) is not None for m in MODULES if m != "verifier")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_higher_layer(module):
    if module == "verifier":
        return
    upward = {
        target
        for target in _internal(_imports(MODULES[module]))
        if target != "verifier" and _layer(target) > _layer(module)
    }
    assert not upward, f"{module} (layer {_layer(module)}) imports {sorted(upward)}"


def test_module_imports_have_no_cycle():
    graph = {m: _internal(_imports(p)) - {m} for m, p in MODULES.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError(" -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def _importers(package: str) -> set[str]:
    return {
        module
        for module, path in MODULES.items()
        if any(name.split(".")[0] == package for name in _imports(path))
    }


def test_stormpy_is_imported_by_the_storm_package_alone():
    assert _importers("stormpy") and all(
        m.startswith("verifier.storm") for m in _importers("stormpy")
    )


@pytest.mark.parametrize("package", ["torch", "onnxruntime", "onnx"])
def test_networks_are_run_by_the_policy_package_alone(package):
    outside = {
        m
        for m in _importers(package)
        if not m.startswith(("verifier.policy", "verifier.integrations"))
    }
    assert not outside


@pytest.mark.parametrize(
    "module",
    sorted(m for m in MODULES if m.startswith(("verifier.analyses", "verifier.spec"))),
)
def test_analyses_ask_through_the_query_layer(module):
    """No analysis reaches Storm, the reach engine or the reward solver but through
    verifier.engine.query (graph algorithms and exact certification stay theirs to import)."""
    found = _imports(MODULES[module])
    for forbidden in ("verifier.storm", "verifier.engine.reach", "verifier.engine.optimum.solve"):
        assert forbidden not in found, (module, forbidden)


def test_no_module_is_over_about_600_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 650}
    assert not long, long

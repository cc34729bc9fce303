"""The shape of the code, checked from its imports: layers that point one way, no import loop, and workflow
files that reach only workflow-safe modules. Reads the source with ``ast``; imports nothing of the engine.

Layers, bottom to top (a module may import its own package and any lower layer, never a higher one):

- domain: ``recovery`` (models, classification, units, settings, errors)
- persistence, fee policy and chains, side by side (none imports another): ``store``, ``fees``, ``chains``
- ``services``: what the engine does, over the store, the chains and the fee policy
- ``workflows``: Temporal workflows, their messages and activities (thin over services), starters
- entry points: ``worker``, ``api``, ``cli``, ``devstack``, ``bench`` (only ``cli`` and ``bench`` may use
  the dev tooling in ``devstack``, and only ``bench`` serves the ``api`` it measures)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS: list[set[str]] = [
    {"recovery"},
    {"store", "fees", "chains"},
    {"services"},
    {"workflows"},
    {"worker", "api", "cli", "devstack", "bench"},
]
ALLOWED_SIDEWAYS = {("cli", "devstack"), ("bench", "devstack"), ("bench", "api")}
"""Imports between packages of one layer that are allowed (entry points using the dev tooling; benchmarks
serving the API they measure)."""
WORKFLOW_FILES = (
    "workflows.case_workflow",
    "workflows.scanner_workflow",
    "workflows.reconcile_workflow",
    "workflows.notification_workflow",
)
NOT_WORKFLOW_SAFE = {"sqlalchemy", "sqlmodel", "web3", "httpx", "eth_account", "eth_utils", "psycopg", "fastapi"}
"""Third-party packages a workflow must not load, even passed through the sandbox: I/O lives in activities."""

PACKAGES = {name for layer in LAYERS for name in layer}
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    files = [ROOT / "worker.py"]
    for package in PACKAGES - {"worker"}:
        files += sorted((ROOT / package).rglob("*.py"))
    return {_module_name(f): f for f in files}


MODULES = _sources()


def _resolve(name: str) -> str | None:
    """The engine module ``name`` refers to (its longest known prefix), or None for another library."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, *, runtime_only: bool) -> Iterator[str]:
    """Every imported module name (``from a import b`` gives ``a.b`` and ``a``), inside functions too;
    ``runtime_only`` skips ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if runtime_only and isinstance(node, ast.If) and _is_type_checking(node):
            yield from (name for child in node.orelse for name in _imports(child, runtime_only=runtime_only))
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        yield from _imports(node, runtime_only=runtime_only)


def _graph(*, runtime_only: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = {_resolve(name) for name in _imports(tree, runtime_only=runtime_only)}
        graph[module] = {t for t in targets if t is not None and t != module and not module.startswith(t + ".")}
    return graph


def _package(module: str) -> str:
    return module.split(".")[0]


def test_the_source_tree_is_what_this_test_reads() -> None:
    assert {"recovery.models", "store.cases", "services.settlement", "workflows.case_workflow", "cli.app"} <= set(
        MODULES
    )
    assert "recovery.store" not in MODULES and "chains.devnet" not in MODULES


def test_layers_point_one_way() -> None:
    wrong: list[str] = []
    for module, targets in _graph(runtime_only=False).items():
        source = _package(module)
        for target in sorted(targets):
            dest = _package(target)
            if dest == source or LAYER_OF[dest] < LAYER_OF[source] or (source, dest) in ALLOWED_SIDEWAYS:
                continue
            direction = "up" if LAYER_OF[dest] > LAYER_OF[source] else "sideways"
            wrong.append(f"{module} -> {target} ({direction})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_import_loop() -> None:
    graph = _graph(runtime_only=False)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert not loops, f"import loops: {loops}"


@pytest.mark.parametrize("workflow_module", WORKFLOW_FILES)
def test_workflow_files_load_only_workflow_safe_modules(workflow_module: str) -> None:
    """Everything a workflow file loads at run time, followed through the engine's own modules: domain
    records, messages, activity definitions; no store, service, chain client or I/O library."""
    seen: set[str] = set()
    libraries: set[str] = set()
    todo = [workflow_module]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        tree = ast.parse(MODULES[module].read_text())
        for name in _imports(tree, runtime_only=True):
            target = _resolve(name)
            if target is None:
                libraries.add(name.split(".")[0])
            elif target not in seen:
                todo.append(target)
    engine_packages = {_package(m) for m in seen}
    assert engine_packages <= {"recovery", "workflows"}, sorted(
        m for m in seen if _package(m) not in {"recovery", "workflows"}
    )
    assert not libraries & NOT_WORKFLOW_SAFE, sorted(libraries & NOT_WORKFLOW_SAFE)

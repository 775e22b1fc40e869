"""The package's layering, read from the source with `ast`: no import cycles, and the
layers import only downwards (docs/architecture.md draws them).

Imports under `if TYPE_CHECKING:` never run and are not counted. An import inside a
function is allowed (a CLI command defers torch that way) but counts as an edge for
the cycle check: deferring an import to get around a cycle is the cycle still.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "helexa"

# The bottom layers: wire models, pure translation, config. They import none of these.
UPPER = ("helexa.gateway", "helexa.neuron", "helexa.reconcile", "helexa.serve", "helexa.fleet")
BOTTOM = ("helexa.config", "helexa.protocol", "helexa.translate")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported (not in functions, not type-only)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _type_checking(node):
                yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            yield from _module_level(node.body)
            for handler in node.handlers:
                yield from _module_level(handler.body)
            yield from _module_level(node.orelse)
            yield from _module_level(node.finalbody)
        elif isinstance(node, ast.With):
            yield from _module_level(node.body)


def _in_functions(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports inside function bodies (run on the first call)."""
    for func in ast.walk(tree):
        if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(func):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    yield node


def imports_of(
    name: str, path: Path, modules: dict[str, Path], *, deferred: bool = False
) -> set[str]:
    """The helexa modules `name` imports at module level (with `deferred`, also inside
    functions); `from x import y` counts as x.y when y is a submodule (and as x, which
    importing x.y runs, as well)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    nodes = list(_module_level(tree.body))
    if deferred:
        nodes += _in_functions(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            targets = [base]
            targets += [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            # importing a.b.c runs a, a.b and a.b.c
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in modules and prefix != name:
                    found.add(prefix)
    return found


def import_graph(*, deferred: bool = False) -> dict[str, set[str]]:
    modules = all_modules()
    return {
        name: imports_of(name, path, modules, deferred=deferred) for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None. A package's edges to its own submodules are
    dropped (importing a.b runs a first; a/__init__.py importing a.b back is not a loop)."""
    edges = {node: {t for t in ts if not t.startswith(node + ".")} for node, ts in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


GRAPH = import_graph()
GRAPH_WITH_DEFERRED = import_graph(deferred=True)


def _under(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_the_graph_sees_the_package() -> None:
    """The walk finds real edges (a broken walk would pass every rule below)."""
    assert "helexa.fleet.placement" in GRAPH["helexa.reconcile.diff"]
    assert "helexa.fleet.state" in GRAPH["helexa.fleet.poller"]
    assert "helexa.config.command_template" in GRAPH["helexa.config.models"]


def test_find_cycle_reports_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_cycle_hidden_in_a_function() -> None:
    cycle = find_cycle(GRAPH_WITH_DEFERRED)
    assert cycle is None, "import cycle through a deferred import: " + " -> ".join(cycle or [])


# (importer, imported) packages that must not import one another, as docs/architecture.md
# draws them: the gateway and the reconciler only meet in serve/, the fleet core is below
# both, and the neuron meets the gateway side over HTTP only.
FORBIDDEN = [
    ("helexa.reconcile", "helexa.gateway"),
    ("helexa.gateway", "helexa.reconcile"),
    ("helexa.fleet", "helexa.gateway"),
    ("helexa.fleet", "helexa.reconcile"),
    ("helexa.gateway", "helexa.serve"),
    ("helexa.reconcile", "helexa.serve"),
    ("helexa.fleet", "helexa.serve"),
    ("helexa.neuron", "helexa.gateway"),
    ("helexa.neuron", "helexa.fleet"),
    ("helexa.gateway", "helexa.neuron"),
    ("helexa.fleet", "helexa.neuron"),
]


@pytest.mark.parametrize(("importer", "imported"), FORBIDDEN)
def test_layers_do_not_import_upwards_or_sideways(importer: str, imported: str) -> None:
    bad = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if _under(name, (importer,))
        for target in targets
        if _under(target, (imported,))
    )
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("layer", BOTTOM)
def test_bottom_layers_import_nothing_above_them(layer: str) -> None:
    bad = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if _under(name, (layer,))
        for target in targets
        if _under(target, UPPER)
    )
    assert not bad, "\n".join(bad)


def test_deferred_imports_are_edges_only_for_the_cycle_check() -> None:
    source = "def f():\n    import helexa.gateway.app\n"
    tree = ast.parse(source)
    assert list(_module_level(tree.body)) == []
    assert [n.names[0].name for n in _in_functions(tree) if isinstance(n, ast.Import)] == [
        "helexa.gateway.app"
    ]
    assert "helexa.gateway.dispatch" in GRAPH_WITH_DEFERRED["helexa.gateway.app"]

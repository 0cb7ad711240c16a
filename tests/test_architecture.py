"""The package's shape: no import cycles, imports that follow the data flow
(data -> detect -> refine -> render -> animate -> evaluate), and nothing private imported
across modules. Imports inside functions count too: a lazy import loop is still a loop
for the reader."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Layer of each top-level part of holdpose: a module may import its own layer and lower ones.
LAYERS = {
    "holdpose": 0, "holdpose.errors": 0, "holdpose.progress": 0, "holdpose.argtypes": 0, "holdpose.skeleton": 0,
    "holdpose.sequence": 0, "holdpose.people": 0, "holdpose.convert": 0, "holdpose.parallel": 0, "holdpose.io": 0,
    "holdpose.detect": 1,
    "holdpose.refine": 2,
    "holdpose.render": 3,
    "holdpose.train": 4,
    "holdpose.animate": 5,
    "holdpose.evaluate": 6,
    "holdpose.demo": 7, "holdpose.batch": 7, "holdpose.studio": 7, "holdpose.cli": 7,
    # each stage's subcommands sit on top, wherever their module lives
    "holdpose.animate.cli": 7, "holdpose.animate.train_cli": 7, "holdpose.evaluate.cli": 7,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / "holdpose").rglob("*.py"))}


def imports(path: Path, modules: dict[str, Path]) -> list[tuple[str, list[str], int]]:
    """``(imported holdpose module, names taken from it, line)`` for every import in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names if alias.name.startswith("holdpose")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("holdpose"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in modules:
                    out.append((submodule, [], node.lineno))
                else:
                    out.append((node.module, [alias.name], node.lineno))
    return out


def layer_of(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LAYERS:
            return LAYERS[".".join(parts[:n])]
    raise AssertionError(f"{module}: not in tests/test_architecture.py LAYERS; give its package a layer")


def test_no_import_cycles():
    modules = all_modules()
    graph = {name: sorted({target for target, _, _ in imports(path, modules) if target in modules and target != name})
             for name, path in modules.items()}
    cycles = strongly_connected_cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c + c[:1]) for c in cycles)


def strongly_connected_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one module."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_imports_follow_the_data_flow():
    modules = all_modules()
    against = []
    for name, path in modules.items():
        for target, _, line in imports(path, modules):
            if layer_of(target) > layer_of(name):
                against.append(f"{path.relative_to(SRC)}:{line} imports {target}")
    assert not against, "imports against the data flow:\n" + "\n".join(against)


def test_nothing_private_is_imported_across_modules():
    modules = all_modules()
    private = [f"{path.relative_to(SRC)}:{line} imports {target}.{name}"
               for module, path in modules.items() for target, names, line in imports(path, modules)
               for name in names if name.startswith("_") and target != module]
    assert not private, "private names imported from other modules:\n" + "\n".join(private)


def test_the_checks_see_a_cycle_and_a_layer_violation():
    """The walker itself: a two-module loop is a cycle; a detector importing the renderer is against the flow."""
    assert strongly_connected_cycles({"a": ["b"], "b": ["a"], "c": ["a"]}) == [["a", "b"]]
    assert strongly_connected_cycles({"a": ["b"], "b": []}) == []
    assert layer_of("holdpose.render.openpose") > layer_of("holdpose.detect.extract")

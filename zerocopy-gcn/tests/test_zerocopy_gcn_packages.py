"""The sampling and converter packages: one concept per module, imports in one direction."""

import ast
import importlib
from pathlib import Path

import pytest


def _module_imports(path: Path) -> set[str]:
    """Modules a file imports at its top level (imports inside functions are deferred)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _import_graph(package: str) -> dict[str, set[str]]:
    folder = Path(importlib.import_module(package).__file__).parent
    modules = {f"{package}.{p.stem}": p for p in folder.glob("*.py") if p.stem != "__init__"}
    return {
        name: {m for m in _module_imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }


@pytest.mark.parametrize("package", ["zerocopy_gcn.sampling", "zerocopy_gcn.graph.convert"])
def test_no_import_circle(package):
    graph = _import_graph(package)
    done, stack = set(), []

    def visit(name):
        assert name not in stack, f"import circle: {stack[stack.index(name) :] + [name]}"
        if name in done:
            return
        stack.append(name)
        for imported in graph[name]:
            visit(imported)
        stack.pop()
        done.add(name)

    for name in graph:
        visit(name)


def test_sampler_interface_imports_no_sampler():
    """base.py is the interface the prefetcher and the PyG adapter are typed with: it imports
    nothing of the project, so no implementation can import it back into a circle."""
    imports = _module_imports(Path(importlib.import_module("zerocopy_gcn.sampling.base").__file__))
    assert not {m for m in imports if m.startswith("zerocopy_gcn")}


def test_staging_refuses_with_trilabs_errno_set():
    from trilab.errors import REFUSED_BY_SYSTEM
    from zerocopy_gcn.graph.convert import staging

    assert REFUSED_BY_SYSTEM <= staging._REFUSED_OR_IN_THE_WAY


def test_edge_limit_written_once():
    """The OGB CSV reader and the npz/binary checks take the edge ceiling from limits.py."""
    from zerocopy_gcn.graph.convert import limits

    folder = Path(limits.__file__).parent
    for path in folder.glob("*.py"):
        if path.name != "limits.py":
            assert "_EDGES_PER_INPUT_BYTE" not in path.read_text(), path.name
    assert limits.edge_limit(0) == 1 << 24 and limits.edge_limit(1 << 30) == 4 << 30

"""No package of the repository imports itself in a circle.

The graph: per package, one node per module; an edge for each import at module level (what
runs when the module is imported; imports inside functions and under ``if TYPE_CHECKING:`` run
later or never, so they are left out).  ``from pkg import name`` is an edge to ``pkg.name``
where that is a module of the package, else to ``pkg`` (its ``__init__``).  Importing a
submodule also runs its parent packages' ``__init__``; that is not counted, as cycle checkers
such as pylint's ``cyclic-import`` do not.

A second check counts the deferred imports too (inside functions, under TYPE_CHECKING): an
import moved into a function to dodge a circle (glagcn's keypoint registry loading its format
modules that import it back, ``layouts.get_layout`` importing ``core``) hides the circle from
the first check but still ties the two modules together.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "trilab": ROOT / "shared" / "src" / "trilab",
    "glagcn": ROOT / "glagcn" / "src" / "glagcn",
    "drag": ROOT / "drag" / "src" / "drag",
    "zerocopy_gcn": ROOT / "zerocopy-gcn" / "src" / "zerocopy_gcn",
}


def module_files(package: str, folder: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (``__init__`` = package)."""
    modules = {}
    for path in sorted(folder.rglob("*.py")):
        parts = (package, *path.relative_to(folder).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: top level, and inside module-level
    ``if``/``try``/``with`` blocks, not in functions, classes' methods or TYPE_CHECKING."""
    found = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If):
            pending.extend(node.orelse if _is_type_checking(node.test) else node.body + node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                pending.extend(handler.body)
        elif isinstance(node, ast.With | ast.ClassDef):
            pending.extend(node.body)
    return found


def every_import(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


def import_graph(package: str, folder: Path, deferred: bool = False) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (``deferred``: function-level ones too)."""
    collect = every_import if deferred else module_level_imports
    modules = module_files(package, folder)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in collect(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:  # relative: from the module's own package upwards
                    base = name.split(".")
                    base = base[: len(base) - node.level + (1 if is_package else 0)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module
                targets = [
                    f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules else origin
                    for alias in node.names
                ]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return error.args[1]
    return None


def test_the_checker_finds_a_circle_through_a_package_init_and_ignores_late_imports(tmp_path):
    folder = tmp_path / "pkg"
    (folder / "sub").mkdir(parents=True)
    (folder / "__init__.py").write_text("from pkg.a import A\n")
    (folder / "a.py").write_text("from .sub import b\nA = 1\n")
    (folder / "sub" / "__init__.py").write_text("")
    (folder / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg.a import A\n"
        "def late():\n    from pkg import a\n"
    )
    assert find_cycle(import_graph("pkg", folder, deferred=True)) is not None
    graph = import_graph("pkg", folder)
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.sub.b"}, "pkg.sub": set(), "pkg.sub.b": set()}
    assert find_cycle(graph) is None
    (folder / "sub" / "b.py").write_text(
        "try:\n    from .. import A\nexcept ImportError:\n    pass\n"
    )
    cycle = find_cycle(import_graph("pkg", folder))
    assert cycle is not None and set(cycle) == {"pkg", "pkg.a", "pkg.sub.b"}


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_package_imports_itself_in_a_circle(package):
    cycle = find_cycle(import_graph(package, PACKAGES[package]))
    assert cycle is None, f"{package}: import circle {' -> '.join(reversed(cycle))}"


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_inside_a_function_hides_a_circle(package):
    cycle = find_cycle(import_graph(package, PACKAGES[package], deferred=True))
    assert cycle is None, f"{package}: import circle {' -> '.join(reversed(cycle))}"

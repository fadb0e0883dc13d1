"""The HTTP layer reaches the pool through one place, ``_http/port.py``: no other module
of ``aurora_async._http`` imports the pool's modules at run time or touches a pool, and
none imports ``TokenPool``'s module (which imports the HTTP layer: a circle)."""

from __future__ import annotations

import ast
from pathlib import Path

import aurora_async._http as http_package

HTTP = Path(http_package.__file__).parent
PORT = "port.py"


def _runtime_imports(tree: ast.Module) -> list[str]:
    """Modules imported outside ``if TYPE_CHECKING:`` blocks, as written (``..x.y``)."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            found.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        for inner in ast.iter_child_nodes(node):
            visit(inner)

    visit(tree)
    return found


def _all_imports(tree: ast.Module) -> list[str]:
    return [
        "." * node.level + (node.module or "")
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    ]


def _modules() -> dict[str, ast.Module]:
    return {p.name: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(HTTP.glob("*.py"))}


def test_only_the_port_imports_the_pool_at_run_time() -> None:
    offenders = {
        name: [m for m in _runtime_imports(tree) if "_pool" in m]
        for name, tree in _modules().items()
        if name != PORT
    }
    assert {name: found for name, found in offenders.items() if found} == {}
    assert ".._pool.lease" in _runtime_imports(_modules()[PORT])  # the test sees imports


def test_only_the_port_holds_the_pool() -> None:
    holders = {
        name
        for name, tree in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in ("_pool", "_core")  # the pool core
    }
    assert holders == {PORT}


def test_no_module_of_the_http_layer_imports_the_pools_facade() -> None:
    found = {
        name: m
        for name, tree in _modules().items()
        for m in _all_imports(tree)
        if m.endswith("_pool.pool")
    }
    assert found == {}

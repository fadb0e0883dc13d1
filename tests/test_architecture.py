"""The shape of ``aurora_async``, checked by parsing its modules with ``ast``.

Rules (issue 10): no module imports a private name of another module; no import circle
(imports under ``if TYPE_CHECKING:`` and inside functions count); no reach into another
object's private names (``<expr>._name`` whose base is not ``self``, ``cls`` or
``super()``); modules of at most :data:`MAX_MODULE_LINES` lines; functions of at most
:data:`MAX_FUNCTION_LINES` lines.

Today's offenders are allowlisted below. The lists can only shrink: a new offender fails,
and so does an allowlisted one that is gone (or a count that went down), so the list is
kept exact. To refresh them after a change, run ``python -m tests.test_architecture`` from
the repository's root and paste what it prints over the lists; the diff should only
remove entries or lower counts (an addition is a new offender: fix the code instead).
"""

from __future__ import annotations

import ast
from collections import Counter, defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "aurora_async"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80

# -- allowlists: what is left, on purpose -------------------------------------------------

#: Import circles: the modules of each strongly connected component of the import graph.
KNOWN_CYCLES: list[tuple[str, ...]] = []

#: (file, imported module.name): how many times the file imports that private name.
KNOWN_PRIVATE_IMPORTS: dict[tuple[str, str], int] = {}

#: (file, private attribute): how many times the file reaches into it on another object.
#: Left on purpose: the scheduler's inlined hot paths read and write aiolimiter's bucket
#: state (``_level``, ``_last_check``) of the windows directly, which is what makes a
#: lease cost two bare acquires and not six. The names are pinned
#: (``aurora_async/_core/buckets.py``, ``tests/core/test_aiolimiter_contract.py``) and
#: every inlined copy is checked against ``Window``'s own methods
#: (``tests/core/test_inlined.py``; ``MixedSlot``'s in ``tests/core/test_resources.py``;
#: the vector paths, a lease of several resources, in ``tests/core/test_vector.py``).
#: And the lease's one check that it runs on the pool's loop asks asyncio's loop for the
#: thread running it (``_thread_id``, where the loop has it: ``PoolCore.bind``) instead of
#: ``get_running_loop()``, a ``getpid()`` system call on Python 3.11 (about 0.2 us a lease;
#: ``tests/pool/test_loop_binding.py`` covers another loop, a stopped one, another thread).
KNOWN_PRIVATE_REACHES: dict[tuple[str, str], int] = {
    ("aurora_async/_pool/lease.py", "_thread_id"): 1,
    ("aurora_async/_core/scheduler.py", "_last_check"): 8,
    ("aurora_async/_core/scheduler.py", "_level"): 7,
    ("aurora_async/_core/slot.py", "_last_check"): 13,
    ("aurora_async/_core/slot.py", "_level"): 14,
    ("aurora_async/_core/vector.py", "_last_check"): 12,
    ("aurora_async/_core/vector.py", "_level"): 16,
}

#: Modules over MAX_MODULE_LINES lines.
KNOWN_BIG_MODULES: set[str] = set()

#: (file, function) over MAX_FUNCTION_LINES lines.
KNOWN_LONG_FUNCTIONS: set[tuple[str, str]] = set()


# -- reading the package -------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    name: str  # aurora_async._pool.pool
    file: str  # aurora_async/_pool/pool.py, relative to ROOT
    is_package: bool
    source: str
    tree: ast.Module

    @property
    def package(self) -> str:
        return self.name if self.is_package else self.name.rpartition(".")[0]


#: An allowlist's entry: a file, (file, name), or the modules of an import circle.
Key = str | tuple[str, ...]


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    rule: str
    key: Key  # what the allowlist holds for it
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: [{self.rule}] {self.text}"


def read_package(root: Path = ROOT) -> dict[str, Module]:
    modules = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        rel = path.relative_to(root)
        parts = list(rel.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        source = path.read_text(encoding="utf-8")
        name = ".".join(parts)
        tree = ast.parse(source, filename=str(rel))
        modules[name] = Module(name, rel.as_posix(), is_package, source, tree)
    return modules


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def imported_from(module: Module, node: ast.ImportFrom) -> str:
    """The absolute name of the module a ``from ... import`` reads."""
    if node.level == 0:
        return node.module or ""
    base = module.package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports(module: Module, modules: dict[str, Module]) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import anywhere in ``module``: at the top,
    under ``if TYPE_CHECKING:``, inside functions. ``from X import y`` imports ``X.y``
    if that is a module, else ``X``."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            source = imported_from(module, node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield node.lineno, submodule if submodule in modules else source


# -- the rules -----------------------------------------------------------------------------


def private_imports(modules: dict[str, Module]) -> Iterator[Finding]:
    """``from .pool import _helper``: a private name of another module. Private modules
    (``from ._core.limits import Limit``, ``from .. import _log``) are fine."""
    for module in modules.values():
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = imported_from(module, node)
            for alias in node.names:
                if is_private(alias.name) and f"{source}.{alias.name}" not in modules:
                    qualified = f"{source}.{alias.name}"
                    yield Finding(
                        module.file,
                        node.lineno,
                        "private-import",
                        (module.file, qualified),
                        f"imports the private name {qualified}",
                    )


def import_graph(modules: dict[str, Module]) -> dict[str, dict[str, int]]:
    """module -> {module of the package it imports: line of the first such import}."""
    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for module in modules.values():
        for line, target in imports(module, modules):
            if target in modules and target != module.name:
                graph[module.name].setdefault(target, line)
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[frozenset[str]]:
    """Tarjan's algorithm, iterative; components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    members = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        members.add(member)
                        if member == node:
                            break
                    if len(members) > 1:
                        found.append(frozenset(members))
    return sorted(found, key=sorted)


def shortest_cycle(
    graph: dict[str, dict[str, int]], members: frozenset[str], start: str
) -> list[str]:
    """A shortest import circle through ``start``, within the component ``members``."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node]):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if child in members and child not in came_from:
                came_from[child] = node
                queue.append(child)
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover


def cycles(modules: dict[str, Module]) -> Iterator[Finding]:
    graph = import_graph(modules)
    known = {name for cycle in KNOWN_CYCLES for name in cycle}
    for members in strongly_connected(graph):
        # Through a module no known circle holds, if any: that is where it is new.
        path = shortest_cycle(graph, members, min(members - known or members))
        hops = ", ".join(f"{modules[a].file}:{graph[a][b]}" for a, b in pairwise(path))
        first = modules[path[0]]
        yield Finding(
            first.file,
            graph[path[0]][path[1]],
            "import-cycle",
            tuple(sorted(members)),
            f"import circle among {len(members)} modules {sorted(members)}; "
            f"one circle: {' -> '.join(path)} (imports at {hops})",
        )


def owned_names(tree: ast.Module) -> set[str]:
    """The private names a module's own classes define: ``self._x = ...``, ``__slots__``
    entries and ``def _x``. The module may use them on any object of its classes (a
    friend function, another instance): privacy is the module's, as in Python."""
    owned: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and is_private(node.name):
            owned.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                owned.add(node.attr)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets
        ):
            for item in ast.walk(node.value):
                if isinstance(item, ast.Constant) and isinstance(item.value, str):
                    owned.add(item.value)
    return {name for name in owned if is_private(name)}


def private_reaches(modules: dict[str, Module]) -> Iterator[Finding]:
    """``other._name``: an attribute with a private name on anything but ``self``, ``cls``
    or ``super()`` (by syntax: an alias of ``self`` counts as another object), unless the
    module's own classes define that name (:func:`owned_names`)."""
    for module in modules.values():
        owned = owned_names(module.tree)
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.Attribute) or not is_private(node.attr):
                continue
            if node.attr in owned:
                continue
            base = node.value
            if isinstance(base, ast.Name) and base.id in ("self", "cls"):
                continue
            if isinstance(base, ast.Call) and ast.unparse(base.func) == "super":
                continue
            yield Finding(
                module.file,
                node.end_lineno or node.lineno,
                "private-reach",
                (module.file, node.attr),
                f"reaches into another object's private name: {ast.unparse(node)}",
            )


def big_modules(modules: dict[str, Module]) -> Iterator[Finding]:
    for module in modules.values():
        lines = len(module.source.splitlines())
        if lines > MAX_MODULE_LINES:
            yield Finding(
                module.file,
                MAX_MODULE_LINES + 1,
                "module-size",
                module.file,
                f"{lines} lines, over {MAX_MODULE_LINES}",
            )


def functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.AST]]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{node.name}"
            yield name, node
            yield from functions(node, f"{name}.<locals>.")
        elif isinstance(node, ast.ClassDef):
            yield from functions(node, f"{prefix}{node.name}.")
        else:
            yield from functions(node, prefix)


def long_functions(modules: dict[str, Module]) -> Iterator[Finding]:
    for module in modules.values():
        for name, node in functions(module.tree):
            assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                yield Finding(
                    module.file,
                    node.lineno,
                    "function-size",
                    (module.file, name),
                    f"{name} has {lines} lines, over {MAX_FUNCTION_LINES}",
                )


# -- comparing with the allowlists ---------------------------------------------------------

#: Each allowlist: its rule, the finder, and whether it counts occurrences.
RULES = {
    "KNOWN_CYCLES": ("import-cycle", cycles, False),
    "KNOWN_PRIVATE_IMPORTS": ("private-import", private_imports, True),
    "KNOWN_PRIVATE_REACHES": ("private-reach", private_reaches, True),
    "KNOWN_BIG_MODULES": ("module-size", big_modules, False),
    "KNOWN_LONG_FUNCTIONS": ("function-size", long_functions, False),
}


def literal(value: object) -> str:
    """``value`` as ruff would format it: double quotes, tuples in parentheses."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple):
        return "(" + ", ".join(literal(item) for item in value) + ")"
    return repr(value)


def where_listed(list_name: str, key: Key) -> str:
    """``file:line`` of ``key``'s entry in ``list_name`` (of the list itself if not found)."""
    here = Path(__file__).resolve()
    lines = here.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{list_name}:"))
    needle = literal(key[0] if list_name == "KNOWN_CYCLES" else key)
    found = next((i for i, line in enumerate(lines[start:], start) if needle in line), start)
    return f"{here.relative_to(ROOT).as_posix()}:{found + 1}"


def allowed(list_name: str) -> dict[Key, int]:
    known: dict[Key, int] | set[Key] | list[Key] = globals()[list_name]
    if isinstance(known, dict):
        return dict(known)
    return dict.fromkeys(known, 1)


def problems(list_name: str, modules: dict[str, Module]) -> list[str]:
    """Findings beyond the allowlist, and allowlist entries that no longer occur."""
    rule, finder, counted = RULES[list_name]
    by_key: dict[Key, list[Finding]] = defaultdict(list)
    for finding in finder(modules):
        by_key[finding.key].append(finding)
    known = allowed(list_name)
    out: list[str] = []
    for key, found in sorted(by_key.items(), key=lambda item: literal(item[0])):
        limit = known.get(key, 0)
        if len(found) > limit:
            out += [str(f) for f in found]
            if counted and limit:
                out.append(
                    f"    ({len(found)} times, {list_name} allows {limit} for {literal(key)})"
                )
    for key, limit in sorted(known.items(), key=lambda item: literal(item[0])):
        count = len(by_key.get(key, []))
        if count < limit:
            now = f"now occurs {count} times: lower it to {count}" if count else "is gone"
            out.append(
                f"{where_listed(list_name, key)}: [{rule}] {list_name} holds {literal(key)}, "
                f"which {now} (the allowlists only shrink: refresh them, see the docstring)"
            )
    return out


def current(modules: dict[str, Module]) -> str:
    """Today's offenders as the allowlists above, ready to paste over them."""
    out = []
    for list_name, (_, finder, counted) in RULES.items():
        keys = Counter(finding.key for finding in finder(modules))
        entries = sorted(keys.items(), key=lambda item: literal(item[0]))
        if list_name == "KNOWN_CYCLES":
            out.append(f"{list_name}: list[tuple[str, ...]] = [")
            for members, _ in entries:
                out.append("    (")
                out += [f"        {literal(m)}," for m in members]
                out.append("    ),")
            out.append("]")
        elif counted:
            out.append(f"{list_name}: dict[tuple[str, str], int] = {{")
            out += [f"    {literal(key)}: {n}," for key, n in entries]
            out.append("}")
        else:
            kind = "str" if list_name == "KNOWN_BIG_MODULES" else "tuple[str, str]"
            out.append(f"{list_name}: set[{kind}] = {{")
            out += [f"    {literal(key)}," for key, _ in entries]
            out.append("}")
        out.append("")
    return "\n".join(out)


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    return read_package()


def check(found: list[str]) -> None:
    if found:
        pytest.fail("\n".join(found), pytrace=False)


def test_no_module_imports_a_private_name_of_another(modules: dict[str, Module]) -> None:
    check(problems("KNOWN_PRIVATE_IMPORTS", modules))


def test_no_import_circle(modules: dict[str, Module]) -> None:
    check(problems("KNOWN_CYCLES", modules))


def test_no_reach_into_private_names_of_another_object(modules: dict[str, Module]) -> None:
    check(problems("KNOWN_PRIVATE_REACHES", modules))


def test_modules_are_at_most_600_lines(modules: dict[str, Module]) -> None:
    check(problems("KNOWN_BIG_MODULES", modules))


def test_functions_are_at_most_80_lines(modules: dict[str, Module]) -> None:
    check(problems("KNOWN_LONG_FUNCTIONS", modules))


if __name__ == "__main__":
    print(current(read_package()))

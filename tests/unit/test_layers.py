"""The import direction as a test: no module imports a layer above its own, the pure faces of
a subsystem import only subsystems declared before it (subsystems.ORDER), nothing pure touches
the shell, and there is no import cycle. Function-local imports count like any other: laziness
is allowed for start-up time, never as a way around a cycle.

Layers, bottom to top (README, Layout):
  0 base       errors, paths, values, fields, context, templating, redact, the package (its version)
  1 model      model, subsystems/*/model
  2 contracts  desired, tables, steps
  3 pure       subsystems/*/ every other face (wire types, document, verify, render, rules)
  4 pipeline   pipeline/*
  3' shell     shell/*: base, model and contracts only
  4' OS faces  subsystems/*/service (and what only they use): the shell and their own subsystem
  5 engine     engine
  6 above      ops/*, shims
  7 entry      cli, command, metadata_server, lab/*
"""

from __future__ import annotations

import ast
from pathlib import Path

from vragent.subsystems import ORDER

PACKAGE = Path(__file__).resolve().parents[2] / "vragent"

BASE = {"errors", "paths", "values", "fields", "context", "templating", "redact"}
CONTRACTS = {"desired", "tables", "steps"}
OS_FACES = {"service"}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = modules()


def resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """Every vragent module `module` imports, at the top or inside a function."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {resolve(a.name) for a in node.names if a.name.split(".")[0] == "vragent"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "vragent":
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else resolve(base))
    return {m for m in found if m and m != module}


def layer(module: str) -> tuple[int, str | None]:
    """(layer, subsystem) of a module; see the table above. 3.5 is the shell, 4.5 an OS face."""
    parts = module.split(".")[1:]
    if not parts:
        return 0, None  # the package itself holds only its version
    head = parts[0]
    if head == "subsystems":
        if len(parts) == 1:
            return 0, None  # ORDER and TYPES: plain data
        subsystem, face = parts[1], (parts[2] if len(parts) > 2 else "")
        if face == "model":
            return 1, subsystem
        if face in OS_FACES:
            return 4.5, subsystem
        return 3, subsystem
    if head in BASE:
        return 0, None
    if head == "model":
        return 1, None
    if head in CONTRACTS:
        return 2, None
    if head == "shell":
        return 3.5, None
    if head == "pipeline":
        return 4, None
    if head == "engine":
        return 5, None
    if head in ("ops", "shims"):
        return 6, None
    return 7, None


def allowed(importer: str, imported: str) -> bool:
    (low, own), (high, theirs) = layer(importer), layer(imported)
    if low == 3.5:  # the shell: base, model, contracts and itself
        return high <= 2 or high == 3.5
    if low == 4.5:  # an OS face: base, model, contracts, the shell, and its own subsystem
        return high <= 2 or high == 3.5 or own == theirs
    if high in (3.5, 4.5):  # the OS is bound by the engine and above, never by pure code
        return low >= 5
    if high == low and own and theirs and own != theirs:
        return ORDER.index(theirs) < ORDER.index(own)
    return high <= low


def violations() -> list[str]:
    return sorted(f"{importer} -> {imported}" for importer in MODULES for imported in imports_of(importer)
                  if not allowed(importer, imported))


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph = {m: imports_of(m) for m in MODULES}
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return found


def test_no_import_goes_up_a_layer_or_against_the_subsystem_order():
    assert violations() == []


def test_there_is_no_import_cycle():
    assert cycles() == []


def test_every_subsystem_in_the_order_has_a_package():
    assert {p.name for p in (PACKAGE / "subsystems").iterdir() if (p / "__init__.py").exists()} == set(ORDER)


def test_the_layer_table_knows_every_module():
    unknown = [m for m in MODULES if layer(m)[0] == 7 and m.split(".")[1:2] not in (
        [], ["cli"], ["command"], ["metadata_server"], ["lab"], ["__main__"])]
    assert unknown == []

"""The package layout stays true: imports run one way, downward, with no cycle.

Layers, bottom to top (see the README's architecture section): the kernel
modules, then ``rules``, ``store``, ``serving``, ``querylog``, ``engines``,
``evidence``, ``mining``, ``model``, ``monitoring``, ``report``, ``demo``, ``cli``. A
module may import its own package and any layer below it. ``simulate`` uses
the kernel and ``querylog`` only, and only ``demo`` and ``cli`` use it. Nothing
inside rulelife imports the façade (``rulelife`` itself) or a plug-in
(``miners``, ``monitors``): plug-ins are found by entry point.

Every import counts, including those inside functions: an import deferred
to call time is still a dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNEL = {"errors", "config", "plugins", "progress", "_files", "_compat", "_version"}
LAYERS = ["kernel", "rules", "store", "serving", "querylog", "engines", "evidence", "mining", "model", "monitoring",
          "report", "demo", "cli"]
RANK = {name: rank for rank, name in enumerate(LAYERS)}
PROJECT = ("rulelife", "miners", "monitors")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    found = {}
    for top in PROJECT:
        for path in (ROOT / top).rglob("*.py"):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Project modules ``name`` imports (a ``from package import submodule`` names the submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # `import a.b.c` of a module: its longest known prefix
                target = target.rpartition(".")[0]
            if target.split(".")[0] in PROJECT and target:
                found.add(target)
    found.discard(name)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "rulelife":
        return parts[0]  # a plug-in package
    if len(parts) == 1:
        return "facade"
    return "kernel" if parts[1] in KERNEL else parts[1]


def _violation(source: str, target: str) -> str | None:
    a, b = _layer(source), _layer(target)
    if a in ("miners", "monitors"):
        return None if b != "cli" else "a plug-in uses the public API, not the CLI"
    if b in ("miners", "monitors"):
        return "the core finds plug-ins by entry point, never by name"
    if b == "facade" and a != "facade":
        return "the package façade is for users; inside rulelife, import the module itself"
    if a == "facade":
        return None
    if "simulate" in (a, b):
        if a == b:
            return None
        if a == "simulate":
            return None if b in ("kernel", "querylog") else "simulate uses the kernel and querylog only"
        return None if a in ("demo", "cli") else "only demo and cli use simulate"
    if a not in RANK or b not in RANK:
        return f"a package outside the layer map ({a if a not in RANK else b}): add it to the map and the README"
    if RANK[b] > RANK[a]:
        return f"{a} is below {b}"
    return None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_the_layer_map_covers_every_package():
    packages = {_layer(m) for m in MODULES if m.startswith("rulelife.")}
    assert packages - set(RANK) - {"simulate"} == set()


def test_imports_run_downward():
    problems = [f"{source} imports {target}: {why}"
                for source, targets in sorted(GRAPH.items()) for target in sorted(targets)
                if (why := _violation(source, target))]
    assert problems == []


def test_no_import_cycle_between_modules():
    assert _cycles(GRAPH) == []


def test_no_import_cycle_between_packages():
    def package(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2]) if parts[0] == "rulelife" and len(parts) > 2 else module

    packages: dict[str, set[str]] = {}
    for source, targets in GRAPH.items():
        packages.setdefault(package(source), set()).update(package(t) for t in targets if package(t) != package(source))
    assert _cycles(packages) == []


def test_the_checker_sees_a_violation_and_a_cycle():
    assert _violation("rulelife.rules.matcher", "rulelife.store.db") == "rules is below store"
    assert _violation("rulelife.evidence.gate", "rulelife.rules.matcher") is None
    assert _violation("rulelife.monitoring.nightly", "monitors.cusum")
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_monitors_are_called_through_their_declared_contract():
    """The nightly job and the report call the hooks monitoring.contract.Monitor declares: no
    hasattr probe, and no import of a plug-in's module by a computed name."""
    paths = [*sorted((ROOT / "rulelife" / "report").glob("*.py")), ROOT / "rulelife" / "monitoring" / "nightly.py"]
    probes = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "hasattr":
                probes.append(f"{path.name}:{node.lineno} hasattr")
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            probes += [f"{path.name}:{node.lineno} imports {n}" for n in names if n.split(".")[0] == "importlib"]
    assert probes == []


# The request path, and the command line before a command runs (so `rulelife --help` is quick).
@pytest.mark.parametrize("statement", ["from rulelife import RuleClassifier", "import rulelife", "import rulelife.cli"])
def test_the_request_path_loads_no_sql_pandas_or_great_expectations(statement):
    heavy = ("sqlalchemy", "sqlmodel", "pandas", "great_expectations", "pyarrow", "sklearn", "ruptures",
             "pydantic_settings")
    code = f"import sys; {statement}; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def test_the_store_is_still_reachable_from_the_facade():
    import rulelife
    from rulelife.store import Store

    assert rulelife.Store is Store


def _third_party_imports(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, including imports inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_great_expectations_is_imported_only_where_logs_are_validated():
    # 4.5 s and 250 MB to import: only the module that validates log rows may pay it.
    users = sorted(name for name, path in MODULES.items() if "great_expectations" in _third_party_imports(path))
    assert users == ["rulelife.querylog.validate"]


def test_scikit_learn_is_not_imported_for_a_word_list_or_an_exception():
    users = {name for name, path in MODULES.items() if "sklearn" in _third_party_imports(path)}
    assert not users & {"rulelife.rules.stopwords", "rulelife.errors", "miners.hard_negatives"}

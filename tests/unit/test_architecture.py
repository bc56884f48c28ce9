"""The shape of the code: the core depends on nothing but itself, and nothing imports in a circle.

- ``shared/model.py`` imports nothing of the project; ``shared/ports.py`` only the model.
- The core (``authorization``, ``publish``) loads no SDK: checked in a fresh interpreter.
- No import cycle anywhere in the repository, counting every import statement (also those
  inside functions and under ``TYPE_CHECKING``).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from devtools.azurite import ROOT

PACKAGES = ("shared", "devtools", "bench", "tests")
ADAPTERS = frozenset(
    {
        "shared.tokens",
        "shared.oidc",
        "shared.registry",
        "shared.registry_credentials",
        "shared.registry_cache",
        "shared.queue",
        "shared.runtime",
        "shared.settings",
    }
)
SDKS = ("aiohttp", "jwt", "azure", "pydantic", "pydantic_settings", "cryptography", "msal")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    files = [ROOT / "function_app.py"]
    for package in PACKAGES:
        files += sorted((ROOT / package).rglob("*.py"))
    return {module_name(path): path for path in files}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules a file imports, anywhere in it."""
    found: set[str] = set()
    if path.name == "__init__.py":
        package = module_name(path)
    else:
        package = module_name(path.parent) if path.parent != ROOT else ""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else base)
    return {name for name in found if name in modules}


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_anywhere() -> None:
    graph = import_graph()
    assert len(graph) > 50  # the whole repository was read
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_model_imports_nothing_of_the_project_and_ports_only_the_model() -> None:
    graph = import_graph()
    assert graph["shared.model"] == set()
    assert graph["shared.ports"] == {"shared.model"}


def test_the_core_imports_no_adapter() -> None:
    graph = import_graph()
    for core in ("shared.model", "shared.ports", "shared.authorization", "shared.publish"):
        assert graph[core] & ADAPTERS == set(), core


def test_the_core_loads_no_sdk_in_a_fresh_interpreter() -> None:
    script = (
        "import json, sys; import shared.authorization, shared.publish; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    completed = subprocess.run(  # noqa: S603 - our own interpreter, our own script
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(completed.stdout))
    assert "shared" in loaded  # the imports did run
    assert loaded.isdisjoint(SDKS), sorted(loaded & set(SDKS))

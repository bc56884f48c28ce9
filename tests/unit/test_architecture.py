"""The shape of the code (docs/architecture.md): each layer is a folder of shared/, and every
import goes in an allowed direction. Every import statement of the repository counts, also those
inside functions and under ``TYPE_CHECKING``.

- ``shared/cloudevents/`` imports nothing of the product (only its JSON libraries besides the
  standard library);
- ``shared/subscriber.py`` imports nothing of the project (subscribers copy it);
- ``shared/core/`` imports only the core, the CloudEvents layer and the subscriber's format, and
  no third-party package (checked in a fresh interpreter too);
- ``shared/adapters/`` import the core, ``adapters.common`` and ``adapters.storage_http`` (the
  storage services' HTTP client, which the table and queue adapters share), never another
  adapter, never the application's wiring;
- ``shared/app/`` may import all of them; nothing in ``shared/`` imports devtools, tests or bench;
- nothing imports in a circle.

Each rule is also shown to fail: the checks run on a copy of ``shared/`` with one import added.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.azurite import ROOT

#: What adapters share with each other (docs/architecture.md): every other adapter is private.
SHARED_BY_ADAPTERS = ("shared.adapters.common", "shared.adapters.storage_http")

PACKAGES = ("shared", "devtools", "bench", "tests")
#: What each layer of shared/ may import of the project (besides itself).
ALLOWED: dict[str, frozenset[str]] = {
    "cloudevents": frozenset(),
    "subscriber": frozenset(),
    "core": frozenset({"cloudevents", "subscriber"}),
    "adapters": frozenset({"core", "cloudevents", "subscriber"}),
    "app": frozenset({"core", "cloudevents", "subscriber", "adapters"}),
}
#: Third-party packages a layer may import (none: the standard library only, unless listed).
THIRD_PARTY: dict[str, frozenset[str]] = {
    "cloudevents": frozenset({"jiter", "orjson", "rfc8785"}),
    "subscriber": frozenset({"azure"}),  # azure-storage-blob, in blob_fetcher only
    "core": frozenset(),
}
SDKS = ("aiohttp", "jwt", "azure", "pydantic", "pydantic_settings", "cryptography", "msal")
SDKS += ("opentelemetry", "requests")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    files = [root / "function_app.py"] if (root / "function_app.py").exists() else []
    for package in PACKAGES:
        files += sorted((root / package).rglob("*.py"))
    return {module_name(path, root): path for path in files}


def imported_names(path: Path, package: str) -> set[str]:
    """Every module a file imports (absolute names), anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """The project modules each module imports."""
    modules = project_modules(root)
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = {found for found in imported_names(path, package) if found in modules}
        graph[name].discard(name)
    return graph


def third_party(root: Path = ROOT) -> dict[str, set[str]]:
    """The top-level packages outside the project and the standard library each module imports."""
    modules = project_modules(root)
    found = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tops = {imported.split(".")[0] for imported in imported_names(path, package)}
        found[name] = {
            top
            for top in tops
            if top and top not in sys.stdlib_module_names and top not in PACKAGES
        } - {"function_app", "__future__"}
    return found


def layer_of(module: str) -> str | None:
    """A module's layer: the folder of shared/ it is in (the subscriber is one of its own)."""
    parts = module.split(".")
    if parts[0] != "shared" or len(parts) == 1:
        return None
    return parts[1]


def violations(root: Path = ROOT) -> list[str]:
    """Every import that goes against the layers."""
    found = []
    graph = import_graph(root)
    for module, imports in sorted(graph.items()):
        layer = layer_of(module)
        for target in sorted(imports):
            if module.startswith("shared") and target.split(".")[0] != "shared":
                found.append(f"{module} imports {target}: shared/ never imports {PACKAGES[1:]}")
                continue
            if layer is None or layer not in ALLOWED:
                continue
            target_layer = layer_of(target)
            if target_layer is None or (target_layer == layer and layer != "adapters"):
                continue
            if layer == "adapters" and target_layer == "adapters":
                if target not in (module, "shared.adapters", *SHARED_BY_ADAPTERS):
                    found.append(f"{module} imports {target}: an adapter imports another adapter")
                continue
            if target_layer not in ALLOWED[layer]:
                found.append(f"{module} imports {target}: the {layer} layer imports {target_layer}")
    for module, packages in sorted(third_party(root).items()):
        layer = layer_of(module)
        if layer in THIRD_PARTY and packages - THIRD_PARTY[layer]:
            found.append(f"{module} imports {sorted(packages - THIRD_PARTY[layer])}: an SDK")
    return found


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


# -- the repository ------------------------------------------------------------------------------


def test_every_module_of_shared_is_in_a_layer() -> None:
    modules = [name for name in project_modules() if name.startswith("shared.")]
    assert len(modules) > 30  # the whole package was read
    assert {layer_of(name) for name in modules} == set(ALLOWED)


def test_every_import_goes_in_an_allowed_direction() -> None:
    assert violations() == []


def test_no_import_cycles_anywhere() -> None:
    graph = import_graph()
    assert len(graph) > 50  # the whole repository was read
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_core_loads_no_sdk_in_a_fresh_interpreter() -> None:
    core = sorted(name for name in project_modules() if layer_of(name) == "core")
    script = (
        "import importlib, json, sys\n"
        f"for name in {core!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    completed = subprocess.run(  # noqa: S603 - our own interpreter, our own script
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(completed.stdout))
    assert "shared" in loaded  # the imports did run
    assert loaded.isdisjoint(SDKS), sorted(loaded & set(SDKS))


# -- each rule fails when it is broken -------------------------------------------------------------


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of shared/ (and function_app.py) to break."""
    shutil.copytree(
        ROOT / "shared", tmp_path / "shared", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "function_app.py", tmp_path / "function_app.py")
    for package in PACKAGES[1:]:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    return tmp_path


def broken(root: Path, module: str, line: str) -> list[str]:
    path = root / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    return violations(root)


def test_the_copy_is_clean(copy: Path) -> None:
    assert violations(copy) == []


@pytest.mark.parametrize(
    ("module", "line", "said"),
    [
        (
            "shared.adapters.queue",
            "from shared.adapters.tables import TableStorage",
            "an adapter imports another adapter",
        ),
        (
            "shared.core.pipeline",
            "from shared.adapters.queue import StorageQueueSink",
            "the core layer imports adapters",
        ),
        ("shared.core.steps", "import azure.storage.queue", "an SDK"),
        (
            "shared.core.delivery",
            "from shared.app.settings import Settings",
            "the core layer imports app",
        ),
        (
            "shared.cloudevents.http",
            "from shared.core.model import Publisher",
            "the cloudevents layer imports core",
        ),
        (
            "shared.subscriber",
            "from shared.cloudevents import DATA",
            "the subscriber layer imports cloudevents",
        ),
        (
            "shared.adapters.tables",
            "from shared.app.runtime import Runtime",
            "the adapters layer imports app",
        ),
        ("shared.core.model", "import tests", "shared/ never imports"),
    ],
)
def test_a_deliberately_broken_import_is_found(
    copy: Path, module: str, line: str, said: str
) -> None:
    found = broken(copy, module, line)
    assert len(found) == 1, found
    assert found[0].startswith(module)
    assert said in found[0]
